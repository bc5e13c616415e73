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


# ---- SearchConfig.problems: every bound, both sides ----

@pytest.mark.parametrize("changes, bad", [
    ({}, []),
    ({"beam_width": 1, "max_iterations": 1, "max_step_tokens": 1, "max_solution_tokens": 1}, []),
    ({"beam_width": 0}, [("beam_width", 0, "must be a positive int")]),
    ({"max_iterations": 0}, [("max_iterations", 0, "must be a positive int")]),
    ({"max_step_tokens": 0}, [("max_step_tokens", 0, "must be a positive int")]),
    ({"max_solution_tokens": 0}, [("max_solution_tokens", 0, "must be a positive int")]),
    ({"lookahead": 0}, []),
    ({"lookahead": -1}, [("lookahead", -1, "must be >= 0")]),
    ({"aggregation": "max"}, [("aggregation", "max", "allowed: last, min, prod, mean")]),
    ({"temperature": -0.5}, [("temperature", -0.5, "must be >= 0")]),
    ({"top_p": 1e-9}, []),
])
def test_search_config_bounds(changes, bad):
    """Positive ints are >= 1, lookahead >= 0, a known aggregation: exact (field, value, why)."""
    assert SearchConfig(**changes).problems() == bad


def test_search_config_lists_every_problem_in_field_order():
    cfg = SearchConfig(aggregation="sum", beam_width=0, max_solution_tokens=-1, lookahead=-2, top_p=2.0,
                       temperature=-1.0)
    assert [field for field, *_ in cfg.problems()] == [
        "aggregation", "beam_width", "max_solution_tokens", "lookahead", "top_p", "temperature"]


@pytest.mark.parametrize("aggregation", ["last", "min", "prod", "mean"])
def test_every_listed_aggregation_is_valid(aggregation):
    assert SearchConfig(aggregation=aggregation).problems() == []


# ---- grouping and votes ----

def test_an_answer_is_compared_with_each_class_representative_as_the_second_argument():
    """answers_equal(representative, answer): here "equal" means the answer starts with the
    representative, so "12" joins "1" but a class of "12" would not take "1"."""
    prefix = lambda rep, answer: answer.startswith(rep)  # noqa: E731
    assert group_answers(["1", "12", "2", "1"], prefix) == [0, 0, 1, 0]
    assert group_answers(["12", "1"], prefix) == [0, 1]


def test_a_class_is_represented_by_its_first_answer_not_its_latest():
    near = lambda a, b: abs(int(a) - int(b)) <= 1  # noqa: E731
    # 2 joins 1's class; 3 is two away from the representative 1, so it starts a new class
    assert group_answers(["1", "2", "3", "4"], near) == [0, 0, 1, 1]


def test_an_answer_joins_the_first_class_it_equals():
    anything_to_x = lambda rep, answer: rep == answer or answer == "x"  # noqa: E731
    assert group_answers(["a", "b", "x", None, "b"], anything_to_x) == [0, 1, 0, None, 1]
    assert group_answers([], anything_to_x) == []


@pytest.mark.parametrize("how, expected", [("majority", 1), ("weighted", 1), ("naive", 4)])
def test_a_vote_returns_the_first_index_of_the_winning_class(how, expected):
    # classes: 1 at indices 0 and 3, 0 at 1, 2, 4; the best single score is index 4 (class 0)
    classes = [1, 0, 0, 1, 0]
    scores = [0.1, 0.2, 0.1, 0.1, 0.9]
    assert vote(how, classes, scores) == expected


def test_weighted_vote_sums_scores_and_majority_counts():
    classes = [0, 1, 1, 1]
    scores = [2.5, 0.5, 0.5, 0.5]  # class 0: one answer worth 2.5; class 1: three worth 1.5
    assert vote("majority", classes, scores) == 1
    assert vote("weighted", classes, scores) == 0


def test_naive_vote_takes_the_highest_score_even_when_negative():
    assert vote("naive", [0, 1, 2], [-0.5, -0.1, -0.3]) == 1


