"""Contracts of the grader: the last stated answer wins, signs survive, a truncated output
answers only when it boxed one."""
import pytest

from orchestrator.grading import answers_equal, extract_answer, grade


@pytest.mark.parametrize("text, expected", [
    ("The answer is 3. Wait, no: the answer is 5.", "5"),
    ("Answer: 7\nActually the answer is 9", "9"),
    ("The answer is 42. That is all.", "42"),
    ("The answer is 3.5.", "3.5"),
    ("The answer is -5.", "-5"),
    ("so x = -5", "-5"),
    ("we get 10, then -12", "-12"),
    ("total -1,000", "-1,000"),
    ("ratio 3/4", "3/4"),
    ("\\boxed{-2}", "-2"),
    ("answer is \\boxed{4}, not 5", "4"),  # a boxed answer beats any later number
])
def test_extract_answer_contract(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Step 1: 12 + 30 = 42\nStep 2: 42 * 3", None),  # cut off: the last number is intermediate
    ("The answer is 7. Now check: 7 + 1 = 8, so", None),
    ("so \\boxed{42} and then more text that was cut", "42"),
    ("", None),
])
def test_a_truncated_output_answers_only_when_boxed(text, expected):
    assert extract_answer(text, truncated=True) == expected


def test_truncation_changes_the_grade_not_the_untruncated_answer():
    text = "3 + 4 = 7"
    assert extract_answer(text) == "7" and grade(text, "7") is True
    assert grade(text, "7", truncated=True) is False
    assert grade("\\boxed{7} because 3 + 4", "7", truncated=True) is True


@pytest.mark.parametrize("prediction, gold, expected", [
    ("-5", "5", False),
    ("-5", "-5", True),
    ("-5.0", "-5", True),
    ("+5", "5", True),
    ("0.50", ".5", True),
    ("1,000", "1000", True),
    ("1,00", "100", False),
])
def test_answers_equal_on_signs_and_number_forms(prediction, gold, expected):
    assert answers_equal(prediction, gold) is expected
