"""`arith`: seeded multi-step arithmetic chains with exactly checkable steps.

A problem starts at a number and applies `level` operations in order; every value stays in
1..99 and each step performs one operation, the format a tiny model learns on CPU in minutes:

    question: "Start at 37. Apply in order: a) + 25, b) - 32, c) * 3."
    solution: "a) 37 + 25 = 62\n\nb) 62 - 32 = 30\n\nc) 30 * 3 = \\boxed{90}"

Operations and steps carry matching letters: without them a small model mostly failed at
finding the k-th operation of a long question (most of its errors at levels 3-5), so pass@1
stopped falling with level; with them the errors left are arithmetic, spread over the steps.

The level is the number of steps, so difficulty grows strictly with level. The split of a
problem is a pure function of its question (a hash), so train and test are disjoint by
construction (a "val" split for checkpoint selection too) and the generator can draw as many train problems as wanted.
"""
from __future__ import annotations

import hashlib
import random
import re
import string
from dataclasses import dataclass
from typing import Sequence

NAME = "arith"
LEVELS = (1, 2, 3, 4, 5)
SPLITS = ("train", "val", "test")
STEP_DELIMITER = "\n\n"
MAX_VALUE = 99
FORMAT_VERSION = 2  # bump when questions or solutions change: cached models trained on them go stale
LABELS = string.ascii_lowercase  # step i and operation i carry LABELS[i]
TEST_FRACTION = 10  # one question in TEST_FRACTION belongs to the test split
TEST_SEED = 1234  # the fixed test set is drawn from this seed


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    level: int
    reference_steps: tuple[str, ...]

    @property
    def reference_solution(self) -> str:
        return STEP_DELIMITER.join(self.reference_steps)


def _question_hash(question: str) -> int:
    return int(hashlib.sha1(question.encode()).hexdigest()[:12], 16)


def split_of(question: str) -> str:
    """"test" for one question in TEST_FRACTION, "val" for another, "train" for the rest."""
    bucket = _question_hash(question) % TEST_FRACTION
    return {0: "test", 1: "val"}.get(bucket, "train")


def _random_operation(value: int, rng: random.Random) -> tuple[str, int]:
    """One operation keeping the value in 1..MAX_VALUE: (operator, operand)."""
    options = []
    if value < MAX_VALUE:
        options.append("+")
    if value > 1:
        options.append("-")
    if value * 2 <= MAX_VALUE:
        options.append("*")
    op = rng.choice(options)
    if op == "+":
        return op, rng.randint(1, MAX_VALUE - value)
    if op == "-":
        return op, rng.randint(1, value - 1)
    return op, rng.randint(2, min(9, MAX_VALUE // value))


def _apply(value: int, op: str, operand: int) -> int:
    return {"+": value + operand, "-": value - operand, "*": value * operand}[op]


def make_problem(start: int, operations: Sequence[tuple[str, int]]) -> Problem:
    ops_text = ", ".join(f"{label}) {op} {operand}" for label, (op, operand) in zip(LABELS, operations))
    question = f"Start at {start}. Apply in order: {ops_text}."
    steps, value = [], start
    for i, (op, operand) in enumerate(operations):
        result = _apply(value, op, operand)
        shown = f"\\boxed{{{result}}}" if i == len(operations) - 1 else str(result)
        steps.append(f"{LABELS[i]}) {value} {op} {operand} = {shown}")
        value = result
    problem_id = f"{NAME}-{len(operations)}-{_question_hash(question):012x}"
    return Problem(problem_id, question, str(value), len(operations), tuple(steps))


def random_problem(level: int, rng: random.Random) -> Problem:
    if level not in LEVELS:
        raise ValueError(f"arith level must be one of {LEVELS}, got {level}")
    start = rng.randint(1, MAX_VALUE)
    operations, value = [], start
    for _ in range(level):
        op, operand = _random_operation(value, rng)
        operations.append((op, operand))
        value = _apply(value, op, operand)
    return make_problem(start, operations)


def sample_problems(split: str, level: int, n: int, rng: random.Random) -> list[Problem]:
    """`n` random problems of one level from `split`, repeats allowed: a training stream."""
    out = []
    while len(out) < n:
        problem = random_problem(level, rng)
        if split_of(problem.question) == split:
            out.append(problem)
    return out


def problems(split: str, n_per_level: int, seed: int, levels: Sequence[int] = LEVELS) -> list[Problem]:
    """`n_per_level` distinct problems of each level from `split`, reproducible from `seed`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    out = []
    for level in levels:
        rng = random.Random(f"{NAME}-{split}-{seed}-{level}")
        seen: set[str] = set()
        attempts = 0
        while len(seen) < n_per_level:
            attempts += 1
            if attempts > 200 * n_per_level + 10_000:
                raise ValueError(f"level {level} has fewer than {n_per_level} distinct {split} problems")
            problem = random_problem(level, rng)
            if problem.question in seen or split_of(problem.question) != split:
                continue
            seen.add(problem.question)
            out.append(problem)
    return out


def test_problems(n_per_level: int = 100) -> list[Problem]:
    """The fixed test split: the same problems for every caller and every build."""
    return problems("test", n_per_level, seed=TEST_SEED)


def _normalize_step(step: str) -> str:
    return re.sub(r"\s+", " ", step).strip()


def split_steps(solution: str) -> list[str]:
    """A solution text as its non-empty steps."""
    return [s for s in (p.strip() for p in solution.split(STEP_DELIMITER)) if s]


def step_correctness(problem: Problem, steps: Sequence[str]) -> list[bool]:
    """For each step, whether the solution is still on track after it: this step and all
    before it equal the reference steps (whitespace aside). Steps past the end are wrong."""
    labels, on_track = [], True
    for i, step in enumerate(steps):
        on_track = on_track and i < len(problem.reference_steps) and (
            _normalize_step(step) == _normalize_step(problem.reference_steps[i]))
        labels.append(on_track)
    return labels


def is_fully_correct(problem: Problem, steps: Sequence[str]) -> bool:
    """The whole chain is right, not only the final answer."""
    return solution_matches(problem.reference_steps, STEP_DELIMITER.join(steps))


def solution_matches(reference_steps: Sequence[str], solution: str) -> bool:
    """A solution text whose steps are exactly the reference steps (whitespace aside): a pass
    that no lucky guess of the final answer can give."""
    steps = split_steps(solution)
    return len(steps) == len(reference_steps) and all(
        _normalize_step(s) == _normalize_step(r) for s, r in zip(steps, reference_steps))
