import random

import pytest

from orchestrator.grading import grade
from orchestrator.tasks import arith


def test_generator_is_deterministic():
    a = arith.problems("train", 20, seed=3)
    b = arith.problems("train", 20, seed=3)
    c = arith.problems("train", 20, seed=4)
    assert a == b
    assert [p.id for p in a] != [p.id for p in c]
    assert arith.test_problems(10) == arith.test_problems(10)


def test_splits_are_disjoint_and_ids_stable():
    test = arith.test_problems(50)
    train = arith.problems("train", 500, seed=0)
    val = arith.problems("val", 50, seed=0)
    assert not {p.question for p in test} & {p.question for p in train}
    assert not {p.question for p in val} & ({p.question for p in train} | {p.question for p in test})
    assert all(arith.split_of(p.question) == "test" for p in test)
    assert len({p.id for p in train}) == len(train)
    again = arith.make_problem(37, [("+", 25), ("-", 32), ("*", 3)])
    assert again.id == arith.make_problem(37, [("+", 25), ("-", 32), ("*", 3)]).id
    assert again.id.startswith("arith-3-")


def test_problem_format_and_levels():
    for problem in arith.problems("train", 30, seed=1):
        steps = problem.reference_solution.split("\n\n")
        assert len(steps) == problem.level
        assert steps[-1].endswith(f"\\boxed{{{problem.answer}}}")
        assert 1 <= int(problem.answer) <= 99
        assert grade(problem.reference_solution, problem.answer)
        assert arith.is_fully_correct(problem, steps)


def test_known_problem():
    p = arith.make_problem(37, [("+", 25), ("-", 32), ("*", 3)])
    assert p.question == "Start at 37. Apply in order: a) + 25, b) - 32, c) * 3."
    assert p.reference_steps == ("a) 37 + 25 = 62", "b) 62 - 32 = 30", "c) 30 * 3 = \\boxed{90}")
    assert p.answer == "90" and p.level == 3


def test_step_correctness_is_prefix_correctness():
    p = arith.make_problem(37, [("+", 25), ("-", 32), ("*", 3)])
    assert arith.step_correctness(p, ["a) 37 + 25 = 62", "b)  62  - 32 = 30"]) == [True, True]
    assert arith.step_correctness(p, ["a) 37 + 25 = 62", "b) 62 - 32 = 31"]) == [True, False]
    # A wrong step stays wrong for the rest of the chain, even if later arithmetic is right.
    wrong = ["a) 37 + 25 = 63", "b) 63 - 32 = 31", "c) 31 * 3 = \\boxed{93}"]
    assert arith.step_correctness(p, wrong) == [False, False, False]
    # A right answer from a wrong chain is not a fully correct chain.
    lucky = ["a) 37 + 25 = 61", "b) 61 - 32 = 30", "c) 30 * 3 = \\boxed{90}"]
    assert grade("\n\n".join(lucky), p.answer) and not arith.is_fully_correct(p, lucky)
    assert not arith.is_fully_correct(p, list(p.reference_steps) + ["extra"])
    assert not arith.is_fully_correct(p, list(p.reference_steps[:2]))
    # The right arithmetic on the wrong operation (labels swapped) is off track.
    assert arith.step_correctness(p, ["b) 37 - 32 = 5"]) == [False]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        arith.random_problem(6, random.Random(0))
    with pytest.raises(ValueError):
        arith.problems("dev", 1, seed=0)