@pytest.mark.parametrize("how", ["best", "Majority", ""])
def test_an_unknown_vote_is_refused_even_without_answers(how):
    with pytest.raises(ValueError):
        vote(how, [None], [0.0])


def test_final_answer_reads_the_chosen_solution_and_none_without_answers():
    from orchestrator.search.aggregate import final_answer
    from orchestrator.search.base import Solution
    sols = [Solution(["s"], [0.9], "eos", None, 0.9), Solution(["s"], [0.2], "eos", "5", 0.2),
            Solution(["s"], [0.3], "eos", "5.0", 0.3), Solution(["s"], [0.4], "eos", "7", 0.4)]
    same = lambda a, b: float(a) == float(b)  # noqa: E731
    assert final_answer(sols, "majority", same) == "5"  # the first of its class: "5", not "5.0"
    assert final_answer(sols, "naive", same) == "7"
    assert final_answer(sols, "weighted", same) == "5"  # .5 against .4
    assert final_answer(sols[:1], "weighted", same) is None
    assert final_answer([], "majority", same) is None


# ---- beam search and DVTS: budget checks, kept nodes, stop rules ----

def first_answer(text, truncated):
    return text.rsplit("=", 1)[1] if "=" in text else None


@pytest.mark.parametrize("method", ["beam", "dvts", "lookahead"])
@pytest.mark.parametrize("n, width, ok", [(6, 4, False), (2, 4, False), (8, 4, True), (4, 4, True), (3, 1, True)])
def test_tree_searches_need_n_divisible_by_the_beam_width(method, n, width, ok):
    strategy = STRATEGIES[method]("q", n, SearchConfig(beam_width=width, lookahead=1), FMT, 0, first_answer,
                                  str.__eq__)
    if ok:
        assert next(strategy).requests[0].n == (n if method != "dvts" else width)
    else:
        with pytest.raises(ValueError, match="divisible"):
            next(strategy)


def test_beam_best_keeps_the_highest_scores_and_the_earlier_on_ties():
    from orchestrator.search.beam import best
    nodes = [Node(i, 0, s, (s,), (sc,), "stop", score=sc) for i, (s, sc) in enumerate(
        [("a", .5), ("b", .9), ("c", .5), ("d", .1)])]
    assert [n.step for n in best(nodes, 2)] == ["b", "a"]
    assert [n.step for n in best(nodes, 3)] == ["b", "a", "c"]
    assert [n.step for n in best(nodes, 10)] == ["b", "a", "c", "d"]
    assert best(nodes, 0) == []


def test_drop_duplicate_open_keeps_the_first_open_copy_and_every_complete_one():
    from orchestrator.search.beam import drop_duplicate_open
    nodes = [Node(1, 0, "a", ("a",), (), "stop"), Node(2, 0, "=1", ("=1",), (), "eos"),
             Node(3, 0, "a", ("a",), (), "stop"), Node(4, 0, "=1", ("=1",), (), "eos"),
             Node(5, 0, "b", ("b",), (), "stop")]
    assert [n.id for n in drop_duplicate_open(nodes)] == [1, 2, 4, 5]


def tree_search_run(method, tree, scores, n, width, **cfg):
    """`method` over a scripted tree, each step scored by `scores` of its text; (result, policy)."""
    policy = ScriptedPolicy(tree)
    scorer = RuleScorer(lambda question, steps: scores[steps[-1]])
    strategy = STRATEGIES[method]("q", n, SearchConfig(beam_width=width, **cfg), FMT, 0, first_answer, str.__eq__)
    return run(strategy, policy, scorer), policy


def beam_run(tree, scores, n, width, **cfg):
    return tree_search_run("beam", tree, scores, n, width, **cfg)


