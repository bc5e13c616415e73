"""A policy replica dies in the middle of a batch, on a two-node Ray cluster: every request still
gets exactly one result, and the same one it would have got without the failure (the samples
depend only on the request's seed, so a retry elsewhere reproduces them)."""
import os
import signal
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import ray
from ray.cluster_utils import Cluster

from actors.placement import ModelPlacement
from actors.policy import PolicyActor, TransformersBackend
from actors.pool import ReplicaPool
from orchestrator.protocols import GenerateRequest
from test_policy_backends import STOP_CHARS, build_tiny_llama

pytestmark = pytest.mark.slow


def batch(first_seed: int, size: int = 64):
    return [GenerateRequest(prompt=f"problem {i % 7}: ", n=1 + i % 2, seed=first_seed + i, max_tokens=48,
                            stop=STOP_CHARS[:4]) for i in range(size)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    model = build_tiny_llama(str(tmp_path_factory.mktemp("tiny")))
    direct = TransformersBackend(model)
    # Session files go under RAY_TMPDIR, which conftest points into the test run's own folder.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=2) for _ in range(2)]
    ray.init(address=cluster.address)
    placement = ModelPlacement(num_replicas=2, num_cpus=1, max_restarts=2,
                               node_ids=tuple(n.node_id for n in nodes))
    pool = ReplicaPool.launch(PolicyActor, placement, "transformers", model, max_batch_size=4, max_batch=4)
    pool.call("generate", batch(0, 4))  # both replicas loaded
    yield cluster, nodes, pool, direct
    pool.shutdown()
    ray.shutdown()
    cluster.shutdown()


def submit_until_half_done(pool, requests):
    """Submits and returns once some results are in but the busiest replica still has work."""
    call = pool.submit("generate", requests)
    while call.missing == len(requests):
        pool.wait([call], timeout=0.05)
    victim = max(range(len(pool.actors)), key=lambda r: pool.load[r])
    assert pool.load[victim] > 0 and not call.done
    return call, victim


def wait_for(condition, timeout: float):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_killed_replica_process(setup):
    _, _, pool, direct = setup
    requests = batch(1000)
    pids = [where["pid"] for where in ray.get([a.location.remote() for a in pool.actors])]
    call, victim = submit_until_half_done(pool, requests)
    os.kill(pids[victim], signal.SIGKILL)
    pool.wait([call])
    assert call.retries > 0
    assert [r.samples for r in call.result()] == [r.samples for r in direct.generate(requests)]
    # Ray restarts the replica (max_restarts) and the pool takes it back.
    deadline = time.monotonic() + 90
    while not pool.up[victim]:
        assert time.monotonic() < deadline, "replica did not come back"
        pool.call("generate", batch(5000, 2))
    assert ray.get(pool.actors[victim].location.remote())["pid"] != pids[victim]


def test_removed_node(setup):
    cluster, nodes, pool, direct = setup
    requests = batch(2000)
    node_of = {n.node_id: n for n in nodes}
    replica_nodes = [node_of[where["node_id"]] for where in ray.get([a.location.remote() for a in pool.actors])]
    call, victim = submit_until_half_done(pool, requests)
    node = replica_nodes[victim]
    cluster.remove_node(node)
    pool.wait([call])
    wait_for(lambda: not any(n["Alive"] for n in ray.nodes() if n["NodeID"] == node.node_id), 60)
    results = call.result()
    assert call.retries > 0 and len(results) == len(requests)
    assert [r.samples for r in results] == [r.samples for r in direct.generate(requests)]
