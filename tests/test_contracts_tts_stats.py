"""Contracts of the tts statistics: difficulty levels with ties, compute-optimal selection noise,
the efficiency multiplier, and the shared bootstrap intervals the sweep reports (percentile tails,
the two-stage bootstrap's second stage)."""
import numpy as np
import pytest

from orchestrator.stats import percentile_interval, two_stage_bootstrap_interval
from orchestrator.tts.stats import (
    Config, bootstrap_folds, compute_optimal, difficulty_levels, efficiency_multiplier, matching_budget,
    two_fold_split,
)


def test_ties_at_the_top_fill_level_one():
    # 50 problems always solved, 10 at 0.8, 20 at 0.5, 20 never: the average-rank rule gave
    # level sizes [0, 50, 10, 20, 20], the solved-every-time problems labelled level 2.
    values = [1.0] * 50 + [0.8] * 10 + [0.5] * 20 + [0.0] * 20
    levels = difficulty_levels(values)
    assert np.bincount(levels, minlength=6)[1:].tolist() == [50, 0, 10, 20, 20]
    assert set(levels[:50]) == {1}


def test_a_value_at_a_threshold_goes_to_the_easier_level():
    # Thresholds are the 2nd, 4th, 6th, 8th largest values: 9, 7, 7, 3; a tie with one stays above it.
    values = [10, 9, 8, 7, 7, 7, 6, 3, 2, 1]
    assert difficulty_levels(values).tolist() == [1, 1, 2, 2, 2, 2, 4, 4, 5, 5]


def test_levels_are_monotone_in_the_value_and_in_range():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 5, size=37) / 4  # pass@1 over 4 samples: many ties
    levels = difficulty_levels(values)
    order = np.argsort(-values, kind="stable")
    assert np.all(np.diff(levels[order]) >= 0)
    assert levels.min() >= 1 and levels.max() <= 5
    for v in np.unique(values):
        assert len(set(levels[values == v])) == 1  # ties share a level


def test_distinct_values_split_into_equal_levels():
    values = np.arange(100)[::-1] / 100
    assert np.bincount(difficulty_levels(values))[1:].tolist() == [20] * 5
    assert difficulty_levels(values, n_levels=4).tolist()[:26] == [1] * 25 + [2]


def fragile_level():
    """One level of 20 problems. On fold A, 'a' beats 'b' by one problem (6 against 5 of 10);
    on fold B, 'a' solves everything and 'b' nothing. The chosen configurations are 'a' both
    times (held-out 0.8), but a resample of fold A often prefers 'b', which scores 0 on B."""
    levels = np.ones(20, dtype=int)
    fold_a, fold_b = two_fold_split(np.arange(20), seed=0, level=1)
    a, b = np.zeros(20), np.zeros(20)
    a[fold_a[:6]] = 1.0
    b[fold_a[5:]] = 1.0
    a[fold_b] = 1.0
    return [Config("a", 4, a), Config("b", 4, b)], levels


def test_compute_optimal_interval_redoes_the_selection_in_each_replicate():
    configs, levels = fragile_level()
    (point,) = compute_optimal(configs, levels, budgets=[4], seed=0)
    assert point.levels[0].fold_choices == ("a", "a") and point.accuracy == pytest.approx(0.8)
    # Holding the choice fixed, a bootstrap of 16 ones in 20 never goes below about 0.6.
    assert point.low < 0.45
    assert np.mean(point.replicates < 0.5) > 0.15  # replicates that chose 'b' on fold A
    assert point.low <= point.accuracy <= point.high


def test_without_a_choice_the_interval_is_a_plain_bootstrap_within_folds():
    rng = np.random.default_rng(2)
    correct = (rng.random(30) < 0.6).astype(float)
    levels = np.repeat([1, 2, 3], 10)
    (point,) = compute_optimal([Config("only", 1, correct)], levels, budgets=[1], seed=5, n_boot=500)
    resampled = np.concatenate([np.concatenate([a, b], axis=1) for _, a, b in bootstrap_folds(levels, 5, 500)], axis=1)
    assert resampled.shape == (500, 30)
    assert np.allclose(point.replicates, correct[resampled].mean(axis=1))
    assert point.accuracy == pytest.approx(correct.mean())


