"""PRM families and incremental scoring, on tiny random models of each family's architecture.

No weights can be downloaded, so each family gets a randomly initialised model of its real
architecture and a word-level tokenizer whose pre-tokenizer and special tokens mimic the real
one, saved as a checkpoint and loaded through the family's own loader. Scores are compared with
each model card's reference recipe (a full forward pass, positions found the reference way),
which checks formatting and read-out positions; the values themselves mean nothing.
"""
import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from torch import nn
from transformers import (LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM,
                          PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, Qwen2Model)

from actors.prm import PRMConfig, PRMScorer
from actors.prm_families import FAMILIES, family_for
from orchestrator.protocols import ScoreRequest

torch.set_num_threads(1)

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
STEPS = [f"Step {k}: he has 3 + {k} = {3 + k} apples." for k in range(1, 11)]

LLAMA3_TEMPLATE = (  # Llama 3's template, without 3.1's date block
    "{% for m in messages %}{% set content = '<|start_header_id|>' + m['role'] + "
    "'<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}")
LLAMA3_SPLIT = (  # Llama 3's pre-tokenizer pattern: "\n\n" is one piece
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_PRE = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's pattern, near enough
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}")


def word_tokenizer(pre_tokenizer, texts, specials, bos=None, add_bos=False, template=None,
                   byte_level=False):
    """A word-level tokenizer whose words are the pre-tokenizer's pieces of `texts`."""
    pieces = sorted({p for t in texts for p, _ in pre_tokenizer.pre_tokenize_str(t)})
    vocab = {w: i for i, w in enumerate(["<unk>"] + pieces)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizer
    core.decoder = decoders.ByteLevel() if byte_level else decoders.Metaspace()
    core.add_special_tokens(list(specials))
    if add_bos:
        core.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, core.token_to_id(bos))])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token=bos,
                                  eos_token=specials[-1], clean_up_tokenization_spaces=False)
    if template:
        tok.chat_template = template
    return tok


def corpus(*extra):
    """Texts whose pieces make the vocabulary: everything the tests encode."""
    return [QUESTION, *STEPS, QUESTION + " " + STEPS[0], "+ -", "+", "-", "\n", "\n\n",
            "system", "user", "assistant", *extra]


def save(folder, model, tok):
    model.save_pretrained(folder)
    tok.save_pretrained(folder / "tokenizer")


def tiny(config_class, vocab_size, **kw):
    torch.manual_seed(0)
    return config_class(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=1024, **kw)


def add_tensors(folder, tensors):
    """Adds head weights to a saved checkpoint, where the released PRMs keep them."""
    path = folder / "model.safetensors"
    state = {**load_file(path), **{k: v.contiguous() for k, v in tensors.items()}}
    save_file(state, path, metadata={"format": "pt"})


def build_math_shepherd(folder):
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex("\n"), "isolated"),
                                   pre_tokenizers.Metaspace("▁", prepend_scheme="first")])
    text = QUESTION + " " + "\n".join(f"{s} ки" for s in STEPS)
    tok = word_tokenizer(pre, corpus(text, "ки"), ["<s>", "</s>"], bos="<s>", add_bos=True)
    model = MistralForCausalLM(tiny(MistralConfig, len(tok))).eval()
    save(folder, model, tok)
    return model, tok


def build_rlhflow(folder):
    specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok = word_tokenizer(pre, corpus(), specials, bos="<|begin_of_text|>",
                         template=LLAMA3_TEMPLATE, byte_level=True)
    model = LlamaForCausalLM(tiny(LlamaConfig, len(tok))).eval()
    save(folder, model, tok)
    return model, tok


class QwenProcessRewardModel(nn.Module):
    """The layout of Qwen2ForProcessRewardModel: Qwen2Model `model` and an MLP `score` head."""

    def __init__(self, config):
        super().__init__()
        self.model = Qwen2Model(config)
        d = config.hidden_size
        self.score = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 2))


def build_qwen_prm(folder):
    specials = ["<|im_start|>", "<|im_end|>", "<extra_0>", "<|endoftext|>"]
    tok = word_tokenizer(QWEN_PRE, corpus(FAMILIES["qwen-math-prm"].system), specials,
                         template=QWEN_TEMPLATE, byte_level=True)
    config = tiny(Qwen2Config, len(tok))
    model = QwenProcessRewardModel(config).eval()
    config.save_pretrained(folder)
    tok.save_pretrained(folder / "tokenizer")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    return model, tok


