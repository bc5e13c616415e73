"""The runner end to end on a plug-in experiment: rows, summary files, offline W&B, resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from conftest import REPO
from wandb_offline import read_run

FIXTURE = f"experiment: {REPO}/tests/fixture_experiment.py:EXPERIMENT\n"


def write_preset(tmp_path, extra=""):
    p = tmp_path / "fixture.yaml"
    p.write_text(FIXTURE + extra)
    return p


def scalerun(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)


def rows_of(run_dir):
    return [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]


def test_run_writes_rows_summary_and_wandb(tmp_path, runs_dir, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    preset = write_preset(tmp_path, "items: 8\nscale: 2.0\n")
    p = scalerun("run", str(preset), "progress=lines")
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 0, out
    assert "[progress] fixture: 8/8" in out and "[ray] local Ray instance" in out
    run_dir = next(runs_dir.glob("fixture/*"))
    rows = rows_of(run_dir)
    assert sorted(r["unit"]["id"] for r in rows) == list(range(8))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["units"] == 8 and summary["scalars"]["n"] == 8
    assert len(summary["tables"]["values"]) == 8
    assert (run_dir / "values.png").stat().st_size > 1000
    assert "## values" in (run_dir / "summary.md").read_text()

    wb = read_run(tmp_path / "wandb")
    assert wb["config"]["items"] == 8 and wb["config"]["scale"] == 2.0
    assert len([h for h in wb["history"] if "unit/value" in h]) == 8
    assert wb["summary"]["n"] == 8
    assert abs(wb["summary"]["mean_value"] - summary["scalars"]["mean_value"]) < 1e-12
    assert wb["summary"]["table/values/nrows"] == 8

    # Re-running the same config resumes the same run folder and runs nothing again.
    p = scalerun("run", str(preset), "progress=lines")
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 0, out
    assert "8 already done, 0 to run" in out
    assert len(rows_of(run_dir)) == 8


def _ray_processes_under(tmpdir: Path):
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(tmpdir) in part for part in (proc.info["cmdline"] or [])):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, runs_dir):
    preset = write_preset(tmp_path, "items: 24\nsleep: 0.4\n")
    ray_tmp = Path(os.environ["RAY_TMPDIR"]) / "kill"
    ray_tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    p = scalerun("run", str(preset), "ray.max_in_flight=2", "progress=lines", env=env)
    results = None
    deadline = time.time() + 120
    while time.time() < deadline:
        results = next(runs_dir.glob("fixture/*/results.jsonl"), None)
        if results and len(results.read_text().splitlines()) >= 6:
            break
        time.sleep(0.1)
    assert results is not None, "no rows appeared"
    os.kill(p.pid, signal.SIGKILL)  # the driver dies mid-run ...
    p.wait()
    try:  # ... and the local Ray instance it started is cleaned up by its process group
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    done_before = len(rows_of(results.parent))
    assert 6 <= done_before < 24

    p = scalerun("run", str(preset), "progress=lines", env=env)
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 0, out
    assert f"{done_before} already done, {24 - done_before} to run" in out
    rows = rows_of(results.parent)
    ids = [r["unit"]["id"] for r in rows]
    assert sorted(ids) == list(range(24)), "a unit is missing or appears twice"

    p = scalerun("run", str(preset), "run_id=uninterrupted", "progress=quiet", env=env)
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 0, out
    clean = json.loads((runs_dir / "fixture" / "uninterrupted" / "summary.json").read_text())
    resumed = json.loads((results.parent / "summary.json").read_text())
    assert resumed["tables"] == clean["tables"] and resumed["scalars"] == clean["scalars"]
    time.sleep(1)
    assert not _ray_processes_under(ray_tmp)


def test_resume_of_unknown_run_fails_cleanly(tmp_path, runs_dir):
    preset = write_preset(tmp_path)
    p = scalerun("run", str(preset), "resume=nope")
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 2 and "resume" in out and len(out.strip().splitlines()) == 1