def test_bootstrap_folds_stay_inside_their_folds_and_skip_singletons():
    levels = np.array([1] * 6 + [2] * 5 + [3])
    boots = bootstrap_folds(levels, seed=1, n_boot=50)
    assert [level for level, _, _ in boots] == [1, 2]
    for level, boot_a, boot_b in boots:
        fold_a, fold_b = two_fold_split(np.flatnonzero(levels == level), 1, level)
        assert set(boot_a.ravel()) <= set(fold_a) and set(boot_b.ravel()) <= set(fold_b)
        assert boot_a.shape == (50, len(fold_a)) and boot_b.shape == (50, len(fold_b))


@pytest.mark.parametrize("target, expected", [
    (0.75, 8.0),  # halfway from 0.7 to 0.8, halfway from 4 to 16 in log N
    (0.7, 4.0),  # exactly at a swept budget
    (0.5, 1.0), (0.3, 1.0),  # reached at the smallest budget
    (0.8, 16.0),
    (0.81, float("inf")),  # never reached: censored above the sweep
    (0.6, 2.0),
])
def test_matching_budget_interpolates_in_log_budget(target, expected):
    assert matching_budget([1, 4, 16], [0.5, 0.7, 0.8], target) == pytest.approx(expected)


def constant(value, n=40):
    return np.full(n, value)


def test_efficiency_multiplier_on_constructed_curves():
    levels = np.repeat([1, 2], 20)
    weighted = [Config(f"weighted@{n}", n, constant(acc)) for n, acc in ((1, 0.5), (4, 0.7), (16, 0.8))]
    beam = [Config("beam@4", 4, constant(0.75)), Config("beam@16", 16, constant(0.9))]
    curve = compute_optimal(weighted + beam, levels, budgets=[1, 4, 16], seed=0, n_boot=200)
    at4 = efficiency_multiplier(weighted, curve, 4, levels, seed=0, n_boot=200)
    # Compute-optimal at N=4 is beam@4 (0.75); weighted best-of-N reaches 0.75 at N=8.
    assert (at4.at, at4.matched_budget, at4.value, at4.low, at4.high) == pytest.approx((4, 8, 2, 2, 2))
    at16 = efficiency_multiplier(weighted, curve, 16, levels, seed=0, n_boot=200)
    assert at16.value == float("inf") and at16.low == float("inf")


def test_efficiency_multiplier_interval_brackets_a_noisy_estimate():
    rng = np.random.default_rng(4)
    n = 200
    levels = difficulty_levels(rng.random(n))
    weighted = [Config(f"weighted@{k}", k, (rng.random(n) < p).astype(float))
                for k, p in ((1, 0.3), (2, 0.4), (4, 0.5), (8, 0.6), (16, 0.7))]
    beam = [Config("beam@4", 4, (rng.random(n) < 0.6).astype(float))]
    curve = compute_optimal(weighted + beam, levels, budgets=[1, 2, 4, 8, 16], seed=1, n_boot=400)
    m = efficiency_multiplier(weighted, curve, 4, levels, seed=1, n_boot=400)
    assert 1.0 < m.value < 4.0  # about 2: beam@4 matches weighted@8
    assert m.low < m.value < m.high


def test_percentile_interval_splits_the_tails_and_skips_non_finite_replicates():
    assert percentile_interval(np.arange(101), 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_interval([*range(101), np.inf, np.nan]) == pytest.approx((2.5, 97.5))
    assert np.isnan(percentile_interval([np.inf, np.nan])).all()


def test_two_stage_bootstrap_resamples_the_draws_of_each_problem():
    # One problem with draws 0 and 1: a replicate's mean is 0, 1/2 or 1 (chances 1/4, 1/2, 1/4),
    # so the 95% interval is [0, 1]; resampling the problems alone would give the point 1/2.
    assert two_stage_bootstrap_interval([[0.0, 1.0]], seed=0) == (0.5, 0.0, 1.0)
