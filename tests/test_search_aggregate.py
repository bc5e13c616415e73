"""Step-score aggregation, answer grouping and the three votes."""
import math

import pytest

from orchestrator.search.aggregate import aggregate, group_answers, vote


def test_aggregations():
    scores = [.9, .5, .8]
    assert aggregate(scores, "last") == .8
    assert aggregate(scores, "min") == .5
    assert aggregate(scores, "prod") == pytest.approx(.36)
    assert aggregate(scores, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([], "prod") == 0.0
    with pytest.raises(ValueError):
        aggregate(scores, "max")


def test_grouping_uses_answers_equal():
    same_number = lambda a, b: math.isclose(float(a), float(b))
    assert group_answers(["1", "1.0", None, "2", "01"], same_number) == [0, 0, None, 1, 0]


def test_votes():
    # answers: a a a b b c (None has no vote); scores favour b per sample and c alone
    classes = [0, 0, 0, 1, 1, None, 2]
    scores = [.2, .2, .2, .5, .5, 1.0, .9]
    assert vote("majority", classes, scores) == 0  # a: 3 votes
    assert vote("naive", classes, scores) == 6  # c: .9, the best scored answer (the None at 1.0 is skipped)
    assert vote("weighted", classes, scores) == 3  # b: 1.0 against a .6 and c .9
    assert vote("weighted", [None, None], [1, 1]) is None


def test_ties_go_to_the_first_seen():
    assert vote("majority", [1, 0, 0, 1], [0] * 4) == 0
    assert vote("naive", [0, 1], [.5, .5]) == 0
    assert vote("weighted", [1, 0], [.5, .5]) == 0