def build_skywork(folder):
    texts = corpus("<|endoftext|>" + QUESTION + "\n", "Another?", "Yet another?")
    tok = word_tokenizer(QWEN_PRE, texts, ["<|endoftext|>"], bos="<|endoftext|>", byte_level=True)
    model = Qwen2ForCausalLM(tiny(Qwen2Config, len(tok))).eval()
    v_head = nn.Linear(32, 1)
    save(folder, model, tok)
    add_tensors(folder, {"v_head.summary.weight": v_head.weight,
                         "v_head.summary.bias": v_head.bias})
    return (model, v_head), tok


def close(got, want, atol=1e-4):
    return len(got) == len(want) and torch.allclose(torch.tensor(got), torch.tensor(want),
                                                    atol=atol)


def load(folder, family, **kw):
    """The scorer, as configured for a checkpoint folder.

    The tokenizers built here sit in their own folder: next to a Qwen2 model config,
    transformers 5 would rebuild them as its own tokenizer class.
    """
    tokenizer = folder / "tokenizer"
    return PRMScorer.from_config(PRMConfig(model=str(folder), family=family, **kw,
                                           tokenizer=str(tokenizer) if tokenizer.exists() else ""))


# The reference recipes, as in each model card / search-and-learn: one full forward pass.

@torch.no_grad()
def reference_math_shepherd(model, tok, question, steps):
    ids = torch.tensor([tok.encode(question + " " + "\n".join(f"{s} ки" for s in steps))])
    good_bad = tok.encode("+ -")[1:]
    probs = model(ids).logits[:, :, good_bad].softmax(-1)[:, :, 0]
    return probs[ids == tok.encode("ки")[-1]].tolist()


@torch.no_grad()
def reference_rlhflow(model, tok, question, steps):
    plus_minus = [tok.encode("+")[-1], tok.encode("-")[-1]]
    chat, scores = [], []
    for k, step in enumerate(steps):
        chat += [{"role": "user", "content": question + " " + step if k == 0 else step},
                 {"role": "assistant", "content": "+"}]
        ids = tok.apply_chat_template(chat, return_tensors="pt", return_dict=False)
        scores.append(model(ids).logits[0, -3, plus_minus].softmax(-1)[0].item())
    return scores


