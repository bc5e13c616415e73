"""K replicas of a model actor behind one call: least-loaded routing, prefix affinity, retries.

Unlike `ray.util.ActorPool` (one call per actor at a time), any number of calls are in flight
per replica, so an async engine keeps batching them. Routing sends each request to the replica
with the fewest unfinished requests, except that requests with an `affinity` key (a search
subtree) go back to the replica that served that key before, for prefix-cache hits, unless it
has more than `affinity_slack` unfinished requests above the least loaded one.

Fault tolerance: when a replica dies, its failed calls (and only those) are re-routed to the
live replicas; results are matched to requests by index, so none is lost or duplicated. The
dead replica is probed until Ray has restarted it (`max_restarts`) and then used again.
Generic over the method name: `pool.call("generate", ...)`, `pool.call("score", ...)`.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import ray
from ray.exceptions import RayActorError

from actors.placement import launch_replicas
from actors.wire import PickledBatch

PROBE_INTERVAL_S = 1.0  # between probes of a replica that is not back yet
MAX_PROBE_FAILURES = 60  # then the replica counts as dead for good (its restarts are spent)
MAX_AFFINITY_KEYS = 100_000  # subtree keys remembered


@dataclass(eq=False)  # compared by identity
class PoolCall:
    """One submitted batch; `results` are in item order once `done`."""

    method: str
    items: list
    keys: list[Hashable | None]
    results: list = field(default_factory=list)
    missing: int = 0  # items without a result yet
    error: BaseException | None = None
    retries: int = 0  # items re-sent after a replica died
    unrouted: list[int] = field(default_factory=list)  # waiting for a live replica

    @property
    def done(self) -> bool:
        return self.missing == 0 or self.error is not None

    def result(self) -> list:
        if self.error is not None:
            raise self.error
        if self.missing:
            raise RuntimeError("PoolCall.result() before the call is done; use pool.wait")
        return self.results


class ReplicaPool:
    def __init__(self, actors: Sequence[Any], affinity_slack: int = 16, max_batch: int | None = None,
                 placement_group=None):
        self.actors = list(actors)
        self.affinity_slack = affinity_slack
        self.max_batch = max_batch  # split a replica's share of a call into batches of this size
        self.placement_group = placement_group
        self.load = [0] * len(self.actors)  # unfinished requests per replica
        self.up = [True] * len(self.actors)
        self.dead = [False] * len(self.actors)  # restarts exhausted
        self.affinity: dict[Hashable, int] = {}
        self._inflight: dict[ray.ObjectRef, tuple[PoolCall, int, list[int]]] = {}
        self._probes: dict[ray.ObjectRef, int] = {}
        self._probe_due: dict[int, float] = {}
        self._probe_failures = [0] * len(self.actors)
        self._waiting: list[PoolCall] = []  # calls with items waiting for a live replica

    @classmethod
    def launch(cls, actor_cls, placement, *args, affinity_slack: int = 16, max_batch: int | None = None,
               env: dict[str, str] | None = None, **kwargs) -> "ReplicaPool":
        """Starts `placement.num_replicas` actors of `actor_cls(*args, **kwargs)` and pools them.

        Returns once every replica has loaded its model, so that a pool launched next on the
        same GPUs (a colocated PRM) measures free memory after this one took its share.
        """
        actors, group = launch_replicas(actor_cls, placement, *args, env=env, **kwargs)
        ray.get([actor.__ray_ready__.remote() for actor in actors])
        return cls(actors, affinity_slack=affinity_slack, max_batch=max_batch, placement_group=group)

    # -- public API ---------------------------------------------------------------------------

    def submit(self, method: str, items: Sequence, affinity=None) -> PoolCall:
        """Sends `items` off without waiting.

        `affinity`: None, one key (any hashable, tuples included) for all items, or a list with
        a key (or None) per item.
        """
        n = len(items)
        keys = affinity if isinstance(affinity, list) else [affinity] * n
        if len(keys) != n:
            raise ValueError(f"{len(keys)} affinity keys for {n} items")
        call = PoolCall(method=method, items=list(items), keys=keys, results=[None] * n, missing=n)
        self._route(call, list(range(n)))
        return call

    def wait(self, calls: Sequence[PoolCall], num_returns: int | None = None,
             timeout: float | None = None) -> tuple[list[PoolCall], list[PoolCall]]:
        """Blocks until `num_returns` (default all) of `calls` are done; returns (done, pending)."""
        num_returns = len(calls) if num_returns is None else num_returns
        deadline = None if timeout is None else time.monotonic() + timeout
        while sum(c.done for c in calls) < num_returns:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            self._poll(left)  # at least once, so timeout=0 looks at what came back without waiting
            if left == 0.0:
                break
        return [c for c in calls if c.done], [c for c in calls if not c.done]

    def call(self, method: str, items: Sequence, affinity=None) -> list:
        """Sync API: splits `items` across replicas, returns their results in order."""
        call = self.submit(method, items, affinity)
        self.wait([call])
        return call.result()

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        if self.placement_group is not None:
            ray.util.remove_placement_group(self.placement_group)

    # -- routing --------------------------------------------------------------------------------

    def _pick(self, key: Hashable | None, live: list[int]) -> int:
        least = min(live, key=self.load.__getitem__)
        preferred = self.affinity.get(key) if key is not None else None
        if preferred in live and self.load[preferred] - self.load[least] <= self.affinity_slack:
            return preferred
        return least

    def _route(self, call: PoolCall, indices: list[int]) -> None:
        live = [r for r in range(len(self.actors)) if self.up[r]]
        if not live:
            if all(self.dead):
                call.error = RuntimeError("every replica of the pool is dead")
                return
            call.unrouted += indices
            if call not in self._waiting:
                self._waiting.append(call)
            return
        keyed: dict[Hashable, list[int]] = defaultdict(list)
        for i in indices:
            if call.keys[i] is not None:
                keyed[call.keys[i]].append(i)
        unkeyed = [(None, [i]) for i in indices if call.keys[i] is None]  # routed one by one
        share: dict[int, list[int]] = defaultdict(list)
        for key, members in list(keyed.items()) + unkeyed:
            r = self._pick(key, live)
            if key is not None:  # most recently used last; the oldest key goes past the cap
                self.affinity.pop(key, None)
                self.affinity[key] = r
                if len(self.affinity) > MAX_AFFINITY_KEYS:
                    del self.affinity[next(iter(self.affinity))]
            share[r] += members
            self.load[r] += len(members)
        for r, members in share.items():
            size = self.max_batch or len(members)
            for b in range(0, len(members), size):
                batch = members[b:b + size]
                ref = getattr(self.actors[r], call.method).remote(PickledBatch(call.items[i] for i in batch))
                self._inflight[ref] = (call, r, batch)

    # -- completion and failures ----------------------------------------------------------------

    def _poll(self, timeout: float | None) -> None:
        now = time.monotonic()
        for r, due in list(self._probe_due.items()):
            if due <= now:
                del self._probe_due[r]
                self._probes[self.actors[r].__ray_ready__.remote()] = r
        refs = list(self._inflight) + list(self._probes)
        if self._probe_due:  # wake up for the next probe
            next_due = min(self._probe_due.values()) - now
            timeout = next_due if timeout is None else min(timeout, next_due)
        if not refs:
            if timeout is None:
                raise RuntimeError("nothing in flight and no replica to wait for")
            time.sleep(max(timeout, 0))
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            if ref in self._probes:
                self._finish_probe(ref)
            else:
                self._finish_batch(ref)

    def _finish_batch(self, ref) -> None:
        call, r, batch = self._inflight.pop(ref)
        self.load[r] -= len(batch)
        try:
            out = ray.get(ref)
        except RayActorError:  # the replica died or is unreachable: send the batch elsewhere
            self._mark_down(r)
            call.retries += len(batch)
            self._route(call, batch)
            return
        except Exception as e:  # a bug or bad input: retrying would fail the same way
            call.error = e
            return
        if len(out) != len(batch):
            call.error = RuntimeError(f"{call.method} returned {len(out)} results for {len(batch)} items")
            return
        for i, result in zip(batch, out):
            call.results[i] = result
        call.missing -= len(batch)

    def _mark_down(self, r: int) -> None:
        if self.up[r]:
            self.up[r] = False
            self._probe_due[r] = time.monotonic()
            self.affinity = {k: v for k, v in self.affinity.items() if v != r}

    def _finish_probe(self, ref) -> None:
        r = self._probes.pop(ref)
        try:
            ray.get(ref)
        except RayActorError:  # not restarted yet, or reached the old process before Ray noticed
            self._probe_failures[r] += 1
            if self._probe_failures[r] >= MAX_PROBE_FAILURES:
                self.dead[r] = True
                self._fail_if_all_dead()
            else:
                self._probe_due[r] = time.monotonic() + PROBE_INTERVAL_S
            return
        self._probe_failures[r] = 0
        self.up[r] = True
        waiting, self._waiting = self._waiting, []
        for call in waiting:
            indices, call.unrouted = call.unrouted, []
            self._route(call, indices)

    def _fail_if_all_dead(self) -> None:
        if all(self.dead):
            for call in self._waiting:
                call.error = RuntimeError("every replica of the pool is dead")
            self._waiting = []
