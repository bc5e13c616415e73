"""A run killed mid-way and resumed reports exactly what an uninterrupted run reports: every cost
is nominal (the same whatever a cache held), every random stream belongs to its unit."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO
from localcluster import processes_mentioning
from orchestrator.report import comparable_summary

SMALL = {
    "tts-smoke": ["dataset.num_problems=6", "oracle_samples=8"],
    "passuntil-smoke": ["dataset.num_problems=6"],
}


def start(preset, runs, tmp, tag):
    ray_tmp = Path(tempfile.mkdtemp(prefix=tag[0], dir=os.environ["RAY_TMPDIR"]))  # short: socket paths
    env = {**os.environ, "SCALERUN_RUNS_DIR": str(runs), "WANDB_DIR": str(tmp / f"wandb-{tag}"), "RAY_TMPDIR": str(ray_tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", preset, *SMALL[preset], "progress=quiet"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    return proc, ray_tmp


def finish(proc, ray_tmp, timeout=600):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    assert not processes_mentioning(str(ray_tmp)), "Ray processes outlived the run"


def kill_after(proc, ray_tmp, results, rows, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= rows:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for p in processes_mentioning(str(ray_tmp)):  # the local Ray instance the driver started
        p.kill()


def summary_of(runs, preset):
    (path,) = runs.glob(f"{preset}/*/summary.json")
    return json.loads(path.read_text()), path.parent


@pytest.mark.parametrize("preset,kill_at", [("tts-smoke", 16), ("passuntil-smoke", 6)])
def test_killed_and_resumed_equals_uninterrupted(preset, kill_at, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    finish(*start(preset, whole, tmp_path, "whole"))
    proc, ray_tmp = start(preset, resumed, tmp_path, "killed")
    results = None
    deadline = time.monotonic() + 300
    while results is None and time.monotonic() < deadline:  # the run folder appears once units are known
        results = next((p / "results.jsonl" for p in resumed.glob(f"{preset}/*")), None)
        time.sleep(0.2)
    kill_after(proc, ray_tmp, results, kill_at)
    done_before = results.read_text().count("\n")
    finish(*start(preset, resumed, tmp_path, "resume"))
    want, _ = summary_of(whole, preset)
    got, run_dir = summary_of(resumed, preset)
    assert got["units_run_now"] == want["units"] - done_before > 0  # it did resume, not rerun
    assert comparable_summary(got) == comparable_summary(want)
    keys = [json.loads(line)["key"] for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == want["units"]  # no unit counted twice
