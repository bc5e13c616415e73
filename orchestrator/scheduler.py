"""Fans work units out over the Ray cluster and hands back results as they finish.

`ray_map` keeps at most `max_in_flight` units running, so a huge sweep never floods the
object store, and a finished unit frees its slot at once. Units that die with their worker
are retried by Ray; a unit whose code raises stops the run (its finished rows are kept, and
re-running resumes).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator

import ray


def ray_map(fn: Callable[[Any, dict], dict], cfg: Any, units: Iterable[dict], max_in_flight: int,
            num_cpus: float = 1, max_retries: int = 3) -> Iterator[tuple[dict, dict]]:
    remote = ray.remote(num_cpus=num_cpus, max_retries=max_retries)(fn)
    cfg_ref = ray.put(cfg)
    todo = iter(units)
    in_flight: dict[ray.ObjectRef, dict] = {}

    def fill() -> None:
        while len(in_flight) < max_in_flight:
            unit = next(todo, None)
            if unit is None:
                return
            in_flight[remote.remote(cfg_ref, unit)] = unit

    fill()
    while in_flight:
        done, _ = ray.wait(list(in_flight), num_returns=1)
        unit = in_flight.pop(done[0])
        result = ray.get(done[0])
        fill()
        yield unit, result


def drive_searches(jobs: Iterable[tuple[dict, Any]], policy_pool, prm_pool, max_active: int,
                   affinity_key: Callable[[dict], Any] = lambda unit: unit.get("problem"),
                   stats: dict | None = None) -> Iterator[tuple[dict, Any, float]]:
    """Runs search strategies (see orchestrator.search.base) of many units at once.

    Each round, the requests of every active unit waiting on the policy go out as one pool
    call and those waiting on the PRM as another, both in flight together; the pools split
    them over their replicas. A finished unit is yielded with its SearchResult and its wall
    seconds, and a new unit takes its place in the next round. Mirrors `search.base.run_many`.
    `stats`, if given, gathers rounds and backend compute seconds: `busy_seconds` sums, per
    round, the longer of the two calls (they run side by side), to compare with wall time.
    """
    stats = {} if stats is None else stats
    for key in ("rounds", "policy_compute_seconds", "prm_compute_seconds", "busy_seconds"):
        stats.setdefault(key, 0)
    from orchestrator.search.base import Generate

    todo = iter(jobs)
    active: dict[int, list] = {}  # slot -> [unit, strategy, pending op, start time]
    next_slot = 0

    def advance(slot: int, reply) -> tuple[dict, Any, float] | None:
        unit, strategy, _, started = active[slot]
        try:
            active[slot][2] = strategy.send(reply)
        except StopIteration as stop:
            del active[slot]
            return unit, stop.value, time.monotonic() - started
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
        for method, pool, is_kind in (("generate", policy_pool, True), ("score", prm_pool, False)):
            slots = [s for s, a in active.items() if isinstance(a[2], Generate) == is_kind]
            if not slots:
                continue
            items = [r for s in slots for r in active[s][2].requests]
            keys = [affinity_key(active[s][0]) for s in slots for _ in active[s][2].requests]
            calls.append((slots, pool, pool.submit(method, items, affinity=keys)))
        stats["rounds"] += 1
        busy = 0.0
        for slots, pool, call in calls:
            pool.wait([call])
            results, start = call.result(), 0
            seconds = sum(r.compute_seconds for r in results)
            stats["policy_compute_seconds" if pool is policy_pool else "prm_compute_seconds"] += seconds
            busy = max(busy, seconds)
            for s in slots:
                count = len(active[s][2].requests)
                done = advance(s, results[start:start + count])
                start += count
                if done:
                    yield done
        stats["busy_seconds"] += busy
