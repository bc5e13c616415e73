"""On a simulated 2-node Ray cluster (2 CPUs per node), two trainers of the evaluator pool run two
candidates of one rollout at the same time, one on each node, sandboxed; and with the driver
asynchronous, a rollout's next candidate starts on a free trainer while another rollout's runs."""
import re

import pytest
import ray
import yaml
from ray.cluster_utils import Cluster

from actors.evaluator import EvaluationSettings, EvaluatorPool
from orchestrator.edits import search_replace
from orchestrator.agents.journal import Journal
from orchestrator.agents.protocol import Evaluate
from orchestrator.agents.scaffolds import Scaffold
from orchestrator.agents.search import Task, rollout
from orchestrator.driver import LocalPool, drive
from orchestrator.protocols import Propose, Proposal
from orchestrator.agents.coders import ScriptedCoder
from orchestrator.results import ResultStore
from orchestrator.sandbox import SandboxConfig
from orchestrator.speedrun.records import load_record

SCRIPT = """import time
pause = 4.0
time.sleep(pause)
print("step:5/5 val_loss:2.0000 train_time:100ms step_avg:20.00ms", flush=True)
"""


@pytest.fixture(scope="module")
def cluster():
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_raylet_start_wait_time_s", "120")  # a busy machine starts raylets slowly
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    c.add_node(num_cpus=2)
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
    mp.undo()


@pytest.mark.slow
def toy_record(folder):
    (folder / "toy.py").write_text(SCRIPT)
    (folder / "toy.yaml").write_text(yaml.safe_dump({
        "name": "toy/01", "script": "toy.py", "target_val_loss": 2.3, "resources_per_process": {"CPU": 2},
        "launch": {"launcher": "python"}}))
    return load_record(folder / "toy.yaml")


def test_two_trainers_evaluate_candidates_of_one_rollout_at_once_one_per_node(tmp_path, cluster):
    record = toy_record(tmp_path)
    coder = ScriptedCoder(lambda r: Proposal(search_replace("pause = 4.0", f"pause = {4.0 + r.seed % 7 / 10 + 0.05}"), "x"))
    pool = EvaluatorPool({"toy/01": record}, EvaluationSettings(str(tmp_path / "eval"), SandboxConfig(mode="auto"),
                                                                timeout_s=60, concurrent=2),
                         trainers=2, store=ResultStore(tmp_path / "evaluations.jsonl"))
    journal = Journal(tmp_path / "j.jsonl")
    try:
        search = rollout(Task("toy/01", "toy/02", SCRIPT, "Record: toy/01"),
                         Scaffold("flat2", drafts=2, branching=0, iterations=1, max_nodes=2), journal, 0, lambda s: [])
        [(_, tree, _)] = list(drive([("u", search)], {Evaluate: pool, Propose: LocalPool(coder)}, max_active=1))
    finally:
        journal.close()
        pool.shutdown()
    a, b = (tree.nodes[i].evaluation for i in (1, 2))
    assert a["status"] == b["status"] == "ok", (a, b)
    assert a["ray_node"] != b["ray_node"]
    assert a["started_at"] < b["started_at"] + b["wall_s"] and b["started_at"] < a["started_at"] + a["wall_s"]


@pytest.mark.slow
def test_asynchronous_rollouts_start_a_candidate_as_soon_as_a_trainer_is_free(tmp_path, cluster):
    """A fast rollout (1 s candidates) and a slow one (10 s) on two trainers: the fast one's drafts
    run while the slow one's root is still running (in lockstep they would wait for it)."""
    record = toy_record(tmp_path)

    def slower(request):  # a draft 0.05 s slower than the script it edits, so every candidate is new
        pause = re.search(r"^pause = (\S+)$", request.script, re.M).group(1)
        return Proposal(search_replace(f"pause = {pause}", f"pause = {float(pause) + 0.05 * (1 + request.seed % 5)}"), "x")

    pool = EvaluatorPool({"toy/01": record}, EvaluationSettings(str(tmp_path / "eval"), SandboxConfig(mode="auto"),
                                                                timeout_s=60, concurrent=2),
                         trainers=2, store=ResultStore(tmp_path / "evaluations.jsonl"))
    journals = {name: Journal(tmp_path / f"{name}.jsonl") for name in ("fast", "slow")}
    roots = {"fast": SCRIPT.replace("pause = 4.0", "pause = 1.0"), "slow": SCRIPT.replace("pause = 4.0", "pause = 10.0")}
    drafts = {"fast": 2, "slow": 1}
    try:
        jobs = [(name, rollout(Task("toy/01", "toy/02", roots[name], "Record: toy/01"),
                               Scaffold(name, drafts=drafts[name], branching=0, iterations=1, max_nodes=drafts[name]),
                               journals[name], 0, lambda s: []))
                for name in ("slow", "fast")]
        trees = {u: t for u, t, _ in drive(jobs, {Evaluate: pool, Propose: LocalPool(ScriptedCoder(slower))},
                                             max_active=2, cohorts=None)}
    finally:
        for journal in journals.values():
            journal.close()
        pool.shutdown()
    slow_root = trees["slow"].nodes[0].evaluation
    fast_drafts = [trees["fast"].nodes[i].evaluation for i in (1, 2)]
    assert all(e["status"] == "ok" for e in [slow_root, *fast_drafts]), (slow_root, fast_drafts)
    assert min(e["started_at"] for e in fast_drafts) < slow_root["started_at"] + slow_root["wall_s"]
