"""notes.txt and report.md of an idea, written by the orchestrator from its own record (state.json),
so they are true whatever the model writes; the model's words appear only in the section marked
as its commentary."""
from __future__ import annotations

from orchestrator.scientist.final_info import brief, metric_value
from orchestrator.scientist.state import IdeaState

COMMENTARY_HEADER = "==== Model commentary (the coder's own words, not checked by the orchestrator) ===="


def _indent(text: str, prefix: str = "    ") -> str:
    return "".join(prefix + line + "\n" for line in text.rstrip("\n").splitlines())


def notes_text(state: IdeaState, settings) -> str:
    idea = state.idea
    out = ["Written by the scalerun orchestrator from its own record of the runs.\n",
           f"Title: {idea['title']}\n", f"Idea: {idea['name']}\n", f"Experiment description: {idea['experiment']}\n",
           f"Metric: {settings.metric} ({'higher' if settings.higher_is_better else 'lower'} is better)\n"]
    for run in state.runs:
        out.append(f"\n## Run {run.run}" + (" (baseline)\n" if run.run == 0 else "\n"))
        last = run.attempts[-1] if run.attempts else None
        change = (last.change if last else "") or "none stated"
        out.append(f"Change: {change}\n")
        if last and last.diff:
            out.append(_indent(last.diff))
        out.append(f"Command: {run.command}\n")
        for a in run.attempts:
            out.append(f"Attempt {a.attempt}: {a.outcome}" + (f" ({a.reason})" if a.reason else "")
                       + (f", {a.wall_s:.1f} s" if a.wall_s else "") + "\n")
        out.append(f"Results (final_info.json): {brief(run.results)}\n")
        out.append(f"Outcome: {run.outcome} after {len(run.attempts)} attempt(s)\n")
    if state.experiments_done:
        out.append(f"\nExperiments ended: {state.experiments_done}\n")
    if state.plot_attempts:
        out.append("\n## Plots\n")
        for a in state.plot_attempts:
            out.append(f"Attempt {a.attempt}: {a.outcome}" + (f" ({a.reason})" if a.reason else "") + "\n")
        out.append(f"Plots: {', '.join(state.plots) or 'none'}\n")
    out.append(f"\n{COMMENTARY_HEADER}\n")
    for run in state.runs[1:]:
        for a in run.attempts:
            if a.change:
                out.append(f"Run {run.run}, attempt {a.attempt}: {a.change}\n")
    if state.closing_comment:
        out.append(f"With {state.experiments_done}: {state.closing_comment}\n")
    return "".join(out)


def runs_table(state: IdeaState, settings) -> list[dict]:
    baseline = metric_value(state.runs[0].results, settings.metric) if state.runs else None
    rows = []
    for run in state.runs:
        value = metric_value(run.results, settings.metric)
        rows.append({"run": run.run, "outcome": run.outcome, "attempts": len(run.attempts),
                     settings.metric: value,
                     "vs_baseline": None if value is None or baseline is None else value - baseline,
                     "change": (run.attempts[-1].change if run.attempts else "")[:80]})
    return rows


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v).replace("|", "/").replace("\n", " ")


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(r[k]) for k in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def report_text(state: IdeaState, settings, notes: str) -> str:
    idea = state.idea
    scores = ", ".join(f"{k} {idea[k]}" for k in ("interestingness", "feasibility", "novelty"))
    out = [f"# {idea['title']}\n\n", f"Idea `{idea['name']}` ({scores}).\n\n{idea['experiment']}\n\n",
           f"## Runs\n\n{settings.metric}, {'higher' if settings.higher_is_better else 'lower'} is better; "
           "vs_baseline is the run's value minus run_0's.\n\n", markdown(runs_table(state, settings))]
    if state.plots:
        out.append("\n## Plots\n\n" + "".join(f"![{p}](plots/{p})\n\n" for p in state.plots))
    out.append(f"\n## Notes\n\n```\n{notes}```\n\nNo paper (LaTeX) is written and no automated review is run: "
               "both are out of scope.\n")
    return "".join(out)
