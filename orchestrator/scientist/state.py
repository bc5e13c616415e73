"""An idea's durable record: what has happened so far, written (fsynced, replaced atomically)
after every finished run, so that a killed loop resumes at the next run and never repeats a
finished one. The record is the orchestrator's, kept outside the sandbox's work folder.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "state.json"


@dataclass
class Attempt:
    attempt: int
    outcome: str  # a RunResult outcome, or edit_error / coder_error before anything ran
    reason: str = ""
    change: str = ""  # the coder's stated hypothesis
    diff: str = ""  # what the orchestrator applied to the script
    stderr_tail: str = ""
    wall_s: float = 0.0


@dataclass
class Run:
    """One finished run: run 0 is the baseline (the template as shipped)."""

    run: int
    outcome: str  # ok, failed (every attempt failed), abandoned (ALL_COMPLETED after failures)
    command: str
    attempts: list[Attempt] = field(default_factory=list)
    results: dict | None = None  # final_info.json as read back through the sandbox rules
    script: str = ""  # experiment.py as it ran (the last attempt's)


@dataclass
class IdeaState:
    idea: dict
    runs: list[Run] = field(default_factory=list)
    experiments_done: str = ""  # why no more runs: ALL_COMPLETED, max_runs, baseline_failed
    closing_comment: str = ""  # what the coder said with its ALL_COMPLETED
    plot_attempts: list[Attempt] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)  # copied into the idea folder
    finished: bool = False

    def last_good_script(self, template_script: str) -> str:
        good = [r.script for r in self.runs if r.outcome == "ok"]
        return good[-1] if good else template_script


def write_durable(path: Path, text: str) -> None:
    """Write `text` so that after a crash the file holds either the old or the new text in full."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(folder: Path, state: IdeaState) -> None:
    write_durable(folder / STATE_FILE, json.dumps(asdict(state), indent=1))


def load(folder: Path) -> IdeaState | None:
    path = folder / STATE_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    runs = [Run(**{**r, "attempts": [Attempt(**a) for a in r["attempts"]]}) for r in raw.pop("runs")]
    plot_attempts = [Attempt(**a) for a in raw.pop("plot_attempts")]
    return IdeaState(**raw, runs=runs, plot_attempts=plot_attempts)