@torch.no_grad()
def reference_qwen_prm(model, tok, question, steps):
    messages = [{"role": "system", "content": FAMILIES["qwen-math-prm"].system},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
    ids = torch.tensor([tok.encode(tok.apply_chat_template(messages, tokenize=False))])
    probs = model.score(model.model(ids).last_hidden_state).softmax(-1)[..., 1]
    return probs[ids == tok.encode("<extra_0>")[0]].tolist()


@torch.no_grad()
def reference_skywork(parts, tok, question, steps):
    model, v_head = parts
    ids = tok.encode(tok.bos_token + question + "\n")
    step_id = tok.encode("\n")[-1]
    flags = [0] * len(ids)
    for step in steps:
        ids += tok.encode(step) + [step_id]
        flags += [0] * len(tok.encode(step)) + [1]
    hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
    values = torch.sigmoid(v_head(hidden)).squeeze(-1)
    return values[torch.tensor(flags) == 1].tolist()


def build_tinyworld(folder):
    from orchestrator.tinyworld.tokenizer import build_tokenizer
    tok = build_tokenizer()
    from orchestrator.tinyworld.prm_model import Readout, save_prm
    model = LlamaForCausalLM(tiny(LlamaConfig, len(tok))).eval()
    save_prm(model, tok, Readout(scale=0.7, bias=1.5), folder)  # as the project saves it
    return model, tok


def reference_tinyworld(model, tok, question, steps):
    from orchestrator.tinyworld.prm_model import Readout, score_with
    return score_with(model, tok, Readout(scale=0.7, bias=1.5), [(question, steps)])[0]


CASES = {
    "tinyworld": (build_tinyworld, reference_tinyworld),
    "math-shepherd": (build_math_shepherd, reference_math_shepherd),
    "rlhflow": (build_rlhflow, reference_rlhflow),
    "qwen-math-prm": (build_qwen_prm, reference_qwen_prm),
    "skywork-o1-prm": (build_skywork, reference_skywork),
}


def check_family(tmp_path, name):
    build, reference = CASES[name]
    model, tok = build(tmp_path)
    scorer = load(tmp_path, name, batch_size=3)
    steps = STEPS[:4]
    enc = scorer.family.encode(QUESTION, steps)
    assert tok.unk_token_id not in enc.ids
    assert len(enc.readouts) == len(enc.step_ends) == len(steps)
    assert all(max(r) < e for r, e in zip(enc.readouts, enc.step_ends))
    assert enc.step_ends[-1] == len(enc.ids)
    # Without the cache, then with the prefix cached: both equal the model card's recipe.
    want = reference(model, tok, QUESTION, steps)
    for req in (ScoreRequest(QUESTION, tuple(steps[:2])), ScoreRequest(QUESTION, tuple(steps))):
        got = scorer.score([req])[0]
        assert close(got.step_scores, want[:len(req.steps)], atol=1e-5)
    assert got.tokens_computed == enc.step_ends[-1] - enc.step_ends[1]
    return scorer, enc, tok


def test_tinyworld_reads_every_token_of_each_step(tmp_path):
    scorer, enc, tok = check_family(tmp_path, "tinyworld")
    # The last delimiter's second token predicts nothing of these steps: it is not run.
    assert tok.decode(enc.ids) == "<bos>" + "\n\n".join([QUESTION, *STEPS[:4]]) + "\n"
    for step, positions in zip(STEPS, enc.readouts):  # each position predicts the next token
        assert tok.decode([enc.ids[p + 1] for p in positions]) == step
    # The cached prefix of a step stops before its delimiter's last token, which predicts the
    # next step's first token.
    assert all(tok.decode(enc.ids[e - 1:e + 1]) == "\n\n" and e == r[0]
               for e, r in zip(enc.step_ends, enc.readouts[1:]))
    # A step's score is the running minimum: never above the step before it.
    scores = scorer.score([ScoreRequest(QUESTION, tuple(STEPS[:4]))])[0].step_scores
    assert all(b <= a for a, b in zip(scores, scores[1:]))


def test_math_shepherd_tags_each_step_and_reads_at_the_tag(tmp_path):
    scorer, enc, tok = check_family(tmp_path, "math-shepherd")
    assert enc.ids[0] == tok.bos_token_id
    assert tok.decode(enc.ids[1:]) == QUESTION + " " + "\n".join(f"{s} ки" for s in STEPS[:4])
    assert {tok.convert_ids_to_tokens(enc.ids[r]) for (r,) in enc.readouts} == {"▁ки"}
    assert tok.convert_ids_to_tokens(scorer.family.pair) == ["▁+", "▁-"]


def test_rlhflow_reads_where_the_assistant_says_plus(tmp_path):
    scorer, enc, tok = check_family(tmp_path, "rlhflow")
    tokens = tok.convert_ids_to_tokens(enc.ids)
    assert tokens.count("<|eot_id|>") == 8 and tokens[-1] == "<|eot_id|>"
    for (r,) in enc.readouts:  # the end of an assistant turn's header, which predicts its "+"
        assert tokens[r - 2:r + 3] == ["assistant", "<|end_header_id|>", "ĊĊ", "+", "<|eot_id|>"]
    text = tok.decode(enc.ids)
    assert text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                           + QUESTION + " " + STEPS[0] + "<|eot_id|>")


def test_qwen_prm_separates_steps_with_extra_0(tmp_path):
    scorer, enc, tok = check_family(tmp_path, "qwen-math-prm")
    text = tok.decode(enc.ids)
    assert text.startswith("<|im_start|>system\nPlease reason step by step")
    assert text.endswith("<|im_start|>assistant\n" + "<extra_0>".join(STEPS[:4]) + "<extra_0>")
    assert {tok.convert_ids_to_tokens(enc.ids[r]) for (r,) in enc.readouts} == {"<extra_0>"}


def test_skywork_ends_each_step_with_a_newline(tmp_path):
    scorer, enc, tok = check_family(tmp_path, "skywork-o1-prm")
    assert tok.decode(enc.ids) == "<|endoftext|>" + QUESTION + "\n" + "".join(
        s + "\n" for s in STEPS[:4])
    assert {tok.convert_ids_to_tokens(enc.ids[r]) for (r,) in enc.readouts} == {"Ċ"}


def test_family_is_found_from_the_released_model_name():
    assert family_for("Qwen/Qwen2.5-Math-PRM-7B").name == "qwen-math-prm"
    assert family_for("Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B").name == "skywork-o1-prm"
    assert family_for("anything", "rlhflow").name == "rlhflow"
    for model, family in (("my/prm", ""), ("x", "nope")):
        with pytest.raises(ValueError):
            family_for(model, family)


# Incremental scoring, on the Skywork layout (any family shares the same loop).

def chain(n=10):
    """The requests of a 10-step search path: each extends the previous one by a step."""
    return [ScoreRequest(QUESTION, tuple(STEPS[:k])) for k in range(1, n + 1)]


