"""ReplicaPool routing on a local Ray: balanced splits, least-loaded choice, subtree affinity,
several calls in flight, a wait with no time left, batches sent as one pickle each way, errors
that must not be retried. Replicas are tiny echo actors. And the
trainer job pool: waiting for the first call back, and one run for requests that share a key."""
import asyncio
import os
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Ray workers import this module to unpickle EchoReplica.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (os.path.dirname(__file__), os.environ.get("PYTHONPATH")) if p)

import pytest
import ray

from actors.placement import ModelPlacement
from actors.pool import ReplicaPool
from actors.trainer_pool import TrainerJobPool
from actors.wire import PickledBatch
from orchestrator.protocols import ScoreRequest, ScoreResult


class EchoReplica:
    async def echo(self, items):
        await asyncio.sleep(0.02 * len(items))
        return [(ray.get_runtime_context().get_actor_id(), x) for x in items]

    async def boom(self, items):
        raise ValueError("bad input")

    async def received(self, items):
        """What arrived (the type of the batch, the items) and a batch sent back as one pickle."""
        return PickledBatch((type(items).__name__, x) for x in items)


@pytest.fixture(scope="module")
def pool():
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="/tmp/rp-"))
    pool = ReplicaPool.launch(EchoReplica, ModelPlacement(num_replicas=3, num_cpus=0.5),
                              affinity_slack=16)
    yield pool
    pool.shutdown()
    ray.shutdown()


def served_by(pool, results):
    """Replica index behind each result."""
    index = {actor._actor_id.hex(): r for r, actor in enumerate(pool.actors)}
    return [index[actor_id] for actor_id, _ in results]


def test_big_batch_is_split_evenly_and_returned_in_order(pool):
    results = pool.call("echo", list(range(60)))
    assert [x for _, x in results] == list(range(60))
    assert sorted(served_by(pool, results).count(r) for r in range(3)) == [20, 20, 20]
    assert pool.load == [0, 0, 0]


def test_new_work_goes_to_the_least_loaded_replicas(pool):
    busy = pool.submit("echo", list(range(40)), affinity="subtree-busy")  # one key: one replica
    busy_replica = pool.affinity["subtree-busy"]
    light = pool.submit("echo", list(range(10)))
    pool.wait([busy, light])
    assert set(served_by(pool, busy.result())) == {busy_replica}
    assert busy_replica not in served_by(pool, light.result())


def test_subtree_keys_stick_to_their_replica_unless_it_is_overloaded(pool):
    first = served_by(pool, pool.call("echo", ["a1", "a2", "b1", "b2"], affinity=["a", "a", "b", "b"]))
    a_replica, b_replica = first[0], first[2]
    assert first == [a_replica, a_replica, b_replica, b_replica] and a_replica != b_replica
    for _ in range(3):  # loads are equal again: the key goes back to where its prefix is cached
        assert set(served_by(pool, pool.call("echo", ["a3", "a4"], affinity="a"))) == {a_replica}
    flood = pool.submit("echo", list(range(30)), affinity="a")  # 30 > slack of 16 above the others
    extra = pool.submit("echo", ["a5"], affinity="a")
    pool.wait([flood, extra])
    assert served_by(pool, flood.result()) == [a_replica] * 30
    assert served_by(pool, extra.result()) != [a_replica]


def test_several_calls_in_flight(pool):
    slow = pool.submit("echo", list(range(45)))
    quick = pool.submit("echo", ["q"])
    done, pending = pool.wait([slow, quick], num_returns=1)
    assert done == [quick] and pending == [slow]
    done, pending = pool.wait([slow, quick])
    assert len(done) == 2 and not pending and len(slow.result()) == 45


def test_a_wait_with_no_time_left_still_looks_at_what_came_back(pool):
    call = pool.submit("echo", ["x"])
    time.sleep(1.0)  # long past the echo's 0.02 s
    assert pool.wait([call], timeout=0) == ([call], [])


def test_batches_travel_as_one_pickle_and_arrive_as_plain_lists(pool):
    requests = [ScoreRequest(f"q{i}", ("a", "b")) for i in range(5)]
    results = pool.call("received", requests)
    assert results == [("list", r) for r in requests] and type(results) is list


def test_errors_of_the_method_are_raised_not_retried(pool):
    call = pool.submit("boom", [1, 2, 3])
    pool.wait([call])
    assert call.retries == 0
    with pytest.raises(ValueError, match="bad input"):
        call.result()
    assert all(pool.up)


class MarkJob:
    """Sleeps, then leaves a file per run in `folder` (to count runs)."""

    def __init__(self, folder, name, seconds):
        self.folder, self.name, self.seconds = folder, name, seconds

    def __call__(self, stop, on_point):
        import time
        import uuid
        time.sleep(self.seconds)
        open(os.path.join(self.folder, f"{self.name}.{uuid.uuid4().hex}"), "w").close()
        return {"name": self.name}


class MarkPool(TrainerJobPool):
    method = "mark"

    def __init__(self, folder, trainers):
        super().__init__(trainers, num_cpus=0.1)
        self.folder = folder

    def job(self, request):
        name, seconds = request
        return MarkJob(self.folder, name, seconds), None

    def reply(self, request, result, context):
        return f"marked {result['name']}"

    def key(self, request):
        return request[0]


def test_trainer_jobs_with_one_key_run_once_and_the_first_call_back_comes_first(pool, tmp_path):
    marks = MarkPool(str(tmp_path), trainers=2)
    try:
        slow = marks.submit("mark", [("a", 1.0), ("b", 0.1)])
        same = marks.submit("mark", [("a", 1.0)])  # a is running: wait for its run
        fast = marks.submit("mark", [("c", 0.1)])
        assert marks.wait([slow, same, fast], num_returns=1, timeout=0) == ([], [slow, same, fast])
        done, pending = marks.wait([slow, same, fast], num_returns=1)
        assert done == [fast] and pending == [slow, same]
        marks.wait([slow, same])
        assert slow.result() == ["marked a", "marked b"] and same.result() == ["marked a"]
        assert sorted(p.name.split(".")[0] for p in tmp_path.iterdir()) == ["a", "b", "c"]  # a ran once
    finally:
        marks.shutdown()
