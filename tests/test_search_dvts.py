"""DVTS on a hand-worked pair of subtrees (N=4, M=2)."""
import json

from orchestrator.protocols import PromptFormat
from orchestrator.search import SearchConfig, dvts, run
from fakes import RuleScorer, ScriptedPolicy

FMT = PromptFormat(template="{question}\n", step_delimiter="\n")


def prompt(*steps):
    return "q\n" + "".join(s + "\n" for s in steps)


SCORES = {"a": .6, "b": .4, "c": .3, "d": .8, "a1": .5, "a2": .7, "d1 =4": .9, "d2": .2,
          "a2x =4": .3, "a2y": .85, "a2yx =8": .6, "a2yy =4": .5}
# The root prompt is asked twice in one batch (once per subtree): subtree 0 gets a, b; subtree 1 c, d.
TREE = {
    prompt(): [("a", "stop"), ("b", "stop"), ("c", "stop"), ("d", "stop")],
    prompt("a"): [("a1", "stop"), ("a2", "stop")],
    prompt("d"): [("d1 =4", "eos"), ("d2", "stop")],  # best is complete: subtree 1 ends; d2 is not returned
    prompt("a", "a2"): [("a2x =4", "eos"), ("a2y", "stop")],  # a2x completes but a2y is chosen
    prompt("a", "a2", "a2y"): [("a2yx =8", "eos"), ("a2yy =4", "eos")],
}


def search(max_iterations=40):
    policy = ScriptedPolicy(TREE)
    scorer = RuleScorer(lambda question, steps: SCORES[steps[-1]])
    config = SearchConfig(beam_width=2, max_iterations=max_iterations)
    strategy = dvts("q", 4, config, FMT, 0, lambda t, truncated: t.rsplit("=", 1)[1] if "=" in t else None, str.__eq__)
    return run(strategy, policy, scorer), policy


def test_hand_worked_subtrees():
    result, policy = search()
    assert [(s.steps, s.score, s.answer) for s in result.solutions] == [
        (["d", "d1 =4"], .9, "4"),
        (["a", "a2", "a2y", "a2yx =8"], .6, "8"),
        (["a", "a2", "a2y", "a2yy =4"], .5, "4")]
    assert result.answer == "4"  # .9 + .5 against .6
    assert result.iterations == 4
    assert [sum(r.n for r in call) for call in policy.calls] == [4, 4, 2, 2]  # never above N


def test_trees_keep_parent_links_texts_and_scores():
    result, _ = search()
    tree0, tree1 = result.trees
    by_step = {node.step: node for node in tree0}
    assert [node.step for node in tree0] == ["", "a", "b", "a1", "a2", "a2x =4", "a2y", "a2yx =8", "a2yy =4"]
    assert by_step["a2yx =8"].parent == by_step["a2y"].id and by_step["a2y"].parent == by_step["a2"].id
    assert by_step["a"].parent == by_step[""].id and by_step[""].parent is None and by_step[""].score is None
    assert by_step["a2y"].score == .85 and by_step["a2x =4"].finish_reason == "eos"
    assert [(node.step, node.score) for node in tree1] == [
        ("", None), ("c", .3), ("d", .8), ("d1 =4", .9), ("d2", .2)]
    assert len({node.id for node in tree0 + tree1}) == 14


def test_unfinished_subtrees_return_nothing():
    result, _ = search(max_iterations=3)
    assert [s.steps for s in result.solutions] == [["d", "d1 =4"]]
    assert all(s.finish_reason in ("eos", "length") for s in result.solutions)


def test_token_counts_are_booked():
    result, policy = search()
    # one token per character: a b c d, a1 a2, "d1 =4" d2, "a2x =4" a2y, "a2yx =8" "a2yy =4"
    assert result.usage.policy_generated_tokens == 4 + 4 + 7 + 9 + 14
    assert result.usage.policy_samples == 12
    # prompts: root twice (2 + 2), a and d (4 + 4), a2 (7), a2y (11)
    assert result.usage.policy_prompt_tokens == 30
    # PRM: question (1) + steps, per iteration: 4 x 2; 4 + 4 + 7 + 4; 10 + 7; 14 + 14
    assert result.usage.prm_tokens == 8 + 19 + 17 + 28


def test_result_is_json_serialisable():
    result, _ = search()
    data = json.loads(json.dumps(result.to_dict()))
    assert data["answer"] == "4" and data["trees"][1][3]["step"] == "d1 =4"
    assert data["usage"]["policy_samples"] == 12