def test_beam_completions_tied_in_score_keep_the_earlier_one():
    # N=2, M=2: one beam. It0: "a" (open, .9) and "=1" (complete, .5). It1: "a" gives "=2" and "=3",
    # both .5: three completions tie at .5 for two places; the earliest two ("=1", "=2") stay.
    tree = {prompt(): [("a", "stop"), ("=1", "eos")], prompt("a"): [("=2", "eos"), ("=3", "eos")]}
    result, policy = beam_run(tree, {"a": .9, "=1": .5, "=2": .5, "=3": .5}, n=2, width=2)
    assert [s.answer for s in result.solutions] == ["1", "2"]
    assert result.iterations == 2 and [len(c) for c in policy.calls] == [1, 1]


def test_beam_search_stops_once_n_solutions_are_complete_with_beams_still_open():
    # N=4, M=2. It0: two completions, beams a and b. It1: each gives one completion and one open
    # step: four completions, so the search stops although a1 and b1 are open (they have no script).
    tree = {prompt(): [("=1", "eos"), ("=2", "eos"), ("a", "stop"), ("b", "stop")],
            prompt("a"): [("=3", "eos"), ("a1", "stop")], prompt("b"): [("=4", "eos"), ("b1", "stop")]}
    scores = {"=1": .1, "=2": .2, "a": .9, "b": .8, "=3": .3, "a1": .5, "=4": .4, "b1": .5}
    result, policy = beam_run(tree, scores, n=4, width=2)
    assert result.iterations == 2 and len(policy.calls) == 2
    assert [s.answer for s in result.solutions] == ["4", "3", "2", "1"]  # best first


def test_beam_search_runs_exactly_max_iterations():
    tree = {prompt(): [("a", "stop")], prompt("a"): [("b", "stop")], prompt("a", "b"): [("=1", "eos")]}
    scores = {"a": .5, "b": .5, "=1": .5}
    two, policy = beam_run(tree, scores, n=1, width=1, max_iterations=2)
    assert two.iterations == 2 and len(policy.calls) == 2 and two.solutions == []
    three, _ = beam_run(tree, scores, n=1, width=1, max_iterations=3)
    assert three.iterations == 3 and [s.answer for s in three.solutions] == ["1"] and three.answer == "1"


def dvts_run(tree, scores, n, width, **cfg):
    return tree_search_run("dvts", tree, scores, n, width, **cfg)


def test_dvts_ends_a_subtree_with_every_complete_sibling_but_no_open_one():
    # One subtree of width 3: the best is complete, so "=1" and "=2" are its solutions, "a" is not.
    tree = {prompt(): [("=1", "eos"), ("a", "stop"), ("=2", "length")]}
    result, _ = dvts_run(tree, {"=1": .9, "a": .5, "=2": .1}, n=3, width=3)
    assert [(s.steps, s.finish_reason) for s in result.solutions] == [(["=1"], "eos"), (["=2"], "length")]
    assert result.iterations == 1


@pytest.mark.parametrize("max_iterations, iterations, answers", [(1, 1, []), (2, 2, ["2"]), (5, 2, ["2"])])
def test_dvts_runs_at_most_max_iterations_and_a_passed_over_completion_is_no_solution(max_iterations, iterations,
                                                                                      answers):
    # It0: "a" (.9) beats the complete "=1" (.1), which is then never a solution.
    tree = {prompt(): [("a", "stop"), ("=1", "eos")], prompt("a"): [("=2", "eos"), ("b", "stop")]}
    result, policy = dvts_run(tree, {"a": .9, "=1": .1, "=2": .5, "b": .4}, n=2, width=2,
                              max_iterations=max_iterations)
    assert result.iterations == iterations == len(policy.calls)
    assert [s.answer for s in result.solutions] == answers


# ---- steps: nodes, expansion, scoring ----

@pytest.mark.parametrize("finish, complete", [("eos", True), ("length", True), ("stop", False)])
def test_a_node_is_complete_on_eos_or_length_only(finish, complete):
    assert Node(1, 0, "a", ("a",), (.5,), finish).complete is complete


