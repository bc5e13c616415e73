"""Starting a model's replicas from its ModelConfig (orchestrator/models.py): placement,
backend arguments and the actors' environment, behind one ReplicaPool."""
from __future__ import annotations

from actors.placement import ModelPlacement, backend_kwargs
from actors.policy import PolicyActor
from actors.pool import ReplicaPool
from actors.prm import PRMActor, PRMConfig


def placement(m) -> ModelPlacement:
    return ModelPlacement(num_replicas=m.replicas, num_gpus=m.num_gpus, tensor_parallel=m.tensor_parallel,
                          gpu_memory_utilization=m.gpu_memory_utilization, num_cpus=m.num_cpus,
                          strategy=m.placement_strategy, node_ids=tuple(m.node_ids), max_restarts=m.max_restarts)


def transformers_dtype(m) -> str:
    """The torch dtype a transformers model runs in: `auto` is bfloat16 on a GPU, else float32."""
    if m.dtype != "auto":
        return m.dtype
    return "bfloat16" if m.num_gpus > 0 else "float32"


def actor_env(run_dir) -> dict[str, str]:
    return {"VLLM_CACHE_ROOT": str(run_dir / "vllm-cache"), "OMP_WAIT_POLICY": "PASSIVE"}


def launch_policy_pool(m, model_dir: str, run_dir) -> ReplicaPool:
    """`m.replicas` policy actors placed as configured, behind one least-loaded pool."""
    where = placement(m)
    kwargs = backend_kwargs(where, m.backend)
    if m.backend == "vllm":
        kwargs.update(enforce_eager=m.enforce_eager, dtype=m.dtype)
    else:
        kwargs.update(max_batch_size=m.batch_size, dtype=transformers_dtype(m))
    return ReplicaPool.launch(PolicyActor, where, m.backend, model_dir, env=actor_env(run_dir),
                              max_batch=m.batch_size, **kwargs)


def launch_prm_pool(m, model_dir: str, run_dir) -> ReplicaPool:
    """`m.replicas` PRM actors (transformers, incremental scoring) behind one pool."""
    where = placement(m)
    prm = PRMConfig(model=model_dir, family=m.family, batch_size=m.batch_size, dtype=transformers_dtype(m))
    return ReplicaPool.launch(PRMActor, where, prm, env=actor_env(run_dir), max_batch=m.batch_size,
                              **backend_kwargs(where, "transformers"))
