"""The cluster's runner pool: `Execute` requests spread over trainer actors (actors/trainer.py),
one request at a time per trainer, each trainer holding `cpus_per_run` CPUs, so many ideas' runs
proceed side by side across the cluster's nodes. Each request runs as an `execute.RunJob` on
the trainer's node; idea folders must be on a filesystem every node sees (the run folder)."""
from __future__ import annotations

from typing import Sequence

import ray

from actors.trainer import TrainerActor
from orchestrator.scientist.execute import RunJob, RunnerSettings
from orchestrator.scientist.protocol import RunRequest, RunResult


class TrainerCall:
    def __init__(self, requests: Sequence[RunRequest]):
        self.requests = list(requests)
        self.results: list[RunResult | None] = [None] * len(self.requests)
        self.queued = list(range(len(self.requests)))

    @property
    def done(self) -> bool:
        return all(r is not None for r in self.results)

    def result(self) -> list[RunResult]:
        return list(self.results)


class TrainerPool:
    """A driver pool (`submit`, `wait`) over `size` trainer actors."""

    def __init__(self, size: int, settings: RunnerSettings, cpus_per_run: float = 1.0):
        self.settings = settings
        self.trainers = [TrainerActor.options(num_cpus=cpus_per_run).remote() for _ in range(size)]
        self.idle = list(self.trainers)
        self.running: dict[ray.ObjectRef, tuple[TrainerCall, int, object]] = {}
        self.calls: list[TrainerCall] = []

    def submit(self, method: str, items: Sequence[RunRequest], affinity=None) -> TrainerCall:
        if method != "execute":
            raise ValueError(f"TrainerPool answers execute, not {method}")
        call = TrainerCall(items)
        self.calls.append(call)
        self._dispatch()
        return call

    def _dispatch(self) -> None:
        for call in self.calls:
            while call.queued and self.idle:
                trainer = self.idle.pop()
                i = call.queued.pop(0)
                self.running[trainer.run.remote(RunJob(call.requests[i], self.settings))] = (call, i, trainer)

    def wait(self, calls: Sequence[TrainerCall]):
        while not all(c.done for c in calls):
            ready, _ = ray.wait(list(self.running), num_returns=1)
            call, i, trainer = self.running.pop(ready[0])
            call.results[i] = RunResult(**ray.get(ready[0]))
            self.idle.append(trainer)
            if call.done:
                self.calls.remove(call)
            self._dispatch()
        return list(calls), []

    def shutdown(self) -> None:
        for trainer in self.trainers:
            ray.kill(trainer)
