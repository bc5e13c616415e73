"""Placement: resource requests, colocation split, bundle grouping by node, and a tensor-parallel
placement group on a two-node cluster with logical GPUs (Ray counts GPUs it is told about)."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from actors.launch import placement
from actors.placement import ModelPlacement, backend_kwargs, engine_bundles, replica_options
from orchestrator.models import ModelConfig


def test_engine_bundles_never_span_two_nodes():
    # Ray interleaved the bundles over two nodes; consecutive pairs would each span both.
    assert engine_bundles(["n2", "n1", "n2", "n1"], 2) == [[1, 3], [0, 2]]
    assert engine_bundles(["a", "a", "b", "b", "a", "a"], 2) == [[0, 1], [4, 5], [2, 3]]
    assert engine_bundles(["a", "b", "c"], 1) == [[0], [1], [2]]
    with pytest.raises(ValueError, match="not a multiple"):
        engine_bundles(["a", "a", "a", "b"], 2)


def test_replica_options_on_cpu_and_with_node_affinity():
    cpu = replica_options(ModelPlacement(num_cpus=2, max_restarts=5), 0)
    assert cpu == {"max_restarts": 5, "max_task_retries": 0, "num_cpus": 2, "num_gpus": 0.0,
                   "runtime_env": {"env_vars": {"RAY_worker_niceness": "0"}}}
    assert backend_kwargs(ModelPlacement(num_cpus=2), "transformers") == {"device": "cpu", "num_threads": 2}
    n1, n2 = "a1" * 28, "b2" * 28  # node ids are 28-byte hex strings
    pinned = ModelPlacement(num_replicas=3, num_gpus=1, node_ids=(n1, n2))
    strategies = [replica_options(pinned, i)["scheduling_strategy"] for i in range(3)]
    assert [s.node_id for s in strategies] == [n1, n2, n1] and all(s.soft for s in strategies)
    assert replica_options(ModelPlacement(strategy="SPREAD"), 0)["scheduling_strategy"] == "SPREAD"
    assert replica_options(ModelPlacement(), 0, env={"A": "1"})["runtime_env"] == {
        "env_vars": {"RAY_worker_niceness": "0", "A": "1"}}


def test_tensor_parallel_options_point_vllm_at_its_bundles():
    tp = ModelPlacement(num_gpus=1, tensor_parallel=2, gpu_memory_utilization=0.5)
    assert backend_kwargs(tp, "vllm") == {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.5,
                                          "distributed_executor_backend": "ray"}
    options = replica_options(tp, 1, placement_group="pg", bundles=[1, 3])
    assert (options["num_gpus"], options["num_cpus"]) == (0, 0)
    assert options["scheduling_strategy"].placement_group_bundle_index == 1
    assert options["runtime_env"]["env_vars"] == {"RAY_worker_niceness": "0", "VLLM_RAY_BUNDLE_INDICES": "1,3",
                                                  "VLLM_RAY_PER_WORKER_GPUS": "1"}


def test_model_config_reaches_the_placement():
    p = placement(ModelConfig(replicas=2, num_gpus=0.5, node_ids=["x"], placement_strategy="SPREAD", max_restarts=5))
    assert (p.num_replicas, p.num_gpus, p.node_ids, p.strategy, p.max_restarts) == (2, 0.5, ("x",), "SPREAD", 5)


def test_placement_validation():
    for bad in ({"tensor_parallel": 2}, {"num_gpus": 1.5}, {"gpu_memory_utilization": 0},
                {"strategy": "STRICT"}, {"num_replicas": 0}):
        with pytest.raises(ValueError):
            ModelPlacement(**bad)


class BundleReporter:
    def where(self):
        import ray

        return os.environ["VLLM_RAY_BUNDLE_INDICES"], ray.get_runtime_context().get_node_id()


@pytest.mark.slow
def test_tensor_parallel_group_on_two_nodes():
    import ray
    from ray.cluster_utils import Cluster
    from ray.util import placement_group_table

    from actors.placement import launch_replicas

    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(__file__), os.environ.get("PYTHONPATH")) if p)
    # Session files go under RAY_TMPDIR, which conftest points into the test run's own folder.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, num_gpus=2)
        ray.init(address=cluster.address)
        placement = ModelPlacement(num_replicas=2, num_gpus=1, tensor_parallel=2, num_cpus=0.25,
                                   strategy="SPREAD")
        actors, group = launch_replicas(BundleReporter, placement)
        bundle_nodes = placement_group_table(group)["bundles_to_node_id"]
        assert len(set(bundle_nodes.values())) == 2
        engines = ray.get([a.where.remote() for a in actors])
        used = []
        for indices, actor_node in engines:
            indices = [int(i) for i in indices.split(",")]
            assert {bundle_nodes[i] for i in indices} == {actor_node}  # one machine per engine
            used += indices
        assert sorted(used) == [0, 1, 2, 3]
        ray.util.remove_placement_group(group)
    finally:
        ray.shutdown()
        cluster.shutdown()
