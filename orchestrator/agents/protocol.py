"""The request kind a rollout yields to run a candidate script, beside `Propose` (protocols.py).

A rollout yields `Evaluate` batches of `EvaluateRequest`s; an evaluator pool answers them
(`actors.evaluator.EvaluatorPool` over trainer actors, a fake in tests). The pool runs every
candidate sandboxed with the record's stop rules and reads its metrics from the log parser; the
rollout only sees an `Evaluation`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class EvaluateRequest:
    """Run `script` (its text; `sha` is its sha256) as a candidate of `record` with SEED=`seed`.
    `beat_time_ms` stops it once its train time passes that without reaching the target."""

    script: str
    sha: str
    record: str
    seed: int = 0
    beat_time_ms: float | None = None


@dataclass
class Evaluation:
    """How a candidate run ended. status: ok (reached the target, unflagged), failed, flagged
    (its printed times contradict the harness's clock); reason: the job's reason (job.py)."""

    status: str
    reason: str
    time_to_target_s: float | None = None
    steps_to_target: int | None = None
    final_val_loss: float | None = None
    flags: list[str] = field(default_factory=list)
    log_tail: str = ""  # the end of its log, for the coder's history
    wall_s: float = 0.0
    started_at: float = 0.0
    ray_node: str = ""
    compute_seconds: float = 0.0


@dataclass
class Evaluate:
    """A rollout's batch of candidates; answered by an evaluator's `evaluate`."""

    requests: list[EvaluateRequest]
    method: ClassVar[str] = "evaluate"
