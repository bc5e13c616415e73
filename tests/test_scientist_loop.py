"""The AI-Scientist idea loop on tiny stand-in scripts (no torch): feedback, attempts, failures
recorded with their reasons, notes, plots, resume. Every run goes through the real sandbox."""
import json
from pathlib import Path

import pytest

from orchestrator.driver import LocalPool, drive
from orchestrator.protocols import Propose, Proposal
from orchestrator.sandbox import SandboxConfig
from orchestrator.scientist import state as store
from orchestrator.edits import search_replace
from orchestrator.scientist.execute import RunnerSettings, SandboxRunner
from orchestrator.scientist.loop import LoopSettings, idea_loop
from orchestrator.scientist.notes import COMMENTARY_HEADER
from orchestrator.scientist.protocol import ALL_COMPLETED, Execute
from orchestrator.scientist.template import load_template

STANDIN = '''import argparse, json, os, sys, time
mode = "ok"
value = 1.0
out = argparse.ArgumentParser()
out.add_argument("--out_dir")
out = out.parse_args().out_dir
print("running", mode, file=sys.stderr)
if mode == "crash":
    print("x" * 3000 + " TAIL-MARK", file=sys.stderr)
    raise SystemExit("crashed on purpose")
if mode == "sleep":
    time.sleep(30)
os.makedirs(out, exist_ok=True)
if mode == "noinfo":
    sys.exit(0)
if mode == "symlink":
    open("planted.json", "w").write("{}")
    os.symlink("../planted.json", os.path.join(out, "final_info.json"))
    sys.exit(0)
with open(os.path.join(out, "final_info.json"), "w") as f:
    json.dump({"toy": {"means": {"final_val_loss": value}, "stderrs": {"final_val_loss": 0.0}}}, f)
'''
PLOT = '''import glob
runs = sorted(glob.glob("run_*/final_info.json"))
assert runs, "no runs"
open("losses.png", "wb").write(b"\\x89PNG fake " + str(len(runs)).encode())
'''
IDEA = {"name": "toy", "title": "A toy idea", "experiment": "Change value.", "interestingness": 1,
        "feasibility": 10, "novelty": 1}


def make_template(folder: Path, experiment: str = STANDIN, plot: str = PLOT) -> Path:
    folder.mkdir(parents=True)
    (folder / "experiment.py").write_text(experiment)
    (folder / "plot.py").write_text(plot)
    (folder / "prompt.json").write_text(json.dumps({"system": "You are a scientist.", "task_description": "Lower it."}))
    (folder / "seed_ideas.json").write_text(json.dumps([IDEA]))
    return folder


class ListCoder:
    """Answers with the given proposals in order; keeps every request."""

    def __init__(self, answers):
        self.answers, self.requests = list(answers), []

    def propose(self, requests):
        self.requests += requests
        return [self.answers.pop(0) for _ in requests]


class CountingRunner(SandboxRunner):
    """The sandboxed runner, keeping what it ran; raises after `crash_after` runs (a killed loop)."""

    def __init__(self, crash_after=None):
        super().__init__(RunnerSettings(sandbox=SandboxConfig(mode="auto"), data=None))
        self.ran, self.crash_after = [], crash_after

    def execute(self, requests, stop_event=None):
        if self.crash_after is not None and len(self.ran) >= self.crash_after:
            raise KeyboardInterrupt("killed")
        self.ran += [(r.script, r.args) for r in requests]
        return super().execute(requests, stop_event)


def edit(old, new, why=""):
    return Proposal(edit=search_replace(old, new), hypothesis=why)


def run_loop(folder, template, coder, runner, settings):
    [(_, result, _)] = list(drive([("idea", idea_loop(IDEA, folder, template, settings))],
                                  {Propose: LocalPool(coder), Execute: LocalPool(runner)}, 1))
    return result


SETTINGS = LoopSettings(max_runs=5, max_attempts=4, plot_attempts=3, run_timeout_s=1.5, plot_timeout_s=20)


