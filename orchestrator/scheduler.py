"""Fans work units out over the Ray cluster and hands back results as they finish.

`ray_map` keeps at most `max_in_flight` units running, so a huge sweep never floods the
object store, and a finished unit frees its slot at once. Units that die with their worker
are retried by Ray; a unit whose code raises stops the run (its finished rows are kept, and
re-running resumes).
"""
from __future__ import annotations

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
