"""Every smaller budget of a sampling-based method from one run at N_max, by nested subsampling.

Resample r shuffles the N_max samples of a problem with its own random permutation; the
budget-n subsample is the first n of them, so within a resample the budgets are nested, as if
the same user had kept drawing samples. Each (n, metric) is reported over `num_resamples`
resamples, deterministically from `seed`. Metrics: majority@n, naive@n (vanilla best-of-N),
weighted@n (see aggregate.vote; scores already aggregated) and pass@n (any sample correct).
"""
from __future__ import annotations

import random
from typing import Sequence

from orchestrator.search.aggregate import VOTES, group_answers, vote
from orchestrator.search.base import AnswersEqual

METRICS = (*VOTES, "pass")


def subsample_outcomes(answers: Sequence[str | None], scores: Sequence[float], correct: Sequence[bool],
                       ns: Sequence[int], answers_equal: AnswersEqual, num_resamples: int = 32,
                       seed: int = 0) -> dict[int, dict[str, list[float]]]:
    """Per budget n and metric, the 0/1 outcome of every resample."""
    if not len(answers) == len(scores) == len(correct) or max(ns) > len(answers) or min(ns) < 1:
        raise ValueError(f"need 1 <= n <= {len(answers)} and one score and grade per answer")
    classes = group_answers(answers, answers_equal)
    rng = random.Random(seed)
    order = list(range(len(answers)))
    outcomes = {n: {metric: [] for metric in METRICS} for n in ns}
    for _ in range(num_resamples):
        rng.shuffle(order)
        for n in ns:
            chosen = order[:n]
            for how in VOTES:
                pick = vote(how, [classes[i] for i in chosen], [scores[i] for i in chosen])
                outcomes[n][how].append(float(pick is not None and bool(correct[chosen[pick]])))
            outcomes[n]["pass"].append(float(any(correct[i] for i in chosen)))
    return outcomes
