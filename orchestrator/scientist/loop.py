"""One idea's loop, as a generator for the driver: baseline, runs with failure feedback, plots.

It yields `Propose` batches (the coder edits experiment.py or plot.py) and `Execute` batches
(a runner runs a script in the sandbox), and returns the idea's result row. The orchestrator,
not the model, keeps the record (state.json, notes.txt, report.md in the idea's folder; the
sandbox's work folder is `work/` inside it):

- run_0, the baseline, is the template's experiment.py, run by the harness when missing;
- runs 1..max_runs each get exactly `max_attempts` attempts; an attempt is one coder answer and,
  if it is an edit that applies, one run; a failed attempt tells the coder the reason and the
  last `stderr_chars` of stderr; exit 0 without a valid final_info.json is a failure;
- after a successful run the coder sees its results, and may answer ALL_COMPLETED;
- a run whose attempts all fail is recorded as failed and the next run starts again from the
  last successful run's script;
- then plot.py runs, a failure fed back to the coder to fix plot.py, up to `plot_attempts`.
State is saved after every finished run: a killed loop restarts at the next run.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.protocols import Propose, ProposeRequest
from orchestrator.sandbox import UntrustedOutput, read_output
from orchestrator.scientist import notes, state as store
from orchestrator.edits import FORMAT, EditError, apply_edit
from orchestrator.scientist.final_info import brief, metric_value
from orchestrator.scientist.protocol import ALL_COMPLETED, HINT_EXPERIMENT, HINT_PLOT, Execute, RunRequest, RunResult
from orchestrator.scientist.state import Attempt, IdeaState, Run
from orchestrator.scientist.template import Template

MAX_PLOT_BYTES = 8 << 20


@dataclass(frozen=True)
class LoopSettings:
    max_runs: int = 5
    max_attempts: int = 4
    plot_attempts: int = 3
    run_timeout_s: float = 300.0
    plot_timeout_s: float = 60.0
    stderr_chars: int = 1500
    metric: str = "final_val_loss"
    higher_is_better: bool = False


def command(run: int) -> str:
    return f"python experiment.py --out_dir=run_{run}"


def idea_loop(idea: dict, folder: Path, template: Template, settings: LoopSettings, seed: int = 0):
    """The generator of one idea (see the module docstring); returns its result row."""
    folder = Path(folder)
    work, logs = folder / "work", folder / "logs"
    for d in (work, logs, folder / "plots"):
        d.mkdir(parents=True, exist_ok=True)
    state = store.load(folder) or IdeaState(idea=idea)

    if not state.runs:
        result = yield from _run_experiment(work, logs, 0, 1, template.experiment, settings)
        state.runs.append(Run(0, "ok" if result.ok else "failed", command(0),
                              [_attempt(1, result, change="the template as shipped")], result.results,
                              template.experiment))
        if not result.ok:
            state.experiments_done = "baseline_failed"
        _save(folder, state, settings)

    while not state.experiments_done:
        number = len(state.runs)
        if number > settings.max_runs:
            state.experiments_done = "max_runs"
            break
        script = state.last_good_script(template.experiment)
        attempts: list[Attempt] = []
        completed = False
        for a in range(1, settings.max_attempts + 1):
            request = ProposeRequest(task=_experiment_task(template, state.idea, number, a, settings), script=script,
                                     hint=HINT_EXPERIMENT, history=_history(state, attempts, settings),
                                     seed=seed * 10_000 + number * 100 + a)
            proposal = (yield Propose([request]))[0]
            if proposal.error is not None:
                attempts.append(Attempt(a, "coder_error", proposal.error))
                continue
            if proposal.edit.strip() == ALL_COMPLETED:
                completed = True
                state.closing_comment = proposal.hypothesis
                break
            try:
                edited = _edited(script, proposal.edit)
            except EditError as e:
                attempts.append(Attempt(a, "edit_error", str(e), change=proposal.hypothesis))
                continue
            diff = _diff(script, edited)
            script = edited
            result = yield from _run_experiment(work, logs, number, a, script, settings)
            attempts.append(_attempt(a, result, change=proposal.hypothesis, diff=diff))
            if result.ok:
                state.runs.append(Run(number, "ok", command(number), attempts, result.results, script))
                break
        else:
            state.runs.append(Run(number, "failed", command(number), attempts, None, script))
        if completed:
            if attempts:  # ALL_COMPLETED while fixing a failed run: the run is given up
                state.runs.append(Run(number, "abandoned", command(number), attempts, None, script))
            state.experiments_done = ALL_COMPLETED
        _save(folder, state, settings)

    if not state.finished:
        if state.experiments_done != "baseline_failed":
            yield from _plots(state, work, logs, folder, template, settings, seed)
        state.finished = True
        _save(folder, state, settings)
    return result_row(state, folder, settings)


def _run_experiment(work: Path, logs: Path, number: int, attempt: int, script: str, settings: LoopSettings):
    (work / "experiment.py").write_text(script)  # what runs is what the record holds, whatever a run rewrote
    request = RunRequest(str(work), "experiment.py", (f"--out_dir=run_{number}",),
                         str(logs / f"run_{number}.attempt_{attempt}"), settings.run_timeout_s, results=f"run_{number}")
    result: RunResult = (yield Execute([request]))[0]
    if result.ok and metric_value(result.results, settings.metric) is None:
        result.outcome, result.reason = "bad_results", f"final_info.json has no finite means.{settings.metric}"
    return result


def _edited(script: str, edit: str) -> str:
    """An empty edit runs the script again as it is (a timeout may have been the machine's)."""
    return apply_edit(script, edit)[0] if edit.strip() else script


def _plots(state: IdeaState, work: Path, logs: Path, folder: Path, template: Template, settings: LoopSettings,
           seed: int):
    script = template.plot
    state.plot_attempts = []
    for a in range(1, settings.plot_attempts + 1):
        if a > 1:  # the template's plot.py runs first; after a failure the coder fixes it
            last = state.plot_attempts[-1]
            feedback = f"plot.py failed ({last.outcome}): {last.reason}"
            if last.stderr_tail:
                feedback += f"\nLast {settings.stderr_chars} characters of stderr:\n{last.stderr_tail}"
            request = ProposeRequest(task=f"{template.system}\n\nFix plot.py so that it reads the run folders "
                                     f"(run_0 ... run_{len(state.runs) - 1}) and writes PNG plots. Answer with "
                                     f"edits of plot.py as\n{FORMAT}", script=script, hint=HINT_PLOT,
                                     history=(feedback,), seed=seed * 10_000 + 9_000 + a)
            proposal = (yield Propose([request]))[0]
            try:
                if proposal.error is not None:
                    raise EditError(f"coder error: {proposal.error}")
                edited = _edited(script, proposal.edit)
            except EditError as e:
                state.plot_attempts.append(Attempt(a, "edit_error", str(e), change=proposal.hypothesis))
                continue
            diff, script = _diff(script, edited, "plot.py"), edited
        else:
            diff = ""
        (work / "plot.py").write_text(script)
        request = RunRequest(str(work), "plot.py", (), str(logs / f"plot.attempt_{a}"), settings.plot_timeout_s)
        result: RunResult = (yield Execute([request]))[0]
        state.plot_attempts.append(_attempt(a, result, diff=diff))
        if result.ok:
            state.plots = _copy_plots(work, folder / "plots", result.plots)
            return


def _copy_plots(work: Path, dest: Path, names: list[str]) -> list[str]:
    """The PNGs plot.py wrote, read through the sandbox-output rules into the idea's folder."""
    copied = []
    for name in names:
        try:
            data = read_output(work, name, max_bytes=MAX_PLOT_BYTES)
        except (UntrustedOutput, OSError):
            continue
        (dest / Path(name).name).write_bytes(data)
        copied.append(Path(name).name)
    return copied


def _attempt(a: int, result: RunResult, change: str = "", diff: str = "") -> Attempt:
    return Attempt(a, result.outcome, result.reason, change, diff, result.stderr_tail, round(result.wall_s, 2))


def _diff(before: str, after: str, name: str = "experiment.py") -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), name, name, n=1))


