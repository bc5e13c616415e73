"""The tiny-world PRM's input format and its one scoring function.

The PRM is a `LlamaForTokenClassification` (one logit per token) over the policy's
character tokenizer. Its input is the policy's prompt followed by the steps, each ending in
the step delimiter "\\n\\n"; the score of step i is the sigmoid of the logit at the last token
of step i's delimiter: the probability that the solution is still on track after step i.

    prm = TinyPRM("~/.cache/scalerun/tinyworld/default-<hash>/prm")
    prm.score("Start at 37. Apply in order: a) + 25, b) - 12.", ["a) 37 + 25 = 62", "b) 62 - 12 = 50"])
    # -> [0.97, 0.95]
"""
from __future__ import annotations

from typing import Sequence

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from orchestrator.tinyworld.policy import PROMPT_FORMAT, prompt_text


def prm_inputs(tokenizer, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
    """Token ids of (question, steps) and the position whose logit scores each step."""
    ids = tokenizer(prompt_text(question)).input_ids
    positions = []
    for step in steps:
        ids = ids + tokenizer(step + PROMPT_FORMAT.step_delimiter, add_special_tokens=False).input_ids
        positions.append(len(ids) - 1)
    return ids, positions


def padded_batch(tokenizer, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input_ids and attention_mask (positions stay those of prm_inputs)."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    for i, ids in enumerate(rows):
        input_ids[i, :len(ids)] = torch.tensor(ids)
    attention_mask = torch.zeros_like(input_ids)
    for i, ids in enumerate(rows):
        attention_mask[i, :len(ids)] = 1
    return input_ids, attention_mask


class TinyPRM:
    """A saved tiny-world PRM, loaded with plain transformers."""

    def __init__(self, path: str, batch_size: int = 64):
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForTokenClassification.from_pretrained(path).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        """Per-step probability that the solution is still on track (one float per step)."""
        return self.score_many([(question, steps)])[0]

    @torch.no_grad()
    def score_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """`score` for many (question, steps) pairs, batched."""
        return score_with(self.model, self.tokenizer, items, self.batch_size)


@torch.no_grad()
def score_with(model, tokenizer, items: Sequence[tuple[str, Sequence[str]]],
               batch_size: int = 64) -> list[list[float]]:
    """Per-step scores of (question, steps) pairs with an in-memory PRM model."""
    model.eval()
    out: list[list[float]] = []
    for start in range(0, len(items), batch_size):
        encoded = [prm_inputs(tokenizer, q, steps) for q, steps in items[start:start + batch_size]]
        input_ids, attention_mask = padded_batch(tokenizer, [ids for ids, _ in encoded])
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[..., 0]
        probabilities = torch.sigmoid(logits.float())
        out += [probabilities[i, positions].tolist() for i, (_, positions) in enumerate(encoded)]
    return out
