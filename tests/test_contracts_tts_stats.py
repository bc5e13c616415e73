"""Contracts of the tts statistics: difficulty levels with ties, compute-optimal selection noise,
the efficiency multiplier, and the shared bootstrap intervals the sweep reports (percentile tails,
the two-stage bootstrap's second stage)."""
import numpy as np
import pytest

from orchestrator.stats import censored_percentile_interval, percentile_interval, two_stage_bootstrap_interval
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
    # held out: fold B scores 10 of 10 with the choice of fold A, fold A 6 of 10 with fold B's
    assert point.levels[0].cv_accuracy == pytest.approx(0.8) and point.levels[0].best == "a"
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


def test_censored_interval_is_two_sided_order_statistics_that_keep_the_censored():
    # 100 replicates 1..100: the 95% bounds are the 3rd and 98th smallest, the 90% ones the 5th and 95th.
    assert censored_percentile_interval(np.arange(1, 101)) == (3.0, 98.0)
    assert censored_percentile_interval(np.arange(1, 101), 0.9) == (5.0, 95.0)
    # 10 of 100 never matched (inf): they stay in, so the upper bound is open and the lower one moves.
    assert censored_percentile_interval([*range(1, 91), *[np.inf] * 10]) == (3.0, np.inf)
    assert censored_percentile_interval([*range(1, 99), *[np.inf] * 2]) == (3.0, 98.0)  # 2 in the 2.5% tail


def test_two_stage_bootstrap_resamples_the_draws_of_each_problem():
    # One problem with draws 0 and 1: a replicate's mean is 0, 1/2 or 1 (chances 1/4, 1/2, 1/4),
    # so the 95% interval is [0, 1]; resampling the problems alone would give the point 1/2.
    assert two_stage_bootstrap_interval([[0.0, 1.0]], seed=0) == (0.5, 0.0, 1.0)


# ---- difficulty estimates and levels: small inputs ----

def test_predicted_difficulty_is_the_mean_not_the_median():
    from orchestrator.tts.stats import oracle_difficulty, predicted_difficulty
    assert predicted_difficulty([[0.1, 0.2, 0.9]]).tolist() == pytest.approx([0.4])
    assert oracle_difficulty([[True, False, False]]).tolist() == pytest.approx([1 / 3])


@pytest.mark.parametrize("values, expected", [
    ([], []),
    ([0.5], [1]),  # a single problem is the easiest level
    ([0.2, 0.9], [3, 1]),  # thresholds: 1st, 1st, 2nd, 2nd largest -> 0.9, 0.9, 0.2, 0.2
    ([0.5, 0.5], [1, 1]),
])
def test_difficulty_levels_on_tiny_inputs(values, expected):
    levels = difficulty_levels(values)
    assert levels.tolist() == expected and levels.dtype.kind == "i"


def test_difficulty_levels_with_three_levels():
    # 6 values, 3 levels: thresholds are the 2nd and 4th largest (5 and 3)
    assert difficulty_levels([6, 5, 4, 3, 2, 1], n_levels=3).tolist() == [1, 1, 2, 2, 3, 3]


def test_two_fold_split_defaults_to_level_zero_and_puts_the_odd_problem_in_fold_b():
    problems = np.arange(7)
    a, b = two_fold_split(problems, seed=3)
    a0, b0 = two_fold_split(problems, seed=3, level=0)
    assert a.tolist() == a0.tolist() and b.tolist() == b0.tolist()
    assert (len(a), len(b)) == (3, 4)
    assert a.tolist() == sorted(a.tolist()) and b.tolist() == sorted(b.tolist())