def _save(folder: Path, state: IdeaState, settings: LoopSettings) -> None:
    store.save(folder, state)
    text = notes.notes_text(state, settings)
    store.write_durable(folder / "notes.txt", text)
    store.write_durable(folder / "report.md", notes.report_text(state, settings, text))


def _experiment_task(template: Template, idea: dict, number: int, attempt: int, settings: LoopSettings) -> str:
    return (f"{template.system}\n\n{template.task_description}\n\n"
            f"Idea: {idea['name']}\nTitle: {idea['title']}\nExperiment: {idea['experiment']}\n\n"
            f"You have up to {settings.max_runs} runs; each runs `python experiment.py --out_dir=run_i` (no other "
            f"arguments) and must write run_i/final_info.json. The baseline, run_0, is done. This is run {number}, "
            f"attempt {attempt} of {settings.max_attempts}. Answer with edits of experiment.py as\n{FORMAT}\n"
            f"or answer exactly {ALL_COMPLETED} if the experiments for this idea are complete.")


def _history(state: IdeaState, attempts: list[Attempt], settings: LoopSettings) -> tuple[str, ...]:
    """What the coder is told: every finished run's outcome and results, then this run's failed
    attempts with their stderr tails."""
    lines = []
    for run in state.runs:
        if run.outcome == "ok":
            what = "Baseline run_0" if run.run == 0 else f"Run {run.run} ({run.attempts[-1].change or 'no stated change'})"
            lines.append(f"{what} completed. Results: {json.dumps(run.results)}")
        else:
            lines.append(f"Run {run.run} {run.outcome} after {len(run.attempts)} attempts "
                         f"({run.attempts[-1].reason if run.attempts else 'no attempt'}); experiment.py is back at the "
                         "last successful run's version.")
    for a in attempts:
        line = f"Attempt {a.attempt} failed ({a.outcome}): {a.reason}"
        if a.stderr_tail:
            line += f"\nLast {settings.stderr_chars} characters of stderr:\n{a.stderr_tail}"
        lines.append(line)
    return tuple(lines)


