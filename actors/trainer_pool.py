"""A driver pool (`submit`, `wait`) over trainer actors (actors/trainer.py): each request becomes one
job run by one idle trainer, at most `concurrent` at once, results in request order. Subclasses
say which method they answer, how a request becomes a job (`job`) and how the job's result dict
becomes the reply (`reply`); `stored` lets a subclass answer from its durable rows without running,
and `key` names what determines a job: a request whose key is already queued or running (from any
call) waits for that run's reply instead of running again.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import ray

from actors.trainer import TrainerActor


class TrainerCall:
    def __init__(self, requests: Sequence):
        self.requests = list(requests)
        self.results: list = [None] * len(self.requests)
        self.queued = list(range(len(self.requests)))

    @property
    def done(self) -> bool:
        return all(r is not None for r in self.results)

    def result(self) -> list:
        return list(self.results)


class TrainerJobPool:
    method = ""  # the request kind's method (protocols' `method`) this pool answers

    def __init__(self, size: int, concurrent: int | None = None, **resources):
        self.trainers = [TrainerActor.options(**resources).remote() for _ in range(size)]
        self.idle = list(self.trainers)
        self.concurrent = concurrent or size
        self.running: dict[ray.ObjectRef, tuple[TrainerCall, int, Any, Any]] = {}
        self.calls: list[TrainerCall] = []
        self.sharing: dict[str, list[tuple[TrainerCall, int]]] = {}  # key queued or running -> its other askers

    def job(self, request) -> tuple[Any, Any]:
        """The job a trainer runs for `request`, and what `reply` needs to know about it."""
        raise NotImplementedError

    def reply(self, request, result: dict, context):
        raise NotImplementedError

    def stored(self, request):
        return None

    def key(self, request) -> str | None:
        return None  # no two requests share a run

    def submit(self, method: str, items: Sequence, affinity=None) -> TrainerCall:
        if method != self.method:
            raise ValueError(f"{type(self).__name__} answers {self.method}, not {method}")
        call = TrainerCall(items)
        for i in list(call.queued):
            call.results[i] = self.stored(call.requests[i])
            key = self.key(call.requests[i])
            if call.results[i] is not None:
                call.queued.remove(i)
            elif key in self.sharing:
                self.sharing[key].append((call, i))
                call.queued.remove(i)
            elif key is not None:
                self.sharing[key] = []
        if not call.done:
            self.calls.append(call)
        self._dispatch()
        return call

    def _dispatch(self) -> None:
        for call in self.calls:
            while call.queued and self.idle and len(self.running) < self.concurrent:
                i = call.queued.pop(0)
                trainer = self.idle.pop()
                job, context = self.job(call.requests[i])
                self.running[trainer.run.remote(job)] = (call, i, trainer, context)

    def wait(self, calls: Sequence[TrainerCall], num_returns: int | None = None, timeout: float | None = None):
        """Blocks until `num_returns` (default all) of `calls` are done or `timeout` passes; (done, pending)."""
        num_returns = len(calls) if num_returns is None else num_returns
        deadline = None if timeout is None else time.monotonic() + timeout
        while sum(c.done for c in calls) < num_returns:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=left)
            if not ready:
                break
            call, i, trainer, context = self.running.pop(ready[0])
            call.results[i] = self.reply(call.requests[i], ray.get(ready[0]), context)
            self.idle.append(trainer)
            for other, j in self.sharing.pop(self.key(call.requests[i]), []):
                other.results[j] = call.results[i]
            for answered in [c for c in self.calls if c.done]:
                self.calls.remove(answered)
            self._dispatch()
        return [c for c in calls if c.done], [c for c in calls if not c.done]

    def shutdown(self) -> None:
        for trainer in self.trainers:
            ray.kill(trainer)
