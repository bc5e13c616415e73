"""Where model replicas run: GPUs, CPUs, nodes, placement groups. Shared by policy and PRM pools.

Three shapes, all from one `ModelPlacement`:
- colocated: policy and PRM on the same GPU(s), each asking for a fraction of a GPU
  (`num_gpus=0.5`) and that fraction of its memory (vLLM's `gpu_memory_utilization`);
- separate: whole GPUs per replica, optionally pinned to nodes (soft affinity, so a replica
  whose node dies restarts elsewhere);
- tensor parallel: one placement group holding every replica's GPU bundles; bundles are
  grouped by node so one engine never spans two machines.
On a CPU machine `num_gpus=0` and `num_cpus` sets the replica's threads.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import ray
from ray.util import placement_group, placement_group_table
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy


@dataclass(frozen=True)
class ModelPlacement:
    num_replicas: int = 1
    num_gpus: float = 0.0  # per replica; per tensor-parallel worker when tensor_parallel > 1
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.9  # vLLM's share of each GPU's memory for this model
    num_cpus: float = 1.0  # per replica (per worker when tensor_parallel > 1)
    strategy: str = "PACK"  # PACK or SPREAD: how replicas (or TP bundles) spread over nodes
    node_ids: tuple[str, ...] = ()  # replica i prefers node_ids[i % len(node_ids)]
    max_restarts: int = 3

    def __post_init__(self):
        if self.num_replicas < 1 or self.tensor_parallel < 1:
            raise ValueError("num_replicas and tensor_parallel must be >= 1")
        if self.tensor_parallel > 1 and self.num_gpus <= 0:
            raise ValueError("tensor_parallel > 1 needs num_gpus > 0 per worker")
        if self.num_gpus > 1 and self.num_gpus != int(self.num_gpus):
            raise ValueError(f"num_gpus above 1 must be whole, got {self.num_gpus}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.strategy not in ("PACK", "SPREAD"):
            raise ValueError(f"strategy must be PACK or SPREAD, got {self.strategy!r}")


def engine_bundles(bundle_nodes: list[str], tensor_parallel: int) -> list[list[int]]:
    """Bundle indices of each engine: `tensor_parallel` bundles of one node, nodes in sorted order.

    Ray may interleave a placement group's bundles across nodes; taking consecutive bundles
    would then split an engine over two machines (and its all-reduce over the network).
    """
    by_node: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(bundle_nodes):
        by_node[node].append(index)
    engines = []
    for node in sorted(by_node):
        indices = by_node[node]
        if len(indices) % tensor_parallel:
            raise ValueError(f"node {node} holds {len(indices)} bundles, not a multiple of "
                             f"tensor_parallel={tensor_parallel}")
        engines += [indices[i:i + tensor_parallel] for i in range(0, len(indices), tensor_parallel)]
    return engines


def backend_kwargs(placement: ModelPlacement, backend: str) -> dict:
    """What a backend needs to know of its placement (device, threads, TP, memory share)."""
    if backend == "vllm":
        kwargs = {"tensor_parallel_size": placement.tensor_parallel,
                  "gpu_memory_utilization": placement.gpu_memory_utilization}
        if placement.tensor_parallel > 1:
            kwargs["distributed_executor_backend"] = "ray"
        return kwargs
    return {"device": "cuda" if placement.num_gpus > 0 else "cpu",
            "num_threads": max(1, int(placement.num_cpus))}


def computing_runtime_env(env: dict[str, str] | None = None) -> dict:
    """The runtime_env of an actor that computes (a model, a timed training run): Ray starts its
    workers at niceness 15 (`worker_niceness`), behind its own daemons and the driver, and a job's
    children inherit it; these run at niceness 0 instead, with `env` added."""
    return {"env_vars": {"RAY_worker_niceness": "0", **(env or {})}}


def replica_options(placement: ModelPlacement, replica: int, placement_group=None,
                    bundles: list[int] | None = None, env: dict[str, str] | None = None) -> dict:
    """Ray actor options for replica `replica` (pass the group and its bundles when TP > 1)."""
    env = dict(env or {})
    options = {"max_restarts": placement.max_restarts, "max_task_retries": 0}
    if placement.tensor_parallel > 1:
        # The engine actor is light; its vLLM workers take the GPU bundles listed here.
        env["VLLM_RAY_BUNDLE_INDICES"] = ",".join(map(str, bundles))
        env["VLLM_RAY_PER_WORKER_GPUS"] = str(placement.num_gpus)
        options.update(num_cpus=0, num_gpus=0, scheduling_strategy=PlacementGroupSchedulingStrategy(
            placement_group, placement_group_bundle_index=bundles[0],
            placement_group_capture_child_tasks=True))
    else:
        options.update(num_cpus=placement.num_cpus, num_gpus=placement.num_gpus)
        if placement.node_ids:
            node = placement.node_ids[replica % len(placement.node_ids)]
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        elif placement.strategy == "SPREAD":
            options["scheduling_strategy"] = "SPREAD"
    options["runtime_env"] = computing_runtime_env(env)
    return options


def launch_replicas(actor_cls, placement: ModelPlacement, *args, env: dict[str, str] | None = None,
                    **kwargs):
    """Starts `num_replicas` Ray actors of `actor_cls(*args, **kwargs)`; returns (actors, group).

    The placement group (None without tensor parallelism) lives as long as the replicas;
    remove it with `ray.util.remove_placement_group` after killing them.
    """
    remote_cls = ray.remote(actor_cls)
    if placement.tensor_parallel == 1:
        return [remote_cls.options(**replica_options(placement, i, env=env)).remote(*args, **kwargs)
                for i in range(placement.num_replicas)], None
    bundle = {"GPU": placement.num_gpus, "CPU": placement.num_cpus}
    group = placement_group([bundle] * (placement.num_replicas * placement.tensor_parallel),
                            strategy=placement.strategy)
    ray.get(group.ready())
    nodes = placement_group_table(group)["bundles_to_node_id"]
    engines = engine_bundles([nodes[i] for i in range(len(nodes))], placement.tensor_parallel)
    actors = [remote_cls.options(**replica_options(placement, i, group, bundles, env)).remote(*args, **kwargs)
              for i, bundles in enumerate(engines)]
    return actors, group
