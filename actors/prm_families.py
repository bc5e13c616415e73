"""PRM families: how each process reward model wants a solution written and where it is read.

A family turns (question, steps) into token ids plus, for each step, the positions whose outputs
make that step's score (`readouts`: one position for a reward head read at a step tag, every
token of the step for a generative verifier) and the length of the prefix that ends with the
step (`step_ends`, the prefixes whose KV cache later solutions can reuse). It turns the hidden
states at the read-out positions into values with the model's head (`read`), and each step's
values, in step order, into step scores in [0, 1] (`step_scores`). It loads a checkpoint as
(backbone, head): the backbone is a transformers base model (ids and a KV cache in, last hidden
states out), so every family shares one incremental scoring loop.

Token ids stop at the end of the last step: template tokens after it cannot change any step
score (the models are causal), so they are never run.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Sequence

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from orchestrator.tinyworld.prm_model import Readout, on_track_scores, prm_inputs


@dataclass
class Encoding:
    ids: list[int]
    readouts: list[list[int]]  # per step: the positions whose outputs make the step's score
    step_ends: list[int]  # per step: length of the prefix ending with that step


class PRMFamily:
    """Formatting and read-out of one PRM family, bound to its tokenizer."""

    name = ""
    models: tuple[str, ...] = ()  # hub ids of the released checkpoints of this family

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, question: str, steps: Sequence[str]) -> Encoding:
        raise NotImplementedError

    def read(self, head, hidden: torch.Tensor, next_ids: torch.Tensor) -> torch.Tensor:
        """Hidden states at read-out positions [n, d], and the token after each position [n]
        (-1 past the end), -> one value per position [n]."""
        raise NotImplementedError

    def step_scores(self, values: list[list[float]]) -> list[float]:
        """Each step's read-out values, in step order -> the step scores."""
        return [v for (v,) in values]

    @classmethod
    def load(cls, path: str, dtype: torch.dtype, device: str) -> tuple[nn.Module, nn.Module]:
        """A checkpoint's (backbone, head)."""
        raise NotImplementedError

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _token_id(self, text: str) -> int:
        """The id of `text`'s last token, as the reference code of each family takes it."""
        return self._text_ids(text)[-1]


def _readouts_at(ids: list[int], token_id: int, num_steps: int) -> Encoding:
    """Read-outs at each occurrence of a step tag; the prefix ends just after the tag."""
    readouts = [i for i, t in enumerate(ids) if t == token_id]
    if len(readouts) != num_steps:
        raise ValueError(f"expected {num_steps} step tags in the PRM input, found {len(readouts)}"
                         " (does a step contain the tag itself?)")
    ends = [r + 1 for r in readouts]
    return Encoding(ids=ids[:ends[-1]] if ends else ids, readouts=[[r] for r in readouts], step_ends=ends)


def _load_base_with_head(path: str, head: nn.Module, prefix: str, dtype: torch.dtype, device: str):
    """A base model plus a head whose weights sit in the checkpoint under `prefix`.

    The Qwen and Skywork PRMs ship custom classes (trust_remote_code) that are a stock base
    model plus a small head; loading the two parts directly keeps remote code out.
    """
    local = path
    if not os.path.isdir(path):
        from huggingface_hub import snapshot_download  # only for a hub id: never on an offline cluster
        local = snapshot_download(path)
    state = {}
    for file in sorted(glob.glob(os.path.join(local, "*.safetensors"))):
        with safe_open(file, framework="pt") as f:
            state.update({k[len(prefix):]: f.get_tensor(k)
                          for k in f.keys() if k.startswith(prefix)})
    head.load_state_dict(state)
    backbone = AutoModel.from_pretrained(local, dtype=dtype, trust_remote_code=False)
    return backbone.to(device).eval(), head.to(device, dtype).eval()


