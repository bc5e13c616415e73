"""Training the tiny-world PRM on the policy's own samples.

Labels come in two modes. "exact" (default): a step is positive when it and every step
before it equal the reference (like PRM800K's human labels, and cheap, so the PRM sees many
samples). "mc": Math-Shepherd-style Monte Carlo labels, the fraction of policy rollouts from
the prefix that reach the right answer; slower, and noisy where wrong chains land on the
right answer by luck. The PRM starts from a backbone trained like the policy but for longer
(see `policy.train_policy`), which already knows the arithmetic it has to check, and better.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers import LlamaForCausalLM, LlamaForTokenClassification

from orchestrator.grading import grade
from orchestrator.tasks import arith
from orchestrator.tasks.arith import Problem
from orchestrator.tinyworld.policy import PROMPT_FORMAT, prompt_text, sample
from orchestrator.tinyworld.prm_model import padded_batch, prm_inputs


@dataclass
class Chain:
    """One sampled solution, split into steps, with its per-step labels."""

    problem: Problem
    steps: list[str]
    labels: list[float]

    @property
    def text(self) -> str:
        return PROMPT_FORMAT.step_delimiter.join(self.steps)


def sample_chains(policy, tokenizer, problems: Sequence[Problem], samples_per_problem: int,
                  seed: int) -> list[Chain]:
    """Policy samples at T=0.8 with exact step labels (chains with no step are dropped)."""
    prompts = [prompt_text(p.question) for p in problems for _ in range(samples_per_problem)]
    texts = sample(policy, tokenizer, prompts, seed=seed)
    chains = []
    for i, text in enumerate(texts):
        problem = problems[i // samples_per_problem]
        steps = arith.split_steps(text)
        if steps:
            chains.append(Chain(problem, steps, [float(x) for x in arith.step_correctness(problem, steps)]))
    return chains


def monte_carlo_labels(policy, tokenizer, chains: Sequence[Chain], rollouts: int, seed: int) -> list[list[float]]:
    """For each step of each chain, the fraction of `rollouts` policy continuations from the
    prefix ending at that step whose final answer is right; the last step is graded as is."""
    prompts, where = [], []
    for c, chain in enumerate(chains):
        for i in range(len(chain.steps) - 1):
            prefix = prompt_text(chain.problem.question) + "".join(
                s + PROMPT_FORMAT.step_delimiter for s in chain.steps[:i + 1])
            prompts += [prefix] * rollouts
            where.append((c, i))
    continuations = sample(policy, tokenizer, prompts, seed=seed)
    labels = [[0.0] * (len(chain.steps) - 1) + [float(grade(chain.text, chain.problem.answer))]
              for chain in chains]
    for k, (c, i) in enumerate(where):
        texts = continuations[k * rollouts:(k + 1) * rollouts]
        labels[c][i] = sum(grade(t, chains[c].problem.answer) for t in texts) / rollouts
    return labels


def prm_from_policy(policy: LlamaForCausalLM) -> LlamaForTokenClassification:
    """A token-classification model (one logit) with the policy's backbone weights."""
    config = policy.config.__class__.from_dict(policy.config.to_dict())
    config.num_labels = 1
    config.architectures = ["LlamaForTokenClassification"]
    prm = LlamaForTokenClassification(config)
    prm.model.load_state_dict(policy.model.state_dict())
    return prm


def train_prm(backbone: LlamaForCausalLM, tokenizer, chains: Sequence[Chain], recipe: dict,
              log: Callable[[str], None], advance: Callable[[int], None]) -> LlamaForTokenClassification:
    """Fine-tunes a PRM (a policy-like backbone + fresh head) on the chains' labels with BCE."""
    torch.manual_seed(recipe["seed"])
    prm = prm_from_policy(backbone)
    encoded = [prm_inputs(tokenizer, chain.problem.question, chain.steps) for chain in chains]
    steps, batch_size = recipe["prm_steps"], recipe["prm_batch"]
    optimizer = torch.optim.AdamW(prm.parameters(), lr=recipe["prm_lr"], weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50) * (1 - s / steps))
    rng = random.Random(recipe["seed"])
    order: list[int] = []
    prm.train()
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            order = list(range(len(chains)))
            rng.shuffle(order)
        batch, order = order[:batch_size], order[batch_size:]
        input_ids, attention_mask = padded_batch(tokenizer, [encoded[i][0] for i in batch])
        logits = prm(input_ids=input_ids, attention_mask=attention_mask).logits[..., 0]
        rows = torch.tensor([r for r, i in enumerate(batch) for _ in encoded[i][1]])
        columns = torch.tensor([p for i in batch for p in encoded[i][1]])
        targets = torch.tensor([label for i in batch for label in chains[i].labels])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[rows, columns], targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prm.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        advance(1)
        if step % max(1, steps // 5) == 0:
            log(f"prm step {step}/{steps} loss {loss.item():.4f}")
    return prm.eval()