def test_tree_node_scores():
    from orchestrator.search.steps import root
    assert root(0).tree_node().score is None and root(0).tree_node().parent is None
    assert Node(1, 0, "b", ("a", "b"), (.2, .7), "stop").tree_node().score == .7
    assert Node(2, 0, "", (), (), "eos").tree_node().score is None  # an empty first sample: no step, no score
    assert root(0).finish_reason == "stop" and root(0).steps == () and not root(0).complete


def test_expand_asks_width_samples_per_parent_with_the_step_settings():
    cfg = SearchConfig(temperature=0.3, top_p=0.7, max_step_tokens=9, max_solution_tokens=99)
    parents = [Node(4, 0, "a", ("a",), (.5,), "stop"), Node(7, 0, "b", ("b",), (.6,), "stop")]
    policy = ScriptedPolicy({prompt("a"): [("a1", "stop"), ("a2", "eos")], prompt("b"): [("b1", "length"), ("", "eos")]})
    children = run(expand("q", parents, 2, cfg, FMT, 5, Usage(), itertools.count(10)), policy, None)
    [call] = policy.calls
    assert [(r.prompt, r.n, r.temperature, r.top_p, r.max_tokens, r.stop) for r in call] == [
        (prompt("a"), 2, 0.3, 0.7, 9, ("\n",)), (prompt("b"), 2, 0.3, 0.7, 9, ("\n",))]
    assert call[0].seed != call[1].seed
    assert [[(c.id, c.parent, c.steps, c.step_scores, c.finish_reason) for c in cs] for cs in children] == [
        [(10, 4, ("a", "a1"), (.5,), "stop"), (11, 4, ("a", "a2"), (.5,), "eos")],
        [(12, 7, ("b", "b1"), (.6,), "length"), (13, 7, ("b",), (.6,), "eos")]]


@pytest.mark.parametrize("aggregation, score", [("last", .8), ("min", .4), ("mean", .6), ("prod", .32)])
def test_score_nodes_appends_the_new_step_score_and_aggregates(aggregation, score):
    from orchestrator.search.steps import score_nodes
    node = Node(2, 1, "b", ("a", "b"), (.4,), "stop")
    scorer = RuleScorer(lambda q, steps: {"a": .1, "b": .8}[steps[-1]])
    run(score_nodes("q", [node], SearchConfig(aggregation=aggregation), FMT, 0, Usage()), None, scorer)
    # the earlier step keeps the .4 that chose it, though the PRM now says .1 for it
    assert node.step_scores == (.4, .8) and node.score == pytest.approx(score)


def test_score_nodes_skips_a_node_without_steps():
    from orchestrator.search.steps import score_nodes
    empty, one = Node(1, 0, "", (), (), "eos"), Node(2, 0, "a", ("a",), (), "stop")
    scorer = RuleScorer(lambda q, steps: .7)
    run(score_nodes("q", [empty, one], SearchConfig(), FMT, 0, Usage()), None, scorer)
    assert [[r.steps for r in call] for call in scorer.calls] == [[("a",)]]
    assert (empty.step_scores, empty.score, one.step_scores, one.score) == ((), 0.0, (.7,), .7)


def test_score_nodes_with_lookahead_scores_the_rollout_end_as_the_new_step():
    from orchestrator.search.steps import score_nodes
    node = Node(2, 1, "b", ("a", "b"), (.4,), "stop")
    greedy = {prompt("a", "b"): ("c", "stop"), prompt("a", "b", "c"): ("=1", "eos")}
    scorer = RuleScorer(lambda q, steps: {"a": .1, "b": .2, "c": .3, "=1": .9}[steps[-1]])
    policy = ScriptedPolicy({}, greedy)
    run(score_nodes("q", [node], SearchConfig(), FMT, 0, Usage(), lookahead=3), policy, scorer)
    assert [[r.steps for r in call] for call in scorer.calls] == [[("a", "b", "c", "=1")]]
    assert node.steps == ("a", "b") and node.step_scores == (.4, .9) and len(policy.calls) == 2