def best_run(state: IdeaState, settings: LoopSettings) -> Run | None:
    """The successful run (1 and up) with the best metric."""
    scored = [r for r in state.runs[1:] if r.outcome == "ok" and metric_value(r.results, settings.metric) is not None]
    if not scored:
        return None
    key = lambda r: metric_value(r.results, settings.metric)  # noqa: E731
    return max(scored, key=key) if settings.higher_is_better else min(scored, key=key)


def result_row(state: IdeaState, folder: Path, settings: LoopSettings) -> dict:
    """The idea's row in results.jsonl."""
    baseline = metric_value(state.runs[0].results, settings.metric) if state.runs else None
    best = best_run(state, settings)
    best_value = metric_value(best.results, settings.metric) if best else None
    return {
        "status": "failed" if state.experiments_done == "baseline_failed" else "done",
        "reason": "baseline run_0 failed: " + state.runs[0].attempts[-1].reason
        if state.experiments_done == "baseline_failed" else "",
        "name": state.idea["name"], "title": state.idea["title"], "folder": str(folder),
        "experiments_done": state.experiments_done,
        "metric": settings.metric, "baseline": baseline,
        "best_run": best.run if best else None, "best": best_value,
        "improvement": None if best_value is None or baseline is None else
        (best_value - baseline if settings.higher_is_better else baseline - best_value),
        "runs": [{"run": r.run, "outcome": r.outcome, "attempts": len(r.attempts),
                  settings.metric: metric_value(r.results, settings.metric), "results": brief(r.results)}
                 for r in state.runs],
        "plots": state.plots,
    }