def test_crash_fix_success_timeout_then_all_completed(tmp_path):
    template = load_template(make_template(tmp_path / "template"))
    coder = ListCoder([
        edit('mode = "ok"', 'mode = "crash"', "run 1: try something that crashes"),  # run 1, attempt 1
        edit('mode = "crash"\nvalue = 1.0', 'mode = "ok"\nvalue = 0.9', "fix the crash, value 0.9"),  # attempt 2
        edit("value = 0.9", "value = 0.8", "value 0.8"),  # run 2
        edit('mode = "ok"', 'mode = "sleep"', "a slow change"), Proposal(edit=""), Proposal(edit=""),
        Proposal(edit=""),  # run 3: four timeouts
        Proposal(edit=ALL_COMPLETED, hypothesis="done: 0.8 is the best"),  # run 4
    ])
    runner = CountingRunner()
    folder = tmp_path / "idea"
    result = run_loop(folder, template, coder, runner, SETTINGS)

    # the prompt after the crash holds the stderr tail, cut to the last 1,500 characters
    after_crash = coder.requests[1].history[-1]
    assert "TAIL-MARK" in after_crash and "crashed on purpose" in after_crash
    tail = after_crash.split("stderr:\n", 1)[1]
    assert len(tail) == 1500
    # after a success the coder sees its results
    assert any('"final_val_loss": 0.9' in line for line in coder.requests[2].history)
    state = store.load(folder)
    assert [(r.run, r.outcome, len(r.attempts)) for r in state.runs] == [
        (0, "ok", 1), (1, "ok", 2), (2, "ok", 1), (3, "failed", 4)]
    assert [a.outcome for a in state.runs[3].attempts] == ["timeout"] * SETTINGS.max_attempts
    assert state.experiments_done == ALL_COMPLETED
    assert coder.answers == []  # ALL_COMPLETED came at run 4's first attempt and ended the runs
    # run 4 started from run 2's script (the last success), not run 3's sleeping one
    assert 'mode = "ok"' in coder.requests[-1].script and "value = 0.8" in coder.requests[-1].script
    assert result["best_run"] == 2 and result["best"] == pytest.approx(0.8) and result["baseline"] == 1.0
    assert result["improvement"] == pytest.approx(0.2)

    notes = (folder / "notes.txt").read_text()
    for needle in ("Title: A toy idea", "## Run 0 (baseline)", "## Run 1", "## Run 2", "## Run 3",
                   "python experiment.py --out_dir=run_2", "Outcome: failed after 4 attempt(s)",
                   "Attempt 1: crashed", "Attempt 2: ok", "final_val_loss=0.8", "Experiments ended: ALL_COMPLETED"):
        assert needle in notes, needle
    orchestrator_part, commentary = notes.split(COMMENTARY_HEADER)
    assert "fix the crash" in commentary and "done: 0.8 is the best" in commentary
    assert (folder / "plots" / "losses.png").read_bytes().startswith(b"\x89PNG")
    report = (folder / "report.md").read_text()
    assert "![losses.png](plots/losses.png)" in report and "| 3 | failed | 4 |" in report
    assert "No paper (LaTeX)" in report


@pytest.mark.parametrize("mode,outcome,reason", [
    ("noinfo", "no_results", "exit 0 without run_1/final_info.json"),
    ("symlink", "untrusted_results", "is a symlink"),
])
def test_bad_results_are_recorded_failures_and_the_loop_goes_on(tmp_path, mode, outcome, reason):
    template = load_template(make_template(tmp_path / "template"))
    coder = ListCoder([edit('mode = "ok"', f'mode = "{mode}"', "bad")] + [Proposal(edit="")] * 3
                      + [edit("value = 1.0", "value = 0.5", "good"), Proposal(edit=ALL_COMPLETED)])
    folder = tmp_path / "idea"
    result = run_loop(folder, template, coder, CountingRunner(), SETTINGS)
    state = store.load(folder)
    run1 = state.runs[1]
    assert run1.outcome == "failed" and [a.outcome for a in run1.attempts] == [outcome] * 4
    assert reason in run1.attempts[0].reason
    assert state.runs[2].outcome == "ok" and result["best"] == 0.5  # the loop went on
    assert f"Attempt 1: {outcome}" in (folder / "notes.txt").read_text()


