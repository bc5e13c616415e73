"""The evaluator pool: a driver pool answering rollouts' `Evaluate` batches with candidate runs on
trainer actors, at most `concurrent` at once (1: one candidate timed at a time on a shared
machine), each trainer taking one record run's resources so Ray spreads them over the nodes.

A candidate is written to `<folder>/candidates/<sha>.py` and run as a `NodeJob` of its record:
the record's integrity check on the node (data hashes included), then the sandbox, with the
record's stop rules (target, timeout, `beat_time_ms`). Metrics come from the job's log parser and
the harness's clock, never from anything else the candidate says. Every finished evaluation is
fsynced to `store` at once, keyed by what determines it (script, record, seed, rules, sandbox):
a resumed or another rollout of the run asking the same gets the stored one and nothing runs
twice.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from actors.trainer_pool import TrainerJobPool
from orchestrator.agents.protocol import EvaluateRequest, Evaluation
from orchestrator.config import content_hash
from orchestrator.results import ResultStore
from orchestrator.sandbox import SandboxConfig
from orchestrator.speedrun.job import StopRules
from orchestrator.speedrun.launch import NodeJob
from orchestrator.speedrun.records import Record
from orchestrator.speedrun.replay import seconds_to_target

LOG_TAIL_BYTES = 4000


@dataclass
class EvaluationSettings:
    folder: str  # candidates/ and logs/ go here: a filesystem every node sees
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    timeout_s: float = 600.0
    clock: str = "wall"  # wall: the script's train time; cpu: the harness's process-CPU seconds
    concurrent: int = 1  # candidates running at once, whatever the number of trainers


class EvaluatorPool(TrainerJobPool):
    method = "evaluate"

    def __init__(self, records: dict[str, Record], settings: EvaluationSettings, trainers: int,
                 store: ResultStore):
        if any(r.launch.nnodes != 1 for r in records.values()):
            raise ValueError("candidates run on one node: every record needs launch.nnodes = 1")
        cpus = max(r.node_resources().get("CPU", 1) for r in records.values())
        gpus = max(r.node_resources().get("GPU", 0) for r in records.values())
        super().__init__(trainers, settings.concurrent, num_cpus=cpus, num_gpus=gpus)
        self.records, self.settings, self.store = records, settings, store

    def key(self, request: EvaluateRequest) -> str:
        return content_hash({"sha": request.sha, "record": request.record, "seed": request.seed,
                             "beat_time_ms": request.beat_time_ms, "timeout_s": self.settings.timeout_s,
                             "clock": self.settings.clock, "sandbox": dataclasses.asdict(self.settings.sandbox)}, 20)

    def stored(self, request: EvaluateRequest) -> Evaluation | None:
        row = self.store.rows.get(self.key(request))
        return Evaluation(**row.result) if row else None

    def job(self, request: EvaluateRequest) -> tuple[NodeJob, dict]:
        folder = Path(self.settings.folder)
        script = folder / "candidates" / f"{request.sha}.py"
        script.parent.mkdir(parents=True, exist_ok=True)
        if not script.exists():
            tmp = script.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(request.script)
            tmp.replace(script)
        record = self.records[request.record]
        rules = StopRules(target=record.target_val_loss, timeout_s=self.settings.timeout_s,
                          beat_time_ms=request.beat_time_ms)
        log = folder / "logs" / f"{request.sha[:16]}.seed{request.seed}.log"
        env = {"SEED": str(request.seed), "STOP_AT_TARGET": "1"}
        unit = {"sha": request.sha, "record": request.record, "seed": request.seed, "beat_time_ms": request.beat_time_ms}
        return NodeJob(record, str(log), rules, env, str(script), sandbox=self.settings.sandbox), unit

    def reply(self, request: EvaluateRequest, result: dict, unit: dict) -> Evaluation:
        evaluation = self._evaluation(result)
        self.store.append(self.key(request), unit, dataclasses.asdict(evaluation))
        return evaluation

    def _evaluation(self, result: dict) -> Evaluation:
        reason = result["reason"]
        if result.get("integrity"):
            reason = "integrity: " + "; ".join(result["integrity"])
        return Evaluation(status=result["status"], reason=reason, time_to_target_s=seconds_to_target(result, self.settings.clock)
                          if result["status"] == "ok" else None, steps_to_target=result["steps_to_target"],
                          final_val_loss=result["final_val_loss"], flags=list(result.get("flags") or []),
                          log_tail=log_tail(result["log_path"]), wall_s=result["wall_s"],
                          started_at=result["started_at"], ray_node=result.get("node_id", ""),
                          compute_seconds=result["wall_s"])


def log_tail(path) -> str:
    """The last LOG_TAIL_BYTES of a candidate's log (written by the harness; its content is the
    candidate's, so it is only ever shown to the coder)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - LOG_TAIL_BYTES))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
