"""End to end through the CLI: `scalerun run ai-scientist-smoke` on the shipped template (cut to
20 steps a run), sandboxed, on a local Ray; then a rerun that finds the idea done."""
import json
import os
import subprocess
import sys

from conftest import REPO


def scalerun(*args, runs_dir):
    env = {**os.environ, "SCALERUN_RUNS_DIR": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_smoke_preset_end_to_end_and_resume(runs_dir):
    first = scalerun("ai-scientist-smoke", "progress=lines", runs_dir=runs_dir)
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

    again = scalerun("ai-scientist-smoke", "progress=lines", runs_dir=runs_dir)
    assert again.returncode == 0 and "1 already done, 0 to run" in again.stdout


def test_bad_config_is_one_line_naming_the_key(runs_dir):
    p = scalerun("ai-scientist-smoke", "max_attempts=0", runs_dir=runs_dir)
    assert p.returncode == 2 and "max_attempts" in p.stderr + p.stdout
    p = scalerun("ai-scientist-smoke", "ideas.names=[nope]", runs_dir=runs_dir)
    assert p.returncode == 2 and "ideas.names='nope': allowed: learning_rate, model_width, longer_warmup" in p.stderr + p.stdout
