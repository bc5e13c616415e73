"""Step-score aggregation and the final votes.

Answers are grouped once into equivalence classes (`group_answers`, with the injected
`answers_equal`, which may be slow); the votes then work on class ids, so the subsampling can
vote thousands of times cheaply. Votes return the index of the chosen solution (the first of
its class), so callers can read its answer or its correctness. Ties go to the class seen first.
"""
from __future__ import annotations

import math
from typing import Sequence

from orchestrator.search.base import AGGREGATIONS, AnswersEqual, Solution

VOTES = ("majority", "naive", "weighted")


def aggregate(step_scores: Sequence[float], how: str) -> float:
    """One score for a (partial) solution; 0 for a solution without steps."""
    if not step_scores:
        return 0.0
    if how == "last":
        return step_scores[-1]
    if how == "min":
        return min(step_scores)
    if how == "prod":
        return math.prod(step_scores)
    if how == "mean":
        return sum(step_scores) / len(step_scores)
    raise ValueError(f"unknown aggregation {how!r}; allowed: {', '.join(AGGREGATIONS)}")


def group_answers(answers: Sequence[str | None], answers_equal: AnswersEqual) -> list[int | None]:
    """Class id of each answer (None stays None): an answer joins the first class whose
    representative it equals."""
    representatives: list[str] = []
    classes: list[int | None] = []
    for answer in answers:
        if answer is None:
            classes.append(None)
            continue
        for c, representative in enumerate(representatives):
            if answers_equal(representative, answer):
                classes.append(c)
                break
        else:
            classes.append(len(representatives))
            representatives.append(answer)
    return classes


def vote(how: str, classes: Sequence[int | None], scores: Sequence[float]) -> int | None:
    """Index of the chosen solution among those with an answer; None when none has one.

    majority: the most frequent class; naive (vanilla best-of-N): the highest-scoring solution;
    weighted: the class with the largest sum of scores.
    """
    if how not in VOTES:
        raise ValueError(f"unknown vote {how!r}")
    answered = [i for i, c in enumerate(classes) if c is not None]
    if not answered:
        return None
    if how == "naive":
        return max(answered, key=lambda i: (scores[i], -i))
    totals: dict[int, float] = {}  # class -> count or sum of scores
    first: dict[int, int] = {}
    for i in answered:
        c = classes[i]
        first.setdefault(c, i)
        totals[c] = totals.get(c, 0.0) + (1.0 if how == "majority" else scores[i])
    return first[max(totals, key=lambda c: (totals[c], -first[c]))]


def final_answer(solutions: Sequence[Solution], how: str, answers_equal: AnswersEqual) -> str | None:
    classes = group_answers([s.answer for s in solutions], answers_equal)
    chosen = vote(how, classes, [s.score for s in solutions])
    return None if chosen is None else solutions[chosen].answer
