"""Lookahead-k: the greedy rollout is generated, scored, and its score picks the beam."""
import pytest

from orchestrator.protocols import PromptFormat
from orchestrator.search import STRATEGIES, SearchConfig, run
from fakes import RuleScorer, ScriptedPolicy

FMT = PromptFormat(template="{question}\n", step_delimiter="\n")


def prompt(*steps):
    return "q\n" + "".join(s + "\n" for s in steps)


# Without lookahead q (.6) beats p (.5); one greedy step further, p leads to .9 and q to .1.
SCORES = {"p": .5, "q": .6, "p'": .9, "q'": .1, "=1": .7, "=2": .7}
TREE = {prompt(): [("p", "stop"), ("q", "stop")],
        prompt("p"): [("=1", "eos"), ("=1", "eos")], prompt("q"): [("=2", "eos"), ("=2", "eos")]}
GREEDY = {prompt("p"): ("p'", "stop"), prompt("q"): ("q'", "stop")}


def search(method, lookahead):
    policy = ScriptedPolicy(TREE, GREEDY)
    scorer = RuleScorer(lambda question, steps: SCORES[steps[-1]])
    config = SearchConfig(beam_width=2, lookahead=lookahead)
    strategy = STRATEGIES[method]("q", 2, config, FMT, 0, lambda t, truncated: t.rsplit("=", 1)[1], str.__eq__)
    return run(strategy, policy, scorer), policy, scorer


def test_rollout_score_picks_the_beam():
    assert search("beam", 0)[0].answer == "2"
    result, _, _ = search("lookahead", 1)
    assert result.answer == "1"
    # the rollout's end score became the score of the kept step; the rollout is not part of it
    assert [(s.steps, s.step_scores) for s in result.solutions] == [(["p", "=1"], [.9, .7])] * 2


def test_rollout_is_scored_and_its_cost_counted():
    result, policy, scorer = search("lookahead", 1)
    assert [r.steps for r in scorer.calls[0]] == [("p", "p'"), ("q", "q'")]
    # iteration 0: N sampled + N*k greedy; iteration 1: N sampled, all complete, no rollout
    assert [(sum(r.n for r in call), call[0].temperature) for call in policy.calls] == [(2, .8), (2, 0.0), (2, .8)]
    assert [(r.prompt, r.stop) for r in policy.calls[1]] == [(prompt("p"), ("\n",)), (prompt("q"), ("\n",))]
    assert result.usage.policy_samples == 6
    assert result.usage.policy_generated_tokens == len("pq") + len("p'q'") + len("=1=1")


def test_lookahead_needs_k():
    with pytest.raises(ValueError):
        search("lookahead", 0)
