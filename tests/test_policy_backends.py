"""Transformers policy backend: per-request determinism, finish reasons, token counts, chat prompts.

`build_tiny_llama` is shared by the other policy/pool tests: a randomly initialised Llama with a
byte-level tokenizer, built locally so nothing is downloaded.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from orchestrator.protocols import GenerateRequest

# The tiny model ends a text at any of these bytes (as extra eos ids), so eos finishes are common.
EOS_CHARS = "ABCDEFGHIJKLMNOP"
# Stop strings the tests use: frequent enough that a random model hits them within ~20 tokens.
STOP_CHARS = tuple("abcdefghijklmnop")


def build_tiny_llama(path: str) -> str:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<s>", "</s>", "<pad>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>")
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>"
                               "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=vocab["<s>"],
                         eos_token_id=vocab["</s>"], pad_token_id=vocab["<pad>"])
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = [vocab["</s>"]] + [vocab[c] for c in EOS_CHARS]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def mixed_requests():
    """A batch with raw and chat prompts, n > 1, greedy and sampled, different lengths and stops."""
    return [
        GenerateRequest(prompt="hello 12+3", n=2, seed=5, max_tokens=30, stop=STOP_CHARS, top_p=0.9),
        GenerateRequest(prompt="x" * 40, seed=1, max_tokens=12, temperature=1.0),
        GenerateRequest(messages=(("user", "2+2?"), ("assistant", "step 1\n")), n=3, seed=9,
                        max_tokens=25, stop=STOP_CHARS),
        GenerateRequest(prompt="q", n=4, seed=11, max_tokens=40),
        GenerateRequest(messages=(("system", "be brief"), ("user", "7*6?")), seed=3, temperature=0.0,
                        max_tokens=8),
    ]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    import torch

    from actors.policy import TransformersBackend

    torch.set_num_threads(1)
    return TransformersBackend(build_tiny_llama(str(tmp_path_factory.mktemp("tiny"))), max_batch_size=4)


def texts(result):
    return [(s.text, s.finish_reason, s.num_tokens) for s in result.samples]


def assert_samples_depend_only_on_the_request(backend):
    """Each request gives the same samples alone, in a batch and in a reversed batch; returns the batch."""
    requests = mixed_requests()
    batched = backend.generate(requests)
    reversed_batch = backend.generate(requests[::-1])[::-1]
    for request, in_batch, in_reversed in zip(requests, batched, reversed_batch):
        alone = backend.generate([request])[0]
        assert texts(alone) == texts(in_batch) == texts(in_reversed)
    assert len({s.text for s in batched[3].samples}) == 4
    return batched


def test_samples_depend_only_on_the_request(backend):
    batched = assert_samples_depend_only_on_the_request(backend)
    # ...and the seed does matter: sample i uses seed + i, so samples of one request differ.
    other_seed = backend.generate([GenerateRequest(prompt="q", n=4, seed=12, max_tokens=40)])[0]
    assert texts(other_seed)[:3] == texts(batched[3])[1:]


def test_finish_reasons_and_token_counts(backend):
    requests = [GenerateRequest(prompt=f"problem {i}: ", n=2, seed=i, max_tokens=2 + 3 * (i % 6),
                                stop=STOP_CHARS)
                for i in range(12)]
    results = backend.generate(requests)
    reasons = {s.finish_reason for r in results for s in r.samples}
    assert reasons == {"stop", "eos", "length"}
    for request, result in zip(requests, results):
        assert result.prompt_tokens == len(backend.tokenizer(request.prompt)["input_ids"])
        assert result.generated_tokens == sum(s.num_tokens for s in result.samples)
        assert result.cached_prompt_tokens == 0 and result.compute_seconds > 0
        for s in result.samples:
            assert 1 <= s.num_tokens <= request.max_tokens
            assert not any(c in s.text for c in STOP_CHARS)
            assert not any(c in s.text for c in EOS_CHARS)
            if s.finish_reason == "length":
                assert s.num_tokens == request.max_tokens


def test_greedy_is_seed_independent(backend):
    a, b = backend.generate([GenerateRequest(prompt="abc", temperature=0.0, seed=s, max_tokens=10)
                             for s in (1, 2)])
    assert texts(a) == texts(b)


def test_chat_prompt_continues_assistant_turn(backend):
    from actors.policy import render_prompt

    tok = backend.tokenizer
    cont = GenerateRequest(messages=(("user", "2+2?"), ("assistant", "step 1\n")))
    assert tok.decode(render_prompt(tok, cont)) == "<user>2+2?</s><assistant>step 1\n"
    fresh = GenerateRequest(messages=(("user", "2+2?"),))
    assert tok.decode(render_prompt(tok, fresh)) == "<user>2+2?</s><assistant>"


def test_top_p_keeps_only_the_nucleus_and_sampling_follows_the_distribution():
    import numpy as np
    import torch

    from actors.policy import row_uniforms, sample_tokens

    rows = 4000
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0]).repeat(rows, 1)
    u = torch.from_numpy(row_uniforms(np.arange(rows, dtype=np.uint64), 0))
    ones = torch.ones(rows)

    def draw(temperature, top_p):
        return sample_tokens(logits, temperature * ones, top_p * ones, u)

    assert set(draw(1.0, 0.05).tolist()) == {1}
    assert set(draw(1.0, 0.6).tolist()) == {1, 2}
    assert set(draw(0.0, 1.0).tolist()) == {1}
    counts = torch.bincount(draw(1.0, 1.0), minlength=4).double() / rows
    expected = torch.softmax(torch.tensor([0.0, 3.0, 2.9, -1.0]), -1).double()
    assert torch.allclose(counts, expected, atol=0.03), (counts, expected)
    assert 0.45 < u.mean() < 0.55 and len(set(u.tolist())) == rows


def test_length_buckets_cover_every_row_once_with_bounded_padding(backend):
    lengths = [40, 150, 41, 90, 45, 149, 100, 40, 60, 200, 52]
    rows = [(k, 0) for k in range(len(lengths))]
    buckets = backend._length_buckets(rows, lengths)
    assert sorted(r for b in buckets for r in b) == rows
    for bucket in buckets:
        widths = [lengths[k] for k, _ in bucket]
        assert len(bucket) <= backend.max_batch_size and max(widths) <= backend.MAX_PADDING * min(widths)
