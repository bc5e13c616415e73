"""The one driver: many strategy generators at once, their requests merged into few calls.

A strategy is a generator (a search strategy, a PassUntil sampler, an agent scaffold): it yields
a request batch (`Generate`, `Score`, ... see protocols.py), receives the results in request
order, and finally returns its result. The active strategies form cohorts that move in rounds:
each round, a cohort's requests of one kind go out as one call to the pool that `pools` maps
that kind to, each strategy advances as soon as its call is back, and the cohort sends again
once all of its calls are back. Cohorts run independently of each other.
- One cohort (the default): lockstep, the most requests per call (batching).
- Several: while one cohort's calls run, the driver handles the others' results, so its own work
  overlaps the backends' (a cluster with many replicas).
- One per replica, each cohort's requests under one affinity key (`cohort_affinity`): a cohort's
  call goes whole to the replica that served it before, so each replica runs in step with its
  own cohort and waits for no other replica, only for the driver's handling of its own results.
- Each strategy alone (`cohorts=None`): asynchronous, for requests that take minutes, like a
  candidate's training run; whichever strategy's call is back first moves on at once.
A finished strategy is yielded with its wall seconds and the next job takes its slot.

A pool is anything with `submit(method, items, affinity) -> call`, `wait(calls, num_returns,
timeout) -> (done, pending)` and `call.result()`: `actors.pool.ReplicaPool` on a cluster,
`LocalPool` in one process. The driver knows nothing of Ray.
"""
from __future__ import annotations

import heapq
import time
from typing import Any, Callable, Hashable, Iterable, Iterator, Protocol, Sequence


class Call(Protocol):
    def result(self) -> list: ...


class Pool(Protocol):
    def submit(self, method: str, items: Sequence, affinity=None) -> Call: ...

    def wait(self, calls: Sequence[Call], num_returns: int | None = None,
             timeout: float | None = None) -> tuple[list, list]: ...


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

    def wait(self, calls: Sequence[LocalCall], num_returns: int | None = None, timeout: float | None = None):
        return list(calls), []


POLL_S = 0.002  # waiting on calls of several pools polls each in turn this long


def drive(jobs: Iterable[tuple[Any, Any]], pools: dict[type, Pool], max_active: int,
          affinity_key: Callable[[Any], Hashable] = lambda unit: None,
          stats: dict | None = None, cohorts: int | None = 1,
          cohort_affinity: bool = False) -> Iterator[tuple[Any, Any, float]]:
    """Runs `(unit, strategy)` jobs, at most `max_active` at once; yields `(unit, result, wall_s)`.

    `pools` is the table from request kind to the pool that answers it (each kind names its
    method; calls are sent in the table's order). `affinity_key(unit)` tags every request of a
    unit (a problem's requests go back to the replica that cached its prefixes). `cohorts`: see
    the module's docstring (slot i is in cohort i mod cohorts; a new job takes the lowest slot a
    finished one freed, so a cohort stays whole and in step instead of gaining members in other
    phases, whose calls would go out separately). `cohort_affinity`: every request of a cohort
    carries the key `("cohort", i)` instead of `affinity_key(unit)`; a job keeps its slot, so
    its prefixes still stay on one replica. `stats`, if given, gathers
    `rounds` (times the driver sent and waited), the backends' `compute_seconds` per kind and,
    with one cohort, `busy_seconds`: per round, the longest call (they run side by side), to
    compare with wall time.
    """
    stats = {} if stats is None else stats
    stats.setdefault("rounds", 0)
    stats.setdefault("busy_seconds", 0.0)
    compute = stats.setdefault("compute_seconds", {})
    cohort_of = (lambda slot: slot) if cohorts is None else (lambda slot: slot % cohorts)
    todo = iter(jobs)
    active: dict[int, list] = {}  # slot -> [unit, strategy, pending batch, start time]
    inflight: dict[int, list[tuple[type, list[int], Pool, Call]]] = {}  # cohort -> its (kind, slots, pool, call)
    next_slot = 0
    freed: list[int] = []  # a heap of the slots of finished strategies

    def advance(slot: int, reply) -> tuple[Any, Any, float] | None:
        unit, strategy, _, started = active[slot]
        try:
            active[slot][2] = strategy.send(reply)
        except StopIteration as stop:
            del active[slot]
            heapq.heappush(freed, slot)
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
            slot = heapq.heappop(freed) if freed else next_slot
            next_slot += slot == next_slot
            active[slot] = [job[0], job[1], None, time.monotonic()]
            done = advance(slot, None)
            if done:
                finished.append(done)
        yield from finished
        if not active:
            return
        busy_cohorts = set(inflight)
        for kind, pool in pools.items():
            waiting: dict[int, list[int]] = {}
            for s, a in active.items():
                if type(a[2]) is kind and cohort_of(s) not in busy_cohorts:
                    waiting.setdefault(cohort_of(s), []).append(s)
            for cohort, slots in waiting.items():
                items = [r for s in slots for r in active[s][2].requests]
                if cohort_affinity:
                    keys = ("cohort", cohort)
                else:
                    keys = [affinity_key(active[s][0]) for s in slots for _ in active[s][2].requests]
                call = pool.submit(kind.method, items, affinity=keys)
                inflight.setdefault(cohort, []).append((kind, slots, pool, call))
        stats["rounds"] += 1
        busy = 0.0
        calls = [(cohort, entry) for cohort, entries in inflight.items() for entry in entries]
        for cohort, entry in (calls if cohorts == 1 else first_back(calls)):
            kind, slots, pool, call = entry
            pool.wait([call])
            inflight[cohort].remove(entry)
            if not inflight[cohort]:
                del inflight[cohort]
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
        if cohorts == 1:
            stats["busy_seconds"] += busy


def first_back(calls: list[tuple[int, tuple]]) -> list[tuple[int, tuple]]:
    """The (cohort, call entry) pairs that are back once at least one is (blocking on one pool,
    polling when calls of several pools are in flight)."""
    by_pool: dict[int, list] = {}
    for cohort, entry in calls:
        by_pool.setdefault(id(entry[2]), []).append((cohort, entry))
    # Several pools: first a look at each without waiting, so a call that is back already is
    # not kept behind another pool's wait, then a short wait on each in turn.
    timeout = None if len(by_pool) == 1 else 0.0
    while True:
        for members in by_pool.values():
            pool = members[0][1][2]
            done, _ = pool.wait([entry[3] for _, entry in members], num_returns=1, timeout=timeout)
            if done:
                back = {id(c) for c in done}
                return [(cohort, entry) for cohort, entry in members if id(entry[3]) in back]
        timeout = POLL_S
