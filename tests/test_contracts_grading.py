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


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{3} then \\boxed{4", "3"),  # an unclosed last box falls back to the one before it
    ("\\boxed{$5.$}", "5"),  # dollars and a final period are not part of the answer
    ("\\boxed{ 12 }", "12"),
    ("\\boxed{a{b}c} and 9", "a{b}c"),
    ("\\fbox{1} \\boxed{2}", "2"),
    ("\\boxed  6 apples", "6"),  # a bare box takes the next word
    ("so Answer = 7 here", "7 here"),
    ("ANSWER IS 8. Done", "8"),
    ("Answer: $ $\nthen 41 or 42", "42"),  # an empty statement falls back to the last number
    ("the answer is 2.5. Wait", "2.5"),
    ("values 1.5 and 2.25", "2.25"),
    ("from +3 to 4", "4"),
    ("+3", "+3"),
    ("1,234,567 total", "1,234,567"),
    ("12,34", "34"),  # not a thousands group: two numbers
])
def test_extract_answer_more_forms(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["\\boxed{}", "\\boxed{ $ $ }", "3 + 4 = 7 so \\boxed{}"])
def test_an_empty_box_is_no_answer_even_with_numbers_before_it(text):
    assert extract_answer(text) is None and extract_answer(text, truncated=True) is None


@pytest.mark.parametrize("text, expected", [
    ("the answer is 5", None),  # a stated answer of a cut-off output does not count either
    ("\\fbox{5} and more", "5"),
    ("\\boxed 9 and more", "9"),
])
def test_a_truncated_output_answers_only_with_a_box_of_either_kind(text, expected):
    assert extract_answer(text, truncated=True) == expected


@pytest.mark.parametrize("prediction, gold, expected", [
    ("$5$", "5", True),  # cleaned text equal: no parsing at all
    ("5.", "5", True),
    (" 7 ", "7", True),
    ("2,000.5", "2000.50", True),
    ("1000", "1,000", True),
    ("0", "-0", True),
    ("3.0001", "3", False),
    ("-2", "2", False),
])
def test_answers_equal_on_plain_numbers_in_process(monkeypatch, prediction, gold, expected):
    """Plain numbers (signs, decimals, thousands groups) and answers equal once cleaned are
    decided in-process, never by the math_verify worker."""
    import orchestrator.grading as grading

    def no_worker(prediction, gold):
        raise AssertionError(f"the worker was asked about {prediction!r} and {gold!r}")

    monkeypatch.setattr(grading, "_verifier", no_worker)
    assert answers_equal.__wrapped__(prediction, gold) is expected


def test_grade_without_an_answer_is_false_and_with_one_compares_it():
    assert grade("no digits here", "5") is False
    assert grade("The answer is 5.", "5.0") is True
    assert grade("The answer is 5.", "6") is False
