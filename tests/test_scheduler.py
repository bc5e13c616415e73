"""The Ray-side search driver, with in-process pools: same results as one problem at a time,
merged calls, a bounded number of active problems, and finished problems replaced at once."""
import pytest

from orchestrator.scheduler import drive_searches
from orchestrator.search import STRATEGIES, run
from orchestrator.search.fakes import RuleScorer, SeededPolicy, hashed_score
from test_search_batching import QUESTIONS, strategy


class InlinePool:
    """The submit/wait/result surface of actors.pool.ReplicaPool, computed in-process."""

    def __init__(self, model, method):
        self.model, self.method, self.batches = model, method, []

    def submit(self, method, items, affinity=None):
        assert method == self.method and len(affinity) == len(items)  # one affinity key per request
        self.batches.append(len(items))
        return InlineCall(getattr(self.model, method)(items))

    def wait(self, calls):
        return calls, []


class InlineCall:
    def __init__(self, results):
        self.results = results

    def result(self):
        return self.results


@pytest.mark.parametrize("max_active", [1, 2, 5])
def test_driver_matches_one_at_a_time(max_active):
    methods = sorted(STRATEGIES)
    units = [{"problem": q, "method": m} for m in methods for q in QUESTIONS]
    policy, scorer = SeededPolicy("\n"), RuleScorer(hashed_score)
    alone = {(u["problem"], u["method"]): run(strategy(u["method"], u["problem"]), policy, scorer).to_dict()
             for u in units}
    policy_pool = InlinePool(SeededPolicy("\n"), "generate")
    prm_pool = InlinePool(RuleScorer(hashed_score), "score")
    jobs = ((u, strategy(u["method"], u["problem"])) for u in units)
    seen = []
    for unit, result, wall in drive_searches(jobs, policy_pool, prm_pool, max_active):
        seen.append((unit["problem"], unit["method"]))
        assert result.to_dict() == alone[seen[-1]]
        assert wall >= 0
    assert sorted(seen) == sorted(alone)  # every unit exactly once
    if max_active > 1:  # requests of several problems went out together
        assert len(policy_pool.batches) < len(policy.calls)
