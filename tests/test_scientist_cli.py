"""End to end through the CLI: `scalerun run ai-scientist-smoke` on the shipped template (cut to
20 steps a run), sandboxed, on a local Ray; then a rerun that finds the idea done."""
import json
import os
import subprocess
import sys

from conftest import REPO, run_preset


def test_smoke_preset_end_to_end_and_resume(runs_dir):
    first = run_preset("ai-scientist-smoke", "progress=lines", runs_dir=runs_dir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    [run_dir] = (runs_dir / "ai-scientist-smoke").iterdir()
    [row] = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    result = row["result"]
    assert result["status"] == "done" and result["experiments_done"] == "ALL_COMPLETED"
    assert [(r["run"], r["outcome"]) for r in result["runs"]] == [(0, "ok"), (1, "ok")]
    assert result["baseline"] > 0 and result["best"] > 0 and result["best_run"] == 1
    idea = run_dir / result["folder"]
    assert sorted(result["plots"]) == ["final_val_loss.png", "val_loss.png"]
    assert all((idea / "plots" / p).stat().st_size > 1000 for p in result["plots"])
    notes = (idea / "notes.txt").read_text()
    assert "## Run 0 (baseline)" in notes and "-learning_rate = 1e-3\n" in notes.replace("    ", "")
    assert "+learning_rate = 3e-3" in notes and "Outcome: ok after 1 attempt(s)" in notes
    summary = (run_dir / "summary.md").read_text()
    assert "| 0 | learning_rate | done |" in summary and "no automated review" in summary
    assert "no web novelty search" in summary
    assert (idea / "work" / "run_1" / "final_info.json").exists()

    again = run_preset("ai-scientist-smoke", "progress=lines", runs_dir=runs_dir)
    assert again.returncode == 0 and "1 already done, 0 to run" in again.stdout


def test_bad_config_is_one_line_naming_the_key(runs_dir):
    p = run_preset("ai-scientist-smoke", "max_attempts=0", runs_dir=runs_dir)
    assert p.returncode == 2 and "max_attempts" in p.stderr + p.stdout
    p = run_preset("ai-scientist-smoke", "ideas.names=[nope]", runs_dir=runs_dir)
    assert p.returncode == 2 and "ideas.names='nope': allowed: learning_rate, model_width, longer_warmup" in p.stderr + p.stdout


SLOW_STANDIN = '''import argparse, json, os, time
value = 1.0
delay = 0.0
out = argparse.ArgumentParser()
out.add_argument("--out_dir")
out = out.parse_args().out_dir
time.sleep(delay)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "final_info.json"), "w") as f:
    json.dump({"toy": {"means": {"final_val_loss": value}}}, f)
'''


def test_killed_run_resumes_each_idea_at_its_next_run(tmp_path, runs_dir):
    """SIGKILL the whole `scalerun run` (driver, Ray, sandboxes) while run 2 sleeps, then run again:
    run 0 and run 1 are not repeated, run 2 starts over, the idea finishes."""
    import signal
    import time

    from test_scientist_loop import make_template
    template = make_template(tmp_path / "template", experiment=SLOW_STANDIN)
    (tmp_path / "data").mkdir()
    args = ["ai-scientist-smoke", f"template={template}", f"data.path={tmp_path / 'data'}", "ideas.names=[toy]",
            "max_runs=3", "run_env={}", "coder.sweeps={toy: {param: value, values: ['0.9', '0.8', '0.7']}}",
            "progress=lines"]
    env = {**os.environ, "SCALERUN_RUNS_DIR": str(runs_dir)}
    # run 2 (value 0.8) sleeps long enough to be killed in, the first time only
    slow_once = ('delay = 0.0\nif value == 0.8 and not os.path.exists("slept"):\n    open("slept", "w").close()\n'
                 '    delay = 60.0')
    (template / "experiment.py").write_text(SLOW_STANDIN.replace("delay = 0.0", slow_once))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    logs = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(runs_dir.glob("ai-scientist-smoke/*/ideas/00_toy/logs/run_2.attempt_1.stderr"))
        if found:
            logs = found[0].parent
            break
        time.sleep(0.5)
    try:
        assert logs is not None, "run 2 never started"
        time.sleep(2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    state = json.loads((logs.parent / "state.json").read_text())
    assert [r["run"] for r in state["runs"]] == [0, 1]
    before = {p.name: p.stat().st_mtime for p in logs.iterdir()}

    again = run_preset(*args, runs_dir=runs_dir)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    after = {p.name: p.stat().st_mtime for p in logs.iterdir()}
    for name in ("run_0.attempt_1.stderr", "run_1.attempt_1.stderr"):
        assert after[name] == before[name]  # finished runs are not repeated
    assert after["run_2.attempt_1.stderr"] > before["run_2.attempt_1.stderr"]  # the killed run starts over
    state = json.loads((logs.parent / "state.json").read_text())
    assert [(r["run"], r["outcome"]) for r in state["runs"]] == [(0, "ok"), (1, "ok"), (2, "ok"), (3, "ok")]
    assert state["finished"]
