"""Majority, vanilla and weighted best-of-N: one batch of whole solutions, one PRM batch."""
import pytest

from orchestrator.protocols import PromptFormat
from orchestrator.search import STRATEGIES, SearchConfig, run
from fakes import RuleScorer, ScriptedPolicy

FMT = PromptFormat(template="{question}\n", step_delimiter="\n")
# three solutions of "5" with a weak first step, one "7" with a strong last step
SOLUTIONS = [("w\n=5", "eos"), ("w\n=5", "eos"), ("w\n=5", "eos"), ("s\n=7", "eos")]
SCORES = {"w": .1, "s": .6, "=5": .5, "=7": .9}


def search(method, aggregation="last"):
    policy = ScriptedPolicy({"q\n": SOLUTIONS})
    scorer = RuleScorer(lambda question, steps: SCORES[steps[-1]])
    config = SearchConfig(aggregation=aggregation)
    strategy = STRATEGIES[method]("q", 4, config, FMT, 0, lambda t, truncated: t.rsplit("=", 1)[1], str.__eq__)
    return run(strategy, policy, scorer), policy, scorer


def test_one_policy_batch_of_whole_solutions_then_one_prm_batch():
    result, policy, scorer = search("weighted_best_of_n")
    [[request]] = policy.calls
    assert request.n == 4 and request.stop == () and request.max_tokens == SearchConfig().max_solution_tokens
    assert [[r.steps for r in call] for call in scorer.calls] == [[("w", "=5")] * 3 + [("s", "=7")]]
    assert result.solutions[3].step_scores == [.6, .9]
    assert result.usage.policy_samples == 4 and result.usage.prm_tokens == 4 * (1 + 3)


@pytest.mark.parametrize("method,aggregation,answer", [
    ("majority", "last", "5"),
    ("best_of_n", "last", "7"),
    ("weighted_best_of_n", "last", "5"),  # 1.5 against .9
    ("best_of_n", "min", "7"),  # .6 against .1
    ("weighted_best_of_n", "min", "7"),  # .3 against .6: the vote follows the aggregation
    ("weighted_best_of_n", "prod", "7"),  # .15 against .54
    ("weighted_best_of_n", "mean", "5"),  # .9 against .75
])
def test_votes_follow_the_aggregation(method, aggregation, answer):
    assert search(method, aggregation)[0].answer == answer