def test_the_in_sample_ceiling_takes_each_levels_best_on_all_its_problems():
    # Level 1: x solves 3 of 4, y 1; level 2: x none, y 2 of 4. Each alone solves 3 of 8; the
    # best per level, chosen and scored on the same problems, 5 of 8.
    x = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    y = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    (point,) = compute_optimal([Config("x", 1, x), Config("y", 1, y)], [1] * 4 + [2] * 4, budgets=[1], n_boot=50)
    assert point.in_sample_accuracy == pytest.approx(5 / 8)
    assert [lc.best for lc in point.levels] == ["x", "y"]
    (alone,) = compute_optimal([Config("a", 1, [1.0, 1.0, 0.0, 1.0, 1.0])], [1, 2, 2, 3, 3], budgets=[1], n_boot=50)
    assert alone.in_sample_accuracy == pytest.approx(0.75)  # the singleton level is left out here too


# ---- compute-optimal: level sizes at the split boundary ----

def test_a_level_of_two_problems_is_split_one_and_one():
    (point,) = compute_optimal([Config("a", 1, [1.0, 0.0])], [1, 1], budgets=[1], n_boot=50)
    assert point.levels[0].n_problems == 2 and point.accuracy == pytest.approx(0.5)


def test_a_singleton_level_is_left_out_and_later_levels_still_count():
    # level 1 has one problem (first in level order); levels 2 and 3 are scored
    configs = [Config("a", 1, [1.0, 1.0, 0.0, 1.0, 1.0])]
    (point,) = compute_optimal(configs, [1, 2, 2, 3, 3], budgets=[1], n_boot=50)
    assert [lc.level for lc in point.levels] == [2, 3]
    assert point.accuracy == pytest.approx(0.75)  # over the 4 scored problems, not 4/5
    assert [level for level, _, _ in bootstrap_folds([1, 2, 2, 3, 3], n_boot=5)] == [2, 3]


def test_compute_optimal_defaults_to_seed_zero():
    configs, levels = fragile_level()
    a = compute_optimal(configs, levels, budgets=[4], n_boot=100)
    b = compute_optimal(configs, levels, budgets=[4], seed=0, n_boot=100)
    assert np.array_equal(a[0].replicates, b[0].replicates) and a[0].levels == b[0].levels


def test_points_follow_the_budgets_given_and_skip_the_unaffordable():
    configs = [Config("a", 2, [0.0, 0.0]), Config("b", 8, [1.0, 1.0])]
    points = compute_optimal(configs, [1, 1], budgets=[8, 1, 2], n_boot=20)
    assert [(p.budget, p.accuracy) for p in points] == [(8.0, 1.0), (2.0, 0.0)]
    assert [p.levels[0].best for p in points] == ["b", "a"]


def test_the_cheaper_configuration_wins_a_tie_in_accuracy():
    configs = [Config("z_cheap", 1, [1.0, 0.0, 1.0, 0.0]), Config("a_dear", 4, [1.0, 0.0, 1.0, 0.0])]
    (point,) = compute_optimal(configs, [1, 1, 1, 1], budgets=[4], n_boot=20)
    assert point.levels[0].best == "z_cheap" and point.levels[0].fold_choices == ("z_cheap", "z_cheap")


def test_matching_budget_finds_the_first_crossing_of_a_non_monotone_curve():
    # 0.5 -> 0.8 crosses 0.7 two thirds of the way from 1 to 4 in log budget: 4 ** (2/3)
    assert matching_budget([1, 4, 16, 64], [0.5, 0.8, 0.6, 0.9], 0.7) == pytest.approx(4 ** (2 / 3))
    assert matching_budget([2, 8], [0.9, 0.1], 0.5) == 2.0


# ---- shared bootstrap helpers ----

def test_bootstrap_means_resamples_every_row_with_the_same_instances():
    from orchestrator.stats import bootstrap_means
    reps = bootstrap_means([[1.0, 2.0, 3.0, 4.0], [11.0, 12.0, 13.0, 14.0]], n_boot=50, seed=1)
    assert reps.shape == (50, 2)
    assert np.allclose(reps[:, 1] - reps[:, 0], 10.0)  # paired: one index draw for both rows
    assert bootstrap_means([1.0, 2.0, 3.0], n_boot=7).shape == (7,)
    assert np.all(bootstrap_means([5.0, 5.0], n_boot=10) == 5.0)


