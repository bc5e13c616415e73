"""Contracts of the search core: truncated solutions do not vote on an intermediate number, a
lookahead rollout stops once its completion ended, votes and aggregation on hand-worked cases, an
empty sample adds no step, every expansion draws with its own seed, the range of top_p."""
import itertools

import pytest

from orchestrator.grading import extract_answer
from orchestrator.protocols import PromptFormat, Usage
from orchestrator.search import STRATEGIES, SearchConfig, run
from orchestrator.search.aggregate import aggregate, group_answers, vote
from orchestrator.search.steps import Node, expand, rollout
from fakes import RuleScorer, ScriptedPolicy, SeededPolicy, hashed_score

FMT = PromptFormat(template="{question}\n", step_delimiter="\n")


def prompt(*steps):
    return "q\n" + "".join(s + "\n" for s in steps)


@pytest.mark.parametrize("method", ["majority", "best_of_n", "weighted_best_of_n"])
def test_truncated_samples_do_not_vote_on_an_intermediate_number(method):
    # Three samples cut at max_tokens after an intermediate 42, one finished with a boxed 7;
    # the cut ones score higher, so on any vote they would win if they answered.
    solutions = [("12 + 30 = 42\n42 * 3", "length")] * 3 + [("3 + 4\n\\boxed{7}", "eos")]
    policy = ScriptedPolicy({"q\n": solutions})
    scorer = RuleScorer(lambda question, steps: 0.9 if "42" in steps[-1] else 0.5)
    strategy = STRATEGIES[method]("q", 4, SearchConfig(), FMT, 0, extract_answer, str.__eq__)
    result = run(strategy, policy, scorer)
    assert [s.answer for s in result.solutions] == [None, None, None, "7"]
    assert result.answer == "7"


def test_a_truncated_node_answers_only_with_a_boxed_answer():
    cut = Node(3, 1, "42 * 3", ("12 + 30 = 42", "42 * 3"), (.4, .6), "length", score=.6)
    assert cut.solution(FMT, extract_answer).answer is None
    boxed_then_cut = Node(4, 1, "so", ("\\boxed{42}", "so"), (.4, .6), "length")
    assert boxed_then_cut.solution(FMT, extract_answer).answer == "42"
    finished = Node(5, 1, "= 42", ("12 + 30", "= 42"), (.4, .6), "eos")
    assert finished.solution(FMT, extract_answer).answer == "42"


def test_beam_search_drops_the_answer_of_a_truncated_completion():
    tree = {prompt(): [("a", "stop"), ("b", "stop")],
            prompt("a"): [("x = 9", "length")], prompt("b"): [("\\boxed{5}", "eos")]}
    scores = {"a": .9, "b": .1, "x = 9": .9, "\\boxed{5}": .2}
    strategy = STRATEGIES["beam"]("q", 2, SearchConfig(beam_width=1), FMT, 0, extract_answer, str.__eq__)
    result = run(strategy, ScriptedPolicy(tree), RuleScorer(lambda q, steps: scores[steps[-1]]))
    # Both beams complete in iteration 1; the cut one (.9) would outvote 5 (.2) if 9 counted.
    assert [(s.finish_reason, s.answer) for s in result.solutions] == [("length", None), ("eos", "5")]
    assert result.answer == "5"


def drive_rollout(nodes, k, greedy):
    policy = ScriptedPolicy({}, greedy)
    strategy = rollout("q", nodes, k, SearchConfig(), FMT, 0, Usage())
    return run(strategy, policy, None), policy


@pytest.mark.parametrize("finish", ["eos", "length"])
def test_rollout_stops_once_its_completion_ended(finish):
    open_node = Node(1, 0, "p", ("p",), (.5,), "stop")
    # Were the rollout to continue past "=1", it would ask for prompt("p", "=1"), which has no script.
    tails, policy = drive_rollout([open_node], 3, {prompt("p"): ("=1", finish)})
    assert tails == [("=1",)]
    assert [len(call) for call in policy.calls] == [1]


def test_rollout_rolls_k_steps_and_skips_complete_nodes():
    open_node = Node(1, 0, "p", ("p",), (.5,), "stop")
    done = Node(2, 0, "=3", ("=3",), (.5,), "eos")
    greedy = {prompt("p"): ("p1", "stop"), prompt("p", "p1"): ("p2", "stop"), prompt("p", "p1", "p2"): ("p3", "stop")}
    tails, policy = drive_rollout([open_node, done], 2, greedy)
    assert tails == [("p1", "p2"), ()]
    assert [[r.prompt for r in call] for call in policy.calls] == [[prompt("p")], [prompt("p", "p1")]]
    assert all(r.temperature == 0.0 for call in policy.calls for r in call)


