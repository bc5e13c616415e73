"""Test environment: every cache, temp dir and tracker folder inside one private temp dir.

Never the Ray CLI's stop command (it ends every Ray process on the machine): clusters end through ray.shutdown(), Cluster.shutdown() or
their own PIDs.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_ROOT = Path(tempfile.mkdtemp(prefix="srt-"))  # short: Ray's socket paths have a length limit
for var, sub in (("RAY_TMPDIR", "ray"), ("WANDB_DIR", "wandb"), ("WANDB_CACHE_DIR", "wandb-cache"),
                 ("WANDB_CONFIG_DIR", "wandb-config"), ("VLLM_CACHE_ROOT", "vllm"),
                 ("MPLCONFIGDIR", "mpl")):
    os.environ.setdefault(var, str(_ROOT / sub))
    Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("RAY_ADDRESS", None)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    d = tmp_path / "runs"
    monkeypatch.setenv("SCALERUN_RUNS_DIR", str(d))
    return d


def run_preset(*args, runs_dir):
    """`scalerun run ARGS` in a subprocess writing under runs_dir."""
    env = {**os.environ, "SCALERUN_RUNS_DIR": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