class TokenPairFamily(PRMFamily):
    """Causal LMs whose step score is P(good token) against P(bad token) at the read-out."""

    pair: list[int]  # (good, bad) token ids

    def read(self, head, hidden, next_ids):
        return head(hidden)[:, self.pair].float().softmax(-1)[:, 0]

    @classmethod
    def load(cls, path, dtype, device):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        return model.model, model.lm_head


class MathShepherd(TokenPairFamily):
    """peiyi9979/math-shepherd-mistral-7b-prm (MistralForCausalLM).

    Checked against its model card's example and HF search-and-learn
    `sal/models/reward_models.py` (MathShepherd, which also prepends a system prompt): input is
    f"{question} {output}" where the output's steps each end in " ки" and are joined by "\\n";
    BOS first. At each "ки" token (the last id of encode("ки")) the score is softmax over the
    logits of the two tokens of "+ -" (encode("+ -")[1:], after the BOS), taking "+".
    """

    name = "math-shepherd"
    models = ("peiyi9979/math-shepherd-mistral-7b-prm",)
    step_tag = "ки"

    def __init__(self, tokenizer):
        super().__init__(tokenizer)
        self.tag_id = self._token_id(self.step_tag)
        self.pair = self._text_ids("+ -")
        if len(self.pair) != 2:
            raise ValueError(f"'+ -' should be two tokens, got {self.pair}")

    def encode(self, question, steps):
        text = question + " " + "\n".join(s + " " + self.step_tag for s in steps)
        ids = [self.tokenizer.bos_token_id] + self._text_ids(text)
        return _readouts_at(ids, self.tag_id, len(steps))


class RLHFlow(TokenPairFamily):
    """RLHFlow/Llama3.1-8B-PRM-Deepseek-Data (and -Mistral-Data) (LlamaForCausalLM).

    Checked against HF search-and-learn `reward_models.py` (RLHFFlow, after RLHFlow's
    `math-rm/prm_evaluate.py`): a chat in the tokenizer's template where each step is a user
    turn (the first one "question + ' ' + step") answered by an assistant turn "+"; a step's
    score is softmax over the logits of "+" and "-" (last ids of encode("+"), encode("-")) at the
    position that predicts the assistant's "+", taking "+".
    """

    name = "rlhflow"
    models = ("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", "RLHFlow/Llama3.1-8B-PRM-Mistral-Data")

    def __init__(self, tokenizer):
        super().__init__(tokenizer)
        self.pair = [self._token_id("+"), self._token_id("-")]

    def encode(self, question, steps):
        # Rendering the chat turn by turn (k renders for k steps) gives each step's end; the
        # template must render a shorter chat as a prefix of a longer one (Llama 3's does).
        chat, ids, readouts, ends = [], [], [], []
        for k, step in enumerate(steps):
            chat += [{"role": "user", "content": question + " " + step if k == 0 else step},
                     {"role": "assistant", "content": "+"}]
            text = self.tokenizer.apply_chat_template(chat, tokenize=False)
            longer = self._text_ids(text)
            if longer[:len(ids)] != ids:
                raise ValueError("the chat template does not render turns as prefixes")
            plus = max(i for i, t in enumerate(longer) if t == self.pair[0])
            ids = longer
            readouts.append([plus - 1])
            ends.append(len(ids))
        return Encoding(ids=ids, readouts=readouts, step_ends=ends)


class QwenMathPRM(PRMFamily):
    """Qwen/Qwen2.5-Math-PRM-7B and -72B (Qwen2ForProcessRewardModel: Qwen2Model + `score`
    head Linear(d, d) -> ReLU -> Linear(d, 2)).

    Checked against the model card's Quick Start: messages system (the boxed-answer prompt),
    user (question), assistant ("<extra_0>".join(steps) + "<extra_0>") through the chat
    template; at each "<extra_0>" the score is softmax of the head's two logits, class 1.
    """

    name = "qwen-math-prm"
    models = ("Qwen/Qwen2.5-Math-PRM-7B", "Qwen/Qwen2.5-Math-PRM-72B")
    step_sep = "<extra_0>"
    system = "Please reason step by step, and put your final answer within \\boxed{}."

    def encode(self, question, steps):
        messages = [{"role": "system", "content": self.system},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": "".join(s + self.step_sep for s in steps)}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        return _readouts_at(self._text_ids(text), self._token_id(self.step_sep), len(steps))

    def read(self, head, hidden, next_ids):
        return head(hidden).float().softmax(-1)[:, 1]

    @classmethod
    def load(cls, path, dtype, device):
        d = AutoConfig.from_pretrained(path).hidden_size
        head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 2))
        return _load_base_with_head(path, head, "score.", dtype, device)