def test_bootstrap_mean_interval_reports_the_plain_mean():
    from orchestrator.stats import bootstrap_mean_interval
    mean, low, high = bootstrap_mean_interval([0.0, 0.0, 0.0, 1.0], n_boot=500)
    assert mean == 0.25 and 0.0 <= low < 0.25 < high <= 1.0


def test_percentile_interval_confidence_is_two_sided():
    lo, hi = percentile_interval(np.arange(1001) / 1000, 0.5)
    assert (lo, hi) == pytest.approx((0.25, 0.75))


def test_two_stage_bootstrap_fills_every_replicate_across_chunks():
    # 500 x 2000 outcomes: 2 replicates per chunk, so 5 replicates take chunks of 2, 2 and 1
    x = np.ones((500, 2000))
    assert two_stage_bootstrap_interval(x, n_boot=5) == (1.0, 1.0, 1.0)
    y = np.zeros((3, 2))
    y[0] = 1.0  # problem 0 always right: the mean is 1/3, and resampling problems moves it
    mean, low, high = two_stage_bootstrap_interval(y, n_boot=400)
    assert mean == pytest.approx(1 / 3) and low == 0.0 and high == 1.0


def test_bootstrap_mean_interval_defaults_to_seed_zero():
    from orchestrator.stats import bootstrap_mean_interval
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 0.3]
    assert bootstrap_mean_interval(values, n_boot=300) == bootstrap_mean_interval(values, n_boot=300, seed=0)
    assert bootstrap_mean_interval(values, n_boot=300) != bootstrap_mean_interval(values, n_boot=300, seed=1)


def test_curve_point_interval_is_the_percentile_interval_of_its_replicates_at_the_confidence():
    configs, levels = fragile_level()
    (wide,) = compute_optimal(configs, levels, budgets=[4], n_boot=400)
    (narrow,) = compute_optimal(configs, levels, budgets=[4], n_boot=400, confidence=0.5)
    assert (narrow.low, narrow.high) == percentile_interval(narrow.replicates, 0.5)
    assert (wide.low, wide.high) == percentile_interval(wide.replicates, 0.95)
    assert np.array_equal(wide.replicates, narrow.replicates) and wide.low < narrow.low <= narrow.high < wide.high
    assert len(wide.replicates) == 400


def test_efficiency_multiplier_sorts_weighted_by_cost_and_ignores_unscored_problems():
    # 40 problems in two levels as before, plus a singleton level (problem 40) that every
    # weighted configuration gets wrong: the curve does not score it, so neither may the match.
    levels = np.array([1] * 20 + [2] * 20 + [3])

    def acc(value):
        return np.append(np.full(40, value), 0.0)

    weighted = [Config(f"weighted@{n}", n, acc(a)) for n, a in ((16, 0.8), (1, 0.5), (4, 0.7))]
    beam = [Config("beam@4", 4, acc(0.75))]
    curve = compute_optimal(weighted + beam, levels, budgets=[4], n_boot=100)
    assert curve[0].accuracy == pytest.approx(0.75)
    m = efficiency_multiplier(weighted, curve, 4, levels, n_boot=100)
    assert (m.matched_budget, m.value) == pytest.approx((8.0, 2.0))


# ---- the summary's reading of a compute-optimal curve below the best single method ----

def test_below_best_note_says_no_headroom_plainly_and_asks_for_problems_otherwise():
    from orchestrator.tts.experiment import below_best_note

    assert below_best_note([], 40) == ""
    flat = below_best_note([("oracle bins at N=16: 0.818 against beam@16 0.835, in-sample per-level best 0.840", 0.005)], 40)
    assert "about 40 problems" in flat and "does not reproduce Snell et al." in flat and "sweep more" not in flat
    room = below_best_note([("a", 0.005), ("b", 0.03)], 10)
    assert "sweep more problems" in room and "does not reproduce" not in room