def test_aggregations_on_hand_worked_scores():
    scores = [0.5, 0.8, 0.25]
    assert aggregate(scores, "last") == 0.25
    assert aggregate(scores, "min") == 0.25
    assert aggregate(scores, "prod") == pytest.approx(0.1)
    assert aggregate(scores, "mean") == pytest.approx(1.55 / 3)
    assert aggregate([], "min") == 0.0
    with pytest.raises(ValueError):
        aggregate(scores, "max")


def test_votes_on_hand_worked_classes_with_ties_and_missing_answers():
    classes = group_answers(["5", None, "7", "5.0", "7", None], lambda a, b: float(a) == float(b))
    assert classes == [0, None, 1, 0, 1, None]
    scores = [0.2, 0.99, 0.3, 0.3, 0.1, 0.99]
    assert vote("majority", classes, scores) == 0  # 2 against 2: the class seen first
    assert vote("naive", classes, scores) == 2  # .3 twice: the earlier; unanswered never win
    assert vote("weighted", classes, scores) == 0  # .5 against .4
    assert vote("weighted", classes, [0.2, 0, 0.3, 0.2, 0.1, 0]) == 0  # .4 against .4: first seen
    assert vote("majority", [None, None], [1.0, 1.0]) is None


def test_an_empty_sample_adds_no_step():
    # A model that ends right after a final delimiter samples "" with EOS: the node completes as is.
    parent = Node(1, 0, "a", ("a",), (.5,), "stop")
    policy = ScriptedPolicy({prompt("a"): [("", "eos"), ("b", "stop")]})
    (children,) = run(expand("q", [parent], 2, SearchConfig(), FMT, 0, Usage(), itertools.count(2)), policy, None)
    assert [(c.id, c.parent, c.step, c.steps, c.step_scores, c.complete) for c in children] == [
        (2, 1, "", ("a",), (.5,), True), (3, 1, "b", ("a", "b"), (.5,), False)]
    assert children[0].solution(FMT, extract_answer).steps == ["a"]


def test_every_expansion_draws_with_its_own_seed():
    # DVTS starts its 4 subtrees from one prompt: only their seeds keep them from being one tree.
    policy = SeededPolicy("\n")
    strategy = STRATEGIES["dvts"]("q", 8, SearchConfig(beam_width=2), FMT, 0, extract_answer, str.__eq__)
    result = run(strategy, policy, RuleScorer(hashed_score))
    assert [r.prompt for r in policy.calls[0]] == [prompt()] * 4
    sampled = [r for call in policy.calls for r in call]
    assert len({r.seed for r in sampled}) == len(sampled) > 4
    assert len({tuple(node.step for node in tree) for tree in result.trees}) == 4


@pytest.mark.parametrize("top_p, bad", [(1.0, []), (0.5, []), (0.0, [("top_p", 0.0, "must be in (0, 1]")]),
                                        (1.5, [("top_p", 1.5, "must be in (0, 1]")])])
def test_top_p_is_in_the_half_open_unit_interval(top_p, bad):
    assert SearchConfig(top_p=top_p).problems() == bad


def test_temperature_zero_is_greedy_and_valid_below_it_is_not():
    assert SearchConfig(temperature=0.0).problems() == []
    assert [key for key, *_ in SearchConfig(temperature=-0.1).problems()] == ["temperature"]


def test_dvts_moves_to_the_first_of_tied_siblings():
    # the complete sibling comes first and ties the open one: the subtree ends with its answer
    policy = ScriptedPolicy({prompt(): [("x =4", "eos"), ("y", "stop")], prompt("y"): [("y1 =5", "eos")] * 2})
    scorer = RuleScorer(lambda question, steps: 0.5)
    strategy = STRATEGIES["dvts"]("q", 2, SearchConfig(beam_width=2), FMT, 0,
                                  lambda t, truncated: t.rsplit("=", 1)[1] if "=" in t else None, str.__eq__)
    result = run(strategy, policy, scorer)
    assert [s.steps for s in result.solutions] == [["x =4"]] and result.answer == "4"