def test_edit_format_errors_count_as_attempts(tmp_path):
    template = load_template(make_template(tmp_path / "template"))
    coder = ListCoder([Proposal(edit="just make it better")] * 3 + [edit("value = 7", "value = 2")]
                      + [Proposal(edit=ALL_COMPLETED)])
    folder = tmp_path / "idea"
    run_loop(folder, template, coder, CountingRunner(), SETTINGS)
    run1 = store.load(folder).runs[1]
    assert [a.outcome for a in run1.attempts] == ["edit_error"] * 4
    assert "the edit is in neither format" in run1.attempts[0].reason
    assert "SEARCH text is not in the file" in run1.attempts[3].reason
    assert "neither format" in coder.requests[1].history[-1]  # the coder is told why


def test_plot_failure_is_fed_back_and_fixed(tmp_path):
    broken = PLOT.replace('assert runs, "no runs"', 'raise RuntimeError("plot bug")')
    template = load_template(make_template(tmp_path / "template", plot=broken))
    coder = ListCoder([Proposal(edit=ALL_COMPLETED),
                       Proposal(edit=search_replace('raise RuntimeError("plot bug")', "pass"), hypothesis="fix")])
    folder = tmp_path / "idea"
    run_loop(folder, template, coder, CountingRunner(), SETTINGS)
    state = store.load(folder)
    assert [a.outcome for a in state.plot_attempts] == ["crashed", "ok"]
    assert "plot bug" in coder.requests[1].history[0] and coder.requests[1].hint == "plot"
    assert state.plots == ["losses.png"]


def test_killed_mid_idea_resumes_at_the_next_run(tmp_path):
    template = load_template(make_template(tmp_path / "template"))
    answers = [edit("value = 1.0", "value = 0.9"), edit("value = 0.9", "value = 0.8"),
               edit("value = 0.8", "value = 0.7"), Proposal(edit=ALL_COMPLETED)]
    folder = tmp_path / "idea"
    first = CountingRunner(crash_after=3)  # baseline, run 1, run 2, then killed as run 3 starts
    with pytest.raises(KeyboardInterrupt):
        run_loop(folder, template, ListCoder(answers), first, SETTINGS)
    assert [r.run for r in store.load(folder).runs] == [0, 1, 2]
    assert "## Run 2" in (folder / "notes.txt").read_text()

    # the coder is asked again for run 3, from run 2's script; nothing finished runs again
    coder = ListCoder([edit("value = 0.8", "value = 0.7"), Proposal(edit=ALL_COMPLETED)])
    second = CountingRunner()
    result = run_loop(folder, template, coder, second, SETTINGS)
    assert second.ran == [("experiment.py", ("--out_dir=run_3",)), ("plot.py", ())]
    assert "value = 0.8" in coder.requests[0].script and "run 3, attempt 1" in coder.requests[0].task
    assert [(r["run"], r["outcome"]) for r in result["runs"]] == [(0, "ok"), (1, "ok"), (2, "ok"), (3, "ok")]
    assert result["best"] == pytest.approx(0.7)


def test_a_failed_baseline_ends_the_idea_with_its_reason(tmp_path):
    template = load_template(make_template(tmp_path / "template", experiment='raise SystemExit("no data")\n'))
    folder = tmp_path / "idea"
    result = run_loop(folder, template, ListCoder([]), CountingRunner(), SETTINGS)
    assert result["status"] == "failed" and "no data" in result["reason"]
    assert store.load(folder).plot_attempts == []


def test_max_runs_ends_the_experiments(tmp_path):
    template = load_template(make_template(tmp_path / "template"))
    coder = ListCoder([edit("value = 1.0", "value = 0.9"), edit("value = 0.9", "value = 0.8")])
    folder = tmp_path / "idea"
    settings = LoopSettings(max_runs=2, max_attempts=4, run_timeout_s=5, plot_timeout_s=20)
    result = run_loop(folder, template, coder, CountingRunner(), settings)
    assert [r["run"] for r in result["runs"]] == [0, 1, 2] and result["experiments_done"] == "max_runs"
