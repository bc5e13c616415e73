"""The cluster's runner pool: `Execute` requests spread over trainer actors (actors/trainer.py),
one request at a time per trainer, each trainer holding `cpus_per_run` CPUs, so many ideas' runs
proceed side by side across the cluster's nodes. Each request runs as an `execute.RunJob` on
the trainer's node; idea folders must be on a filesystem every node sees (the run folder)."""
from __future__ import annotations

from actors.trainer_pool import TrainerJobPool
from orchestrator.scientist.execute import RunJob, RunnerSettings
from orchestrator.scientist.protocol import RunRequest, RunResult


class TrainerPool(TrainerJobPool):
    method = "execute"

    def __init__(self, size: int, settings: RunnerSettings, cpus_per_run: float = 1.0):
        super().__init__(size, num_cpus=cpus_per_run)
        self.settings = settings

    def job(self, request: RunRequest):
        return RunJob(request, self.settings), None

    def reply(self, request: RunRequest, result: dict, context) -> RunResult:
        return RunResult(**result)
