"""Difficulty levels and the 2-fold cross-validated compute-optimal selection on constructed data."""
import numpy as np
import pytest

from orchestrator.tts.stats import (
    Config, compute_optimal, difficulty_levels, oracle_difficulty, predicted_difficulty,
    two_fold_split,
)


def test_oracle_and_predicted_difficulty_are_row_means():
    assert oracle_difficulty([[True, False, False, False], [True, True]]).tolist() == [0.25, 1.0]
    assert predicted_difficulty([[0.2, 0.4], [0.9]]).tolist() == pytest.approx([0.3, 0.9])


def test_quantile_levels_easiest_first():
    values = [0.9, 0.1, 0.5, 0.7, 0.3, 1.0, 0.0, 0.2, 0.8, 0.6]
    # Sorted from easiest: 1.0 0.9 | 0.8 0.7 | 0.6 0.5 | 0.3 0.2 | 0.1 0.0
    assert difficulty_levels(values).tolist() == [1, 5, 3, 2, 4, 1, 5, 4, 2, 3]


def test_quantile_levels_keep_ties_together():
    levels = difficulty_levels([1.0, 1.0, 1.0, 0, 0, 0, 0, 0, 0, 0])
    assert levels.tolist() == [1, 1, 1] + [2] * 7  # thresholds 1, 0, 0, 0: ties go to the easier level


def test_two_fold_split_partitions_deterministically():
    problems = np.arange(3, 14)
    a, b = two_fold_split(problems, seed=1, level=2)
    assert len(a) == 5 and len(b) == 6
    assert sorted(np.concatenate([a, b]).tolist()) == problems.tolist()
    a2, b2 = two_fold_split(problems, seed=1, level=2)
    assert a.tolist() == a2.tolist() and b.tolist() == b2.tolist()
    assert a.tolist() != two_fold_split(problems, seed=1, level=3)[0].tolist()


def constructed_sweep():
    """Level 1 (problems 0-7): 'a' wins fold A, 'b' wins fold B, 'c' gets 0.5 everywhere: the
    in-sample winners overfit and score 0 held out. Level 2 (problems 8-15): 'c' solves all."""
    levels = np.array([1] * 8 + [2] * 8)
    fold_a, fold_b = two_fold_split(np.arange(8), seed=0, level=1)
    a, b, c = np.zeros(16), np.zeros(16), np.full(16, 0.5)
    a[fold_a], b[fold_b] = 1.0, 1.0
    a[8:12], b[12:16], c[8:] = 1.0, 1.0, 1.0
    configs = [Config("a", 4, a), Config("b", 4, b), Config("c", 16, c)]
    return configs, levels


def test_two_fold_cv_scores_the_choice_on_the_other_fold():
    configs, levels = constructed_sweep()
    (point,) = compute_optimal(configs, levels, budgets=[16], seed=0)
    one, two = point.levels
    assert (one.level, one.n_problems, one.budget) == (1, 8, 16)
    assert one.fold_choices == ("a", "b") and one.cv_accuracy == 0.0
    assert one.best == "a"  # on all 8 problems a, b, c tie at 0.5: the cheaper, then the name
    assert two.fold_choices == ("c", "c") and two.cv_accuracy == 1.0 and two.best == "c"
    assert point.accuracy == pytest.approx(0.5)  # 8 problems at 0 and 8 at 1


def test_budget_limits_the_candidates():
    configs, levels = constructed_sweep()
    low_budget, high_budget = compute_optimal(configs, levels, budgets=[4, 16], seed=0)
    assert all("c" not in lc.fold_choices for lc in low_budget.levels)
    # Level 2 without 'c': a solves problems 8-11, b 12-15, so each fold's winner depends on the split.
    fold_a, fold_b = two_fold_split(np.arange(8, 16), seed=0, level=2)
    a_wins_a = (fold_a < 12).mean() >= 0.5  # a tie goes to the name
    assert low_budget.levels[1].fold_choices[0] == ("a" if a_wins_a else "b")
    assert high_budget.levels[1].cv_accuracy == 1.0
    assert compute_optimal(configs, levels, budgets=[2]) == []


def test_curve_interval_brackets_accuracy():
    rng = np.random.default_rng(0)
    levels = difficulty_levels(rng.random(200))
    configs = [Config(f"m{i}", 2 ** i, (rng.random(200) < 0.2 * i).tolist()) for i in range(1, 5)]
    points = compute_optimal(configs, levels, budgets=[2, 4, 8, 16], seed=3)
    assert [p.budget for p in points] == [2, 4, 8, 16]
    for p in points:
        assert p.low <= p.accuracy <= p.high and p.high - p.low < 0.25  # selection noise included
        assert sum(lc.n_problems for lc in p.levels) == 200
    assert points[-1].accuracy > points[0].accuracy + 0.4  # the 0.8 config becomes affordable