def test_rollout_requests_one_greedy_sample_per_node_with_the_step_token_limit():
    open_node = Node(1, 0, "p", ("p",), (.5,), "stop")
    greedy = {prompt("p"): ("", "stop"), }
    policy = ScriptedPolicy({}, greedy)
    cfg = SearchConfig(top_p=0.5, max_step_tokens=7)
    tails = run(rollout("q", [open_node], 2, cfg, FMT, 0, Usage()), policy, None)
    # an empty greedy step adds nothing to the tail but the rollout goes on (it ended at the delimiter)
    assert tails == [()]
    assert [(r.n, r.top_p, r.temperature, r.max_tokens) for call in policy.calls for r in call] == [(1, 1.0, 0.0, 7)] * 2
    assert policy.calls[0][0].seed != policy.calls[1][0].seed  # a new seed per depth


def test_rollout_with_k_zero_asks_nothing():
    policy = ScriptedPolicy({}, {})
    tails = run(rollout("q", [Node(1, 0, "p", ("p",), (.5,), "stop")], 0, SearchConfig(), FMT, 0, Usage()), policy, None)
    assert tails == [()] and policy.calls == []


# ---- sampling methods and subsampling ----

def test_sampling_request_splits_steps_and_leaves_stepless_samples_unscored():
    cfg = SearchConfig(temperature=0.4, top_p=0.9, max_solution_tokens=77, max_step_tokens=5)
    samples = [("a\n\n \nb =3", "eos"), ("\n", "eos"), ("c =4", "length")]
    policy = ScriptedPolicy({"q\n": samples})
    scorer = RuleScorer(lambda q, steps: {"a": .2, "b =3": .6, "c =4": .9}[steps[-1]])
    result = run(STRATEGIES["weighted_best_of_n"]("q", 3, cfg, FMT, 0, first_answer, str.__eq__), policy, scorer)
    [[request]] = policy.calls
    assert (request.n, request.temperature, request.top_p, request.max_tokens, request.stop) == (3, 0.4, 0.9, 77, ())
    assert [[r.steps for r in call] for call in scorer.calls] == [[("a", "b =3"), ("c =4",)]]
    assert [(s.steps, s.step_scores, s.score, s.finish_reason) for s in result.solutions] == [
        (["a", "b =3"], [.2, .6], .6, "eos"), ([], [], 0.0, "eos"), (["c =4"], [.9], .9, "length")]
    assert result.iterations == 1 and result.trees == []


@pytest.mark.parametrize("method, answer", [("majority", "5"), ("best_of_n", "7"), ("weighted_best_of_n", "7")])
def test_each_sampling_method_uses_its_own_vote(method, answer):
    # "5" twice at .3, "7" once at .8: majority 5, vanilla 7, weighted .8 against .6: 7
    samples = [("=5", "eos"), ("=7", "eos"), ("=5", "eos")]
    scorer = RuleScorer(lambda q, steps: {"=5": .3, "=7": .8}[steps[-1]])
    result = run(STRATEGIES[method]("q", 3, SearchConfig(), FMT, 0, first_answer, str.__eq__),
                 ScriptedPolicy({"q\n": samples}), scorer)
    assert result.answer == answer


def test_subsample_votes_are_never_right_where_no_sample_of_the_subsample_is():
    """Per resample r, the votes and pass@n read the same subsample: a vote is right only when
    pass is, and at n = N every resample gives the same outcome."""
    from orchestrator.search.subsample import subsample_outcomes
    answers = ["a", "b", "a", None, "b", "b"]
    correct = [False, True, False, True, True, True]
    scores = [.9, .2, .8, .99, .1, .3]
    out = subsample_outcomes(answers, scores, correct, [1, 2, 3, 6], str.__eq__, num_resamples=50, seed=2)
    for n in (1, 2, 3):
        for how in ("majority", "naive", "weighted"):
            assert all(v <= p for v, p in zip(out[n][how], out[n]["pass"])), (n, how)
    # n=1: the vote is right exactly when the one sample is (an unanswered sample never counts)
    assert any(p == 1.0 and v == 0.0 for v, p in zip(out[1]["naive"], out[1]["pass"]))  # the None sample
    assert {m: set(v) for m, v in out[6].items()} == {"majority": {1.0}, "naive": {0.0}, "weighted": {0.0},
                                                      "pass": {1.0}}  # b 3 to 2; a's .9 best; a 1.7 to .6