class SkyworkO1PRM(PRMFamily):
    """Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B and -7B (Qwen2 + value head Linear(d, 1)).

    Checked against SkyworkAI/skywork-o1-prm-inference as vendored in HF search-and-learn
    (`sal/models/skywork_o1_prm/io_utils.py`, `prm_model.py`): ids are encode(bos + question +
    "\\n") then, per step, encode(step) followed by the id of "\\n" (the last id of
    encode("\\n")); the step's score is the sigmoid of the value head at that "\\n".
    """

    name = "skywork-o1-prm"
    models = ("Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B",
              "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B")

    def encode(self, question, steps):
        ids = self._text_ids((self.tokenizer.bos_token or "") + question + "\n")
        step_id = self._token_id("\n")
        readouts = []
        for step in steps:
            ids = ids + self._text_ids(step) + [step_id]
            readouts.append([len(ids) - 1])
        return Encoding(ids=ids, readouts=readouts, step_ends=[r + 1 for (r,) in readouts])

    def read(self, head, hidden, next_ids):
        return torch.sigmoid(head(hidden).float()).squeeze(-1)

    @classmethod
    def load(cls, path, dtype, device):
        head = nn.Linear(AutoConfig.from_pretrained(path).hidden_size, 1)
        return _load_base_with_head(path, head, "v_head.summary.", dtype, device)


class TinyWorld(PRMFamily):
    """The project's tiny-world PRM: a causal LM read as a generative verifier.

    As `orchestrator.tinyworld.prm_model` (the reference, a full forward pass): the prompt, then
    each step followed by the step delimiter; the read-outs of a step are the positions that
    predict its tokens, each valued at the calibrated probability of the token that follows,
    and a step's score is the running minimum of those values. A cached prefix stops one token
    short of its last delimiter, so the position predicting the next step's first token runs
    with that step.
    """

    name = "tinyworld"

    def encode(self, question, steps):
        ids, spans = prm_inputs(self.tokenizer, question, steps)
        ends = []
        for k, span in enumerate(spans):
            next_start = spans[k + 1].start if k + 1 < len(spans) else len(ids)
            ends.append(next_start - 1)
        return Encoding(ids=ids[:ends[-1]] if ends else ids,
                        readouts=[list(range(s.start - 1, s.stop - 1)) for s in spans], step_ends=ends)

    def read(self, head, hidden, next_ids):
        lm_head, readout = head
        logprobs = torch.log_softmax(lm_head(hidden).float(), -1).gather(1, next_ids[:, None])[:, 0]
        return readout.probability(logprobs)

    def step_scores(self, values):
        return on_track_scores(values)

    @classmethod
    def load(cls, path, dtype, device):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        return model.model, (model.lm_head, Readout.load(path))


FAMILIES: dict[str, type[PRMFamily]] = {
    f.name: f for f in (TinyWorld, MathShepherd, RLHFlow, QwenMathPRM, SkyworkO1PRM)}


def family_for(model: str, family: str = "") -> type[PRMFamily]:
    """The family named `family`, else the one that released `model`."""
    if family:
        if family not in FAMILIES:
            raise ValueError(f"unknown PRM family {family!r}; known: {', '.join(FAMILIES)}")
        return FAMILIES[family]
    for f in FAMILIES.values():
        if model in f.models:
            return f
    raise ValueError(f"no PRM family known for model {model!r}: set the family "
                     f"({', '.join(FAMILIES)})")