def test_incremental_scores_equal_full_rescoring_and_cost_linear_tokens(tmp_path):
    build_skywork(tmp_path)
    cached = load(tmp_path, "skywork-o1-prm")
    naive = load(tmp_path, "skywork-o1-prm", cache_gb=0)
    got = [cached.score([r])[0] for r in chain()]
    want = [naive.score([r])[0] for r in chain()]
    for g, w in zip(got, want):
        assert close(g.step_scores, w.step_scores)
    final = len(cached.family.encode(QUESTION, STEPS).ids)
    incremental, full = sum(r.tokens_computed for r in got), sum(r.tokens_computed for r in want)
    assert incremental <= 2 * final  # each step's tokens run once
    assert full > 4 * final  # rescoring every prefix: quadratic
    assert got[-1].compute_seconds > 0


def test_batches_mix_cached_and_new_prefixes_and_honour_batch_size(tmp_path):
    build_skywork(tmp_path)
    scorer = load(tmp_path, "skywork-o1-prm", batch_size=2)
    rows = []
    forward = scorer.backbone.forward
    scorer.backbone.forward = lambda **kw: rows.append(kw["input_ids"].shape[0]) or forward(**kw)
    scorer.score([ScoreRequest(QUESTION, tuple(STEPS[:3])),
                  ScoreRequest("Another?", tuple(STEPS[2:4]))])
    parent = scorer.cache.longest(scorer.family.encode(QUESTION, STEPS[:3]))
    before = [(k.clone(), v.clone()) for k, v in parent.kv]
    requests = [ScoreRequest(QUESTION, tuple(STEPS[:5])),  # extends the cached 3 steps
                ScoreRequest(QUESTION, tuple(STEPS[:3])),  # fully cached: no forward
                ScoreRequest("Another?", tuple(STEPS[2:5])),  # extends another cached prefix
                ScoreRequest(QUESTION, tuple(STEPS[:4])),
                ScoreRequest(QUESTION, ()),
                ScoreRequest("Yet another?", tuple(STEPS[5:9]))]  # nothing cached
    rows.clear()
    got = scorer.score(requests)
    # 4 rows to run, 2 per forward pass, each pass padding pasts of different lengths.
    assert rows == [2, 2]
    assert got[1].tokens_computed == 0 and got[4].step_scores == []
    want = load(tmp_path, "skywork-o1-prm", cache_gb=0).score(requests)
    for g, w in zip(got, want):
        assert close(g.step_scores, w.step_scores)
    enc = scorer.family.encode(QUESTION, STEPS[:5])
    assert got[0].tokens_computed == enc.step_ends[4] - enc.step_ends[2]
    assert sum(r.tokens_computed for r in got) < sum(r.tokens_computed for r in want)
    for (k, v), (k0, v0) in zip(parent.kv, before):  # reusing an entry leaves it intact
        assert torch.equal(k, k0) and torch.equal(v, v0)


def test_cache_stays_within_its_memory_budget(tmp_path):
    build_skywork(tmp_path)
    probe = load(tmp_path, "skywork-o1-prm")
    probe.score([ScoreRequest(QUESTION, tuple(STEPS[:4]))])
    budget_gb = 2 * probe.cache.bytes / 2**30  # room for about two 4-step prefixes
    scorer = load(tmp_path, "skywork-o1-prm", cache_gb=budget_gb)
    naive = load(tmp_path, "skywork-o1-prm", cache_gb=0)
    for req in chain():
        got, want = scorer.score([req])[0], naive.score([req])[0]
        assert 0 < scorer.cache.bytes <= scorer.cache.max_bytes
        assert close(got.step_scores, want.step_scores)
    assert 0 < len(scorer.cache.entries) < 3


def test_a_prefix_keeps_its_first_values_so_siblings_tie_exactly(tmp_path):
    """Solutions sharing a prefix get bit-identical scores for it, however they are batched or
    cached: the first values computed for a prefix are kept. Shown by changing the model between
    two calls: the shared step keeps its first score, the new step reflects the change."""
    build_tinyworld(tmp_path)
    scorer = load(tmp_path, "tinyworld", cache_gb=0)  # no KV cache: the prefix is recomputed
    first = scorer.score([ScoreRequest(QUESTION, tuple(STEPS[:2]))])[0].step_scores
    lm_head, _ = scorer.head
    with torch.no_grad():
        lm_head.weight.mul_(1.5)
    sibling = scorer.score([ScoreRequest(QUESTION, (STEPS[0], STEPS[5]))])[0].step_scores
    assert sibling[0] == first[0]
    fresh = load(tmp_path, "tinyworld", cache_gb=0)
    fresh.head[0].weight.data.mul_(1.5)
    changed = fresh.score([ScoreRequest(QUESTION, (STEPS[0], STEPS[5]))])[0].step_scores
    assert changed[0] != first[0] and sibling[1] == changed[1]