@pytest.mark.parametrize("scores, correct, ns", [
    ([.1, .2], [True, False, True], [1]),  # one score missing
    ([.1, .2, .3], [True, False], [1]),  # one grade missing
    ([.1, .2, .3], [True, False, True], [0, 2]),  # n = 0
    ([.1, .2, .3], [True, False, True], [4]),  # n above the samples
])
def test_subsample_refuses_bad_shapes_and_budgets(scores, correct, ns):
    from orchestrator.search.subsample import subsample_outcomes
    with pytest.raises(ValueError):
        subsample_outcomes(["a", "b", "c"], scores, correct, ns, str.__eq__)


def test_subsample_accepts_n_equal_to_the_samples_and_defaults_to_32_resamples():
    from orchestrator.search.subsample import subsample_outcomes
    out = subsample_outcomes(["a", "b", "c"], [.1, .2, .3], [True, False, True], [3, 1], str.__eq__)
    assert sorted(out) == [1, 3] and all(len(v) == 32 for by in out.values() for v in by.values())
    assert out == subsample_outcomes(["a", "b", "c"], [.1, .2, .3], [True, False, True], [3, 1], str.__eq__, seed=0)
    assert sorted(out[1]) == ["majority", "naive", "pass", "weighted"]


def test_a_fresh_node_scores_zero_until_scored():
    from orchestrator.search.steps import root
    assert root(3).score == 0.0 and Node(1, 0, "a", ("a",), (), "stop").score == 0.0


def test_a_node_from_an_empty_sample_keeps_one_score_per_step():
    """An empty sample adds no step: scoring its node re-scores its last step (the PRM now sees it
    as the end of the solution), never appends a score for a step that is not there."""
    from orchestrator.search.steps import score_nodes
    node = Node(3, 1, "", ("a", "b"), (.4, .5), "eos")
    scorer = RuleScorer(lambda q, steps: {"a": .1, "b": .8}[steps[-1]])
    run(score_nodes("q", [node], SearchConfig(aggregation="mean"), FMT, 0, Usage()), None, scorer)
    assert [[r.steps for r in call] for call in scorer.calls] == [[("a", "b")]]
    assert node.step_scores == (.4, .8) and node.score == pytest.approx(.6)


def test_derived_seeds_are_31_bit_and_depend_on_every_part_of_the_path():
    from orchestrator.search.base import derive_seed
    seeds = [derive_seed(s, kind, i) for s in (0, 1) for kind in ("expand", "lookahead") for i in range(50)]
    assert all(0 <= x < 2 ** 31 for x in seeds) and len(set(seeds)) == len(seeds)
    assert derive_seed(0, "a", 1) != derive_seed(0, "a", 1, 0) != derive_seed(0, ("a", 1))


def test_run_many_returns_results_in_the_order_of_the_strategies():
    from orchestrator.search import run_many
    policy = ScriptedPolicy({"q1\n": [("=1", "eos")], "q2\n": [("=2", "eos")], "q3\n": [("=3", "eos")]})
    scorer = RuleScorer(lambda q, steps: .5)
    strategies = [STRATEGIES["majority"](q, 1, SearchConfig(), FMT, 0, first_answer, str.__eq__) for q in ("q3", "q1", "q2")]
    assert [r.answer for r in run_many(strategies, policy, scorer)] == ["3", "1", "2"]
