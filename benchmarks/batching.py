"""Hardware-independent batching figures for the benchmarks: what the driver sends, not how fast.

`CountingPool` wraps a pool and records every call the driver submits (requests per call,
samples per call, and the backend calls it becomes); `counted` wraps a strategy and counts its
request batches, one per problem step. `batching_figures` turns both into one dict.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Sequence


class CountingPool:
    """A pool that records the size of each call, then passes it on unchanged."""

    def __init__(self, pool):
        self.pool = pool
        self.sizes: list[int] = []  # requests per driver call
        self.samples: list[int] = []  # sequences per driver call (a request with n=16 is 16)
        self.backend_calls = 0

    def submit(self, method: str, items: Sequence, affinity=None):
        self.sizes.append(len(items))
        self.samples.append(sum(getattr(item, "n", 1) for item in items))
        # A ReplicaPool cuts a replica's share into batches of max_batch (one replica here).
        max_batch = getattr(self.pool, "max_batch", None) or len(items)
        self.backend_calls += math.ceil(len(items) / max_batch)
        return self.pool.submit(method, items, affinity=affinity)

    def wait(self, calls, num_returns=None, timeout=None):
        return self.pool.wait(calls, num_returns, timeout)


def counted(strategy, steps: Counter):
    """`strategy`, counting each request batch it yields in `steps[kind name]`."""
    reply = None
    while True:
        try:
            batch = strategy.send(reply)
        except StopIteration as stop:
            return stop.value
        steps[type(batch).__name__] += 1
        reply = yield batch


def distribution(sizes: list[int]) -> dict:
    if not sizes:
        return {"calls": 0}
    ordered = sorted(sizes)
    return {"calls": len(sizes), "mean": round(sum(sizes) / len(sizes), 2), "min": ordered[0],
            "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def batching_figures(pools: dict[str, CountingPool], steps: Counter, rounds: int) -> dict:
    """Per request kind: driver calls, backend calls, requests (and samples) per call; rounds per step."""
    figures = {}
    for kind, pool in pools.items():
        figures[kind] = {"driver_calls": len(pool.sizes), "backend_calls": pool.backend_calls,
                         "requests_per_call": distribution(pool.sizes),
                         "samples_per_call": distribution(pool.samples),
                         "problem_steps": steps[kind]}
    figures["rounds"] = rounds
    # A problem step is one policy batch of one problem (and the PRM batch that scores it).
    figures["rounds_per_problem_step"] = round(rounds / steps["Generate"], 4) if steps["Generate"] else None
    return figures
