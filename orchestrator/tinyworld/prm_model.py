"""The tiny-world PRM: a causal LM read as a generative verifier, and its one scoring function.

The PRM is a `LlamaForCausalLM` over the policy's character tokenizer: the policy's
architecture trained further (see `policy.train_policy`), so it does the arithmetic better than
the policy it checks. It reads a solution as text, the policy's prompt followed by the steps,
each ending in the step delimiter "\\n\\n". A sampled wrong step is a token the stronger model
finds unlikely, so a step's evidence is the lowest log-probability the model gives any token of
the step (its delimiter aside: after the last step the model expects <eos>, not "\\n\\n").
The score of step i is

    sigmoid(scale * m_i + bias),   m_i = the lowest token log-probability in steps 1..i,

the probability that the solution is still on track after step i: a running minimum, because
once a step is wrong every later step is off track too. `scale` (> 0) and `bias` are fitted on
labelled policy samples (`prm.fit_readout`) and saved in `prm_readout.json` next to the model.

    prm = TinyPRM("~/.cache/scalerun/tinyworld/default-<hash>/prm")
    prm.score("Start at 37. Apply in order: a) + 25, b) - 12.", ["a) 37 + 25 = 62", "b) 62 - 12 = \\boxed{50}"])
    # -> [0.982, 0.979] on the default build; with "= 63" and "63 - 12 = \\boxed{51}": [0.0, 0.0]

`actors.prm_families.TinyWorld` scores the same way, incrementally.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from orchestrator.tinyworld.policy import PROMPT_FORMAT, prompt_text

READOUT_FILE = "prm_readout.json"


@dataclass(frozen=True)
class Readout:
    """The calibration from a step's lowest token log-probability to P(still on track)."""

    scale: float
    bias: float

    def __post_init__(self):
        if not self.scale > 0:  # the running minimum of scores is then the score of the running minimum
            raise ValueError(f"PRM readout scale must be > 0, got {self.scale}")

    def probability(self, logprobs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scale * logprobs + self.bias)

    @classmethod
    def load(cls, folder: str | Path) -> Readout:
        return cls(**json.loads((Path(folder) / READOUT_FILE).read_text()))

    def save(self, folder: str | Path) -> None:
        (Path(folder) / READOUT_FILE).write_text(json.dumps(asdict(self), indent=1))


def prm_inputs(tokenizer, question: str, steps: Sequence[str]) -> tuple[list[int], list[range]]:
    """Token ids of (question, steps), each step followed by the delimiter, and for each step
    the positions of its own tokens (the delimiter's are not scored)."""
    ids = tokenizer(prompt_text(question)).input_ids
    spans = []
    for step in steps:
        step_ids = tokenizer(step, add_special_tokens=False).input_ids
        spans.append(range(len(ids), len(ids) + len(step_ids)))
        ids = ids + step_ids + tokenizer(PROMPT_FORMAT.step_delimiter, add_special_tokens=False).input_ids
    return ids, spans


def on_track_scores(step_values: Sequence[Sequence[float]]) -> list[float]:
    """Step scores from per-token values of each step: the running minimum over the steps so far
    (a step without tokens keeps the score before it)."""
    scores, low = [], math.inf
    for values in step_values:
        low = min(low, *values) if values else low
        scores.append(low)
    return scores


@torch.no_grad()
def step_token_logprobs(model, tokenizer, items: Sequence[tuple[str, Sequence[str]]],
                        batch_size: int = 64) -> list[list[list[float]]]:
    """For each (question, steps): per step, the model's log-probability of each of its tokens."""
    model.eval()
    out = []
    for start in range(0, len(items), batch_size):
        encoded = [prm_inputs(tokenizer, q, steps) for q, steps in items[start:start + batch_size]]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
        attention_mask = torch.zeros_like(input_ids)
        for i, (ids, _) in enumerate(encoded):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            attention_mask[i, :len(ids)] = 1
        logprobs = torch.log_softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits.float(), -1)
        # The log-probability of token t is read at position t - 1.
        token_logprobs = logprobs[:, :-1].gather(2, input_ids[:, 1:, None])[..., 0]
        out += [[token_logprobs[i, span.start - 1:span.stop - 1].tolist() for span in spans]
                for i, (_, spans) in enumerate(encoded)]
    return out


def score_with(model, tokenizer, readout: Readout, items: Sequence[tuple[str, Sequence[str]]],
               batch_size: int = 64) -> list[list[float]]:
    """Per-step scores of (question, steps) pairs with an in-memory PRM model."""
    return [readout.probability(torch.tensor(on_track_scores(steps), dtype=torch.float64)).tolist()
            for steps in step_token_logprobs(model, tokenizer, items, batch_size)]


def save_prm(model, tokenizer, readout: Readout, folder: str | Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    readout.save(folder)


class TinyPRM:
    """A saved tiny-world PRM, loaded with plain transformers."""

    def __init__(self, path: str, batch_size: int = 64):
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        self.readout = Readout.load(path)
        self.batch_size = batch_size

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        """Per-step probability that the solution is still on track (one float per step)."""
        return self.score_many([(question, steps)])[0]

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """`score` for many (question, steps) pairs, batched."""
        return score_with(self.model, self.tokenizer, self.readout, items, self.batch_size)
