"""The request kind the idea loop yields to run code, and what the coder is asked.

An idea's loop yields `Propose` batches (orchestrator.protocols, answered by a Coder) and
`Execute` batches of `RunRequest`s (answered by a runner: `execute.SandboxRunner` in one
process, `cluster.TrainerPool` over the cluster's trainers). Every run is sandboxed by the
runner; the loop only sees a `RunResult`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

# What a ProposeRequest's `hint` asks for: an edit of experiment.py, a fix of plot.py, a new idea
# (JSON), or a reflection on the last idea (JSON again, or IDEA_DONE to keep it).
HINT_EXPERIMENT, HINT_PLOT, HINT_IDEA, HINT_REFLECT = "experiment", "plot", "idea", "reflect"
ALL_COMPLETED = "ALL_COMPLETED"  # a coder's edit that ends the idea's experiments
IDEA_DONE = "I am done"  # a reflection that keeps the idea as it is


@dataclass(frozen=True)
class RunRequest:
    """Run `python <script> <args>` confined in `workdir` (read-write) for at most `timeout_s`.

    stdout and stderr go to `log_prefix` + ".stdout"/".stderr" (outside the work folder, so the
    job cannot rewrite its own record). `results` names the run folder, relative to workdir,
    whose final_info.json is read back ("" for none, as for plot.py, whose new PNGs count).
    """

    workdir: str
    script: str
    args: tuple[str, ...]
    log_prefix: str
    timeout_s: float
    results: str = ""


@dataclass
class RunResult:
    """How a run ended. outcome: ok, crashed, timeout, no_results (exit 0 without
    final_info.json), untrusted_results (a symlink or a file outside the run folder),
    bad_results (not the final_info schema), no_plots, or a sandbox limit (cpu_limit,
    memory_limit, ...). `reason` is one line; `results` the validated final_info.json."""

    outcome: str
    reason: str = ""
    returncode: int | None = None
    stderr_tail: str = ""
    results: dict | None = None
    plots: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    node_id: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass
class Execute:
    """A loop's batch of runs; answered by a runner's `execute`."""

    requests: list[RunRequest]
    method: ClassVar[str] = "execute"
