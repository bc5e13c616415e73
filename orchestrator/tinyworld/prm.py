"""The tiny-world PRM's labelled data, the policy's own samples, and its calibration.

Labels come in two modes. "exact" (default): a step is positive when it and every step
before it equal the reference (like PRM800K's human labels, and cheap, so the PRM sees many
samples). "mc": Math-Shepherd-style Monte Carlo labels, the fraction of policy rollouts from
the prefix that reach the right answer; slower, and noisy where wrong chains land on the
right answer by luck. Either labels calibrate the PRM (see `prm_model`): a model trained like
the policy but for longer (see `policy.train_policy`), read as a generative verifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize
from scipy.special import expit

from orchestrator.grading import grade
from orchestrator.tasks import arith
from orchestrator.tasks.arith import Problem
from orchestrator.tinyworld.policy import PROMPT_FORMAT, prompt_text, sample
from orchestrator.tinyworld.prm_model import Readout, on_track_scores


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


def fit_readout(step_logprobs: Sequence[list[list[float]]], labels: Sequence[list[float]]) -> Readout:
    """The PRM's calibration: logistic regression of the step labels (exact 0/1 or Monte Carlo
    fractions) on the running minimum of the token log-probabilities, by maximum likelihood."""
    x = np.array([m for steps in step_logprobs for m in on_track_scores(steps)])
    y = np.array([label for chain in labels for label in chain])

    def loss(theta):
        z = theta[0] * x + theta[1]
        # Binary cross-entropy with logits, and its gradient.
        value = np.sum(np.logaddexp(0, z) - y * z)
        residual = expit(z) - y
        return value, np.array([residual @ x, residual.sum()])

    fit = optimize.minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                            bounds=[(1e-6, None), (None, None)])
    return Readout(scale=float(fit.x[0]), bias=float(fit.x[1]))
