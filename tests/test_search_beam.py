"""Beam search on a hand-worked tree (N=4, M=2) scripted step by step."""
import pytest

from orchestrator.protocols import PromptFormat
from orchestrator.search import SearchConfig, beam_search, run
from fakes import RuleScorer, ScriptedPolicy

FMT = PromptFormat(template="{question}\n", step_delimiter="\n")


def prompt(*steps):
    return "q\n" + "".join(s + "\n" for s in steps)


def extract(text, truncated):
    return text.rsplit("=", 1)[1] if "=" in text else None


def equal(a, b):
    return a == b


# step -> PRM score (the fake scorer scores a step by its text alone)
SCORES = {"a": .9, "b": .2, "c": .7, "d": .4,
          "a1": .5, "a2 =5": .8, "c1": .6, "c2": .65,
          "c2x =5": .7, "c2y =5": .65, "c1x =7": .95, "c1y =7": .1,
          "a1x =9": .9, "a1y": .3}
TREE = {
    prompt(): [("a", "stop"), ("b", "stop"), ("c", "stop"), ("d", "stop")],
    prompt("a"): [("a1", "stop"), ("a2 =5", "eos")],
    prompt("c"): [("c1", "stop"), ("c2", "stop")],
    prompt("c", "c2"): [("c2x =5", "eos"), ("c2y =5", "eos")],
    prompt("c", "c1"): [("c1x =7", "eos"), ("c1y =7", "eos")],
    prompt("a", "a1"): [("a1x =9", "eos"), ("a1y", "stop")],
}


def search(aggregation, tree=TREE, scores=SCORES, n=4, width=2, **cfg):
    policy = ScriptedPolicy(tree)
    scorer = RuleScorer(lambda question, steps: scores[steps[-1]])
    config = SearchConfig(beam_width=width, aggregation=aggregation, **cfg)
    return run(beam_search("q", n, config, FMT, 0, extract, equal), policy, scorer), policy, scorer


def test_hand_worked_tree_last():
    # it0: a .9, c .7 survive. it1: a2 completes; open a1 .5, c1 .6, c2 .65 -> keep c2, c1.
    # it2: four more completions make five; the worst (c1y .1) is dropped to keep N=4.
    result, policy, _ = search("last")
    assert [s.steps for s in result.solutions] == [["c", "c1", "c1x =7"], ["a", "a2 =5"],
                                                   ["c", "c2", "c2x =5"], ["c", "c2", "c2y =5"]]
    assert [s.score for s in result.solutions] == [.95, .8, .7, .65]
    assert [[r.prompt for r in call] for call in policy.calls] == [
        [prompt()], [prompt("a"), prompt("c")], [prompt("c", "c2"), prompt("c", "c1")]]
    assert result.iterations == 3
    # weighted: "5" has .8 + .7 + .65 against .95 for "7" (vanilla best-of-N would say 7)
    assert result.answer == "5"


def test_hand_worked_tree_mean_aggregation_changes_survivors():
    # it1 by mean: a1 (.9+.5)/2=.7, c1 .65, c2 .675 -> keep a1 and c2 (by "last" it was c2, c1).
    result, policy, _ = search("mean")
    assert sorted(map(tuple, (s.steps for s in result.solutions))) == [
        ("a", "a1", "a1x =9"), ("a", "a2 =5"), ("c", "c2", "c2x =5"), ("c", "c2", "c2y =5")]
    assert [r.prompt for r in policy.calls[2]] == [prompt("a", "a1"), prompt("c", "c2")]
    assert [s.score for s in result.solutions] == pytest.approx([.85, (.9 + .5 + .9) / 3, (.7 + .65 + .7) / 3,
                                                                 (.7 + .65 + .65) / 3])


def test_never_more_than_n_completions_and_samples_per_iteration_within_budget():
    result, policy, _ = search("last")
    assert len(result.solutions) == 4
    assert all(s.steps[-1] != "c1y =7" for s in result.solutions)
    assert [sum(r.n for r in call) for call in policy.calls] == [4, 4, 4]
    assert result.usage.policy_samples == 12


def test_token_counts_add_up():
    # The fakes count one token per character. Generated: a b c d (4), a1 "a2 =5" (7), c1 c2 (4),
    # "c2x =5" "c2y =5" (12), "c1x =7" "c1y =7" (12). Prompts: "q\n" (2), two of 4, two of 7.
    # PRM: question (1) + steps: 4 x 2, then 4 + 7 + 4 + 4, then 4 x 10.
    result, _, _ = search("last")
    assert result.usage.policy_generated_tokens == 39
    assert result.usage.policy_prompt_tokens == 24
    assert result.usage.prm_tokens == 67


def test_final_vote_uses_the_aggregation():
    # Two beams complete: p -> "=7" with step scores (.1, .9), q -> "=5" with (.6, .6).
    tree = {prompt(): [("p", "stop"), ("q", "stop")], prompt("p"): [("=7", "eos")], prompt("q"): [("=5", "eos")]}
    scores = {"p": .1, "q": .6, "=7": .9, "=5": .6}
    answers = {how: search(how, tree, scores, n=2, width=1)[0].answer for how in ("last", "min", "prod", "mean")}
    assert answers == {"last": "7", "min": "5", "prod": "5", "mean": "5"}


def test_length_is_truncated_completion_and_stop_with_answer_is_not():
    # "x =3" ends at the delimiter: still open. "cut" hit max_tokens: complete, as "length", no answer.
    tree = {prompt(): [("x =3", "stop"), ("cut", "length")], prompt("x =3"): [("=4", "eos")]}
    scores = {"x =3": .5, "cut": .9, "=4": .5}
    result, _, _ = search("last", tree, scores, n=2, width=1)
    assert [(s.steps, s.finish_reason, s.answer) for s in result.solutions] == [
        (["cut"], "length", None), (["x =3", "=4"], "eos", "4")]
    assert result.answer == "4"


def test_duplicate_filtering_keeps_distinct_beams():
    tree = {prompt(): [("a", "stop"), ("a", "stop"), ("b", "stop"), ("c", "stop")],
            prompt("a"): [("=1", "eos"), ("=1", "eos")], prompt("b"): [("=2", "eos"), ("=2", "eos")]}
    scores = {"a": .9, "b": .8, "c": .1, "=1": .5, "=2": .5}
    result, policy, scorer = search("last", tree, scores, filter_duplicates=True)
    assert [r.prompt for r in policy.calls[1]] == [prompt("a"), prompt("b")]  # not a twice
    assert len(scorer.calls[0]) == 3  # the duplicate is dropped before scoring
    assert sorted(s.answer for s in result.solutions) == ["1", "1", "2", "2"]


def test_iteration_cap_drops_open_beams():
    result, _, _ = search("last", max_iterations=1)
    assert result.solutions == [] and result.answer is None and result.iterations == 1
