"""The one lockstep driver: many strategy generators at once, their requests merged into few calls.

A strategy is a generator (a search strategy, a PassUntil sampler, an agent scaffold): it yields
a request batch (`Generate`, `Score`, ... see protocols.py), receives the results in request
order, and finally returns its result. Each round, the requests of every active strategy waiting
on the same kind go out as one call to the pool that `pools` maps that kind to; the calls of one
round are in flight together, and each strategy advances as soon as its call is back. A finished
strategy is yielded with its wall seconds and the next job takes its slot.

A pool is anything with `submit(method, items, affinity) -> call`, `wait(calls)` and
`call.result()`: `actors.pool.ReplicaPool` on a cluster, `LocalPool` in one process. The driver
knows nothing of Ray.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Hashable, Iterable, Iterator, Protocol, Sequence


class Call(Protocol):
    def result(self) -> list: ...


class Pool(Protocol):
    def submit(self, method: str, items: Sequence, affinity=None) -> Call: ...

    def wait(self, calls: Sequence[Call]) -> Any: ...


class LocalCall:
    def __init__(self, results: list):
        self.results = results

    def result(self) -> list:
        return self.results


class LocalPool:
    """A pool over one in-process backend (a Policy, a Scorer, a test fake): answers at submit."""

    def __init__(self, backend):
        self.backend = backend

    def submit(self, method: str, items: Sequence, affinity=None) -> LocalCall:
        return LocalCall(getattr(self.backend, method)(list(items)))

    def wait(self, calls: Sequence[LocalCall]):
        return list(calls), []


def drive(jobs: Iterable[tuple[Any, Any]], pools: dict[type, Pool], max_active: int,
          affinity_key: Callable[[Any], Hashable] = lambda unit: None,
          stats: dict | None = None) -> Iterator[tuple[Any, Any, float]]:
    """Runs `(unit, strategy)` jobs, at most `max_active` at once; yields `(unit, result, wall_s)`.

    `pools` is the table from request kind to the pool that answers it (each kind names its
    method). `affinity_key(unit)` tags every request of a unit (a problem's requests go back to
    the replica that cached its prefixes). `stats`, if given, gathers `rounds`, the backends'
    `compute_seconds` per kind and `busy_seconds`: per round, the longest call (they run side
    by side), to compare with wall time.
    """
    stats = {} if stats is None else stats
    stats.setdefault("rounds", 0)
    stats.setdefault("busy_seconds", 0.0)
    compute = stats.setdefault("compute_seconds", {})
    todo = iter(jobs)
    active: dict[int, list] = {}  # slot -> [unit, strategy, pending batch, start time]
    next_slot = 0

    def advance(slot: int, reply) -> tuple[Any, Any, float] | None:
        unit, strategy, _, started = active[slot]
        try:
            active[slot][2] = strategy.send(reply)
        except StopIteration as stop:
            del active[slot]
            return unit, stop.value, time.monotonic() - started
        if type(active[slot][2]) not in pools:
            raise TypeError(f"no pool answers {type(active[slot][2]).__name__} requests")
        return None

    while True:
        finished = []
        while len(active) < max_active:
            job = next(todo, None)
            if job is None:
                break
            active[next_slot] = [job[0], job[1], None, time.monotonic()]
            done = advance(next_slot, None)
            next_slot += 1
            if done:
                finished.append(done)
        yield from finished
        if not active:
            return
        calls = []
        for kind, pool in pools.items():
            slots = [s for s, a in active.items() if type(a[2]) is kind]
            if not slots:
                continue
            items = [r for s in slots for r in active[s][2].requests]
            keys = [affinity_key(active[s][0]) for s in slots for _ in active[s][2].requests]
            calls.append((kind, slots, pool, pool.submit(kind.method, items, affinity=keys)))
        stats["rounds"] += 1
        busy = 0.0
        for kind, slots, pool, call in calls:
            pool.wait([call])
            results, start = call.result(), 0
            if len(results) != sum(len(active[s][2].requests) for s in slots):
                raise RuntimeError(f"{kind.__name__}: {len(results)} results for the requests sent")
            seconds = sum(getattr(r, "compute_seconds", 0.0) for r in results)
            compute[kind.__name__] = compute.get(kind.__name__, 0.0) + seconds
            busy = max(busy, seconds)
            for s in slots:
                count = len(active[s][2].requests)
                done = advance(s, results[start:start + count])
                start += count
                if done:
                    yield done
        stats["busy_seconds"] += busy
