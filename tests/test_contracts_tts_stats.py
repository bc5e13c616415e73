"""Contracts of the tts statistics: difficulty levels with ties, compute-optimal selection noise,
the efficiency multiplier."""
import numpy as np
import pytest

from orchestrator.tts.stats import difficulty_levels


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
