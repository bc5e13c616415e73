"""Nested random subsampling of one N_max run into every smaller budget."""
import math

import pytest

import numpy as np

from orchestrator.search.subsample import subsample_outcomes

# "a" is the frequent wrong answer, "b" the rarer right one with high PRM scores, None unparsed
ANSWERS = ["a", "a", "a", "b", "b", None, "a", "c"]
SCORES = [.1, .1, .1, .9, .9, .99, .2, .3]
CORRECT = [a == "b" for a in ANSWERS]
NS = [1, 2, 4, 8]


def accuracy(**kwargs):
    """Per budget and metric, the mean outcome over the resamples."""
    outcomes = subsample_outcomes(ANSWERS, SCORES, CORRECT, NS, str.__eq__, **kwargs)
    return {n: {metric: float(np.mean(v)) for metric, v in by_metric.items()} for n, by_metric in outcomes.items()}


def test_full_budget_is_the_plain_vote():
    full = accuracy()[8]
    assert full == {"majority": 0.0, "naive": 1.0, "weighted": 1.0, "pass": 1.0}


def test_budget_one_is_the_mean_grade():
    one = accuracy(num_resamples=4000, seed=1)[1]
    assert one["pass"] == pytest.approx(2 / 8, abs=0.03)
    assert one["majority"] == one["naive"] == one["weighted"] == one["pass"]


def test_resamples_are_nested():
    # within a resample, a larger budget holds the smaller one, so pass@n never drops
    outcomes = subsample_outcomes(ANSWERS, SCORES, CORRECT, NS, str.__eq__, num_resamples=64, seed=3)
    for r in range(64):
        passes = [outcomes[n]["pass"][r] for n in NS]
        assert passes == sorted(passes)
    assert all(len(outcomes[n][m]) == 64 for n in NS for m in outcomes[n])


def test_deterministic_from_seed():
    assert accuracy(seed=5) == accuracy(seed=5)
    assert accuracy(seed=5) != accuracy(seed=6)
    assert accuracy()[2]["weighted"] > accuracy()[2]["majority"]


def test_pass_matches_the_exact_subset_mean():
    # two right answers among eight: pass@n = 1 - C(6, n) / C(8, n) over uniformly random subsets
    estimated = accuracy(num_resamples=3000)
    for n in (2, 4):
        assert estimated[n]["pass"] == pytest.approx(1 - math.comb(6, n) / math.comb(8, n), abs=0.03)


def test_rejects_budgets_beyond_the_samples():
    with pytest.raises(ValueError):
        subsample_outcomes(ANSWERS, SCORES, CORRECT, [16], str.__eq__)
