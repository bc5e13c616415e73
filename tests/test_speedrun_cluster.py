"""Speedrun runs on a simulated 2-node Ray cluster (2 CPUs per node): two 2-process gloo jobs at
once, each placement group on its own node; and one job spanning both nodes."""
import pytest
import ray
import yaml
from ray.cluster_utils import Cluster

from orchestrator.speedrun.launch import RecordRun, record_placement_group
from orchestrator.speedrun.job import StopRules
from orchestrator.speedrun.records import load_record
from test_speedrun_trainer import DIST, assert_gone, pids_in_log, write_record


@pytest.fixture(scope="module")
def cluster():
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_raylet_start_wait_time_s", "120")  # a busy machine starts raylets slowly
    # Ray's temp dir comes from RAY_TMPDIR, a private short folder set in conftest.py
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"node_a": 1}, "include_dashboard": False})
    c.add_node(num_cpus=2, resources={"node_b": 1})
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
    mp.undo()


def node_label(node_id):
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    return ({"node_a", "node_b"} & set(node["Resources"])).pop()


@pytest.mark.slow
def test_two_runs_at_once_each_on_its_own_node(tmp_path, cluster):
    record = write_record(tmp_path, DIST, nproc=2)
    pgs = [record_placement_group(record, name=f"run{i}") for i in range(2)]
    ray.get([pg.ready() for pg in pgs], timeout=60)
    bundle_nodes = [ray.util.placement_group_table(pg)["bundles_to_node_id"][0] for pg in pgs]
    assert bundle_nodes[0] != bundle_nodes[1]

    runs = [RecordRun(record, pg, tmp_path / f"logs{i}", StopRules(target=2.0, timeout_s=150),
                      env={"TICK": "1.0"}, name=f"run{i}") for i, pg in enumerate(pgs)]
    results = [run.wait() for run in runs]
    for pg in pgs:
        ray.util.remove_placement_group(pg)
    for r in results:
        assert (r["reason"], r["status"]) == ("target_reached", "ok"), open(r["log_path"]).read()
        assert r["steps_to_target"] == 2
    # each run's launcher sat on its own placement group's node, one node each
    assert [r["node_id"] for r in results] == bundle_nodes
    assert sorted(node_label(r["node_id"]) for r in results) == ["node_a", "node_b"]
    # and the two runs overlapped in time
    a, b = sorted(results, key=lambda r: r["started_at"])
    assert b["started_at"] < a["started_at"] + a["wall_s"]


@pytest.mark.slow
def test_one_run_spanning_both_nodes(tmp_path, cluster):
    record = write_record(tmp_path, DIST, nproc=1)
    spec = yaml.safe_load((tmp_path / "dist.yaml").read_text())
    spec["launch"]["nnodes"] = 2
    (tmp_path / "dist.yaml").write_text(yaml.safe_dump(spec))
    record = load_record(tmp_path / "dist.yaml")
    pg = record_placement_group(record)
    ray.get(pg.ready(), timeout=60)
    r = RecordRun(record, pg, tmp_path / "logs", StopRules(target=2.0, stop_at_target=False, timeout_s=150)).wait()
    ray.util.remove_placement_group(pg)
    assert (r["reason"], r["status"]) == ("target_reached", "ok"), open(r["log_path"]).read()
    assert [p["val_loss"] for p in r["steps"]] == [3.0, 2.5, 1.9, 1.5]  # world size 2 across nodes
    assert sorted(node_label(n["node_id"]) for n in r["nodes"]) == ["node_a", "node_b"]
    assert [n["node_rank"] for n in r["nodes"]] == [0, 1]
    assert all(n["returncode"] == 0 for n in r["nodes"])
    assert len(pids_in_log(r["log_path"], "rank_pid")) == 1  # each node's log holds its own rank


@pytest.mark.slow
def test_a_dead_rank_on_one_node_ends_the_whole_run(tmp_path, cluster):
    crash = DIST.replace("    dist.barrier()\n", "    if rank == 1 and step == 1:\n        raise SystemExit(5)\n"
                         "    dist.barrier()\n")
    assert crash != DIST
    record = write_record(tmp_path, crash, nproc=1)
    spec = yaml.safe_load((tmp_path / "dist.yaml").read_text())
    spec["launch"]["nnodes"] = 2
    (tmp_path / "dist.yaml").write_text(yaml.safe_dump(spec))
    record = load_record(tmp_path / "dist.yaml")
    pg = record_placement_group(record)
    ray.get(pg.ready(), timeout=60)
    r = RecordRun(record, pg, tmp_path / "logs", StopRules(target=2.0, timeout_s=150)).wait()
    ray.util.remove_placement_group(pg)
    # Whichever node notices first crashes; the other is crashed by the broken group or stopped.
    assert all(n["returncode"] != 0 and n["reason"] in ("crashed", "stopped") for n in r["nodes"])
    assert any(n["reason"] == "crashed" for n in r["nodes"])
    assert r["status"] == "failed" and r["reason"] in ("crashed", "stopped")
    assert r["wall_s"] < 90
    ranks = [pid for n in r["nodes"] for pid in pids_in_log(n["log_path"], "rank_pid")]
    assert len(ranks) == 2
    assert_gone(ranks)
