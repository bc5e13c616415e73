"""The one lockstep driver, with in-process pools: same results as one problem at a time,
merged calls, a bounded number of active problems, and finished problems replaced at once."""
from dataclasses import dataclass
from typing import ClassVar

import pytest

from orchestrator.driver import LocalPool, drive
from orchestrator.protocols import Generate, Score
from orchestrator.search import STRATEGIES, run
from fakes import RuleScorer, SeededPolicy, hashed_score
from test_search_batching import QUESTIONS, strategy


class InlinePool(LocalPool):
    """A local pool that checks the method and the affinity keys it is sent, and counts calls."""

    def __init__(self, model, method):
        super().__init__(model)
        self.method, self.batches = method, []

    def submit(self, method, items, affinity=None):
        assert method == self.method and len(affinity) == len(items)  # one affinity key per request
        self.batches.append(len(items))
        return super().submit(method, items, affinity)


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
    pools = {Generate: policy_pool, Score: prm_pool}
    for unit, result, wall in drive(jobs, pools, max_active, affinity_key=lambda u: u["problem"]):
        seen.append((unit["problem"], unit["method"]))
        assert result.to_dict() == alone[seen[-1]]
        assert wall >= 0
    assert sorted(seen) == sorted(alone)  # every unit exactly once
    if max_active > 1:  # requests of several problems went out together
        assert len(policy_pool.batches) < len(policy.calls)


@dataclass
class Propose:
    """A request kind of another experiment (a coder's proposals), to show it plugs in."""

    requests: list[str]
    method: ClassVar[str] = "propose"


class Coder:
    def __init__(self):
        self.calls = []

    def propose(self, tasks):
        self.calls.append(list(tasks))
        return [task.upper() for task in tasks]


def proposer(task):
    first = yield Propose([task])
    second = yield Propose([first[0] + "!"])
    return second[0]


def test_a_new_request_kind_plugs_into_the_same_driver():
    coder = Coder()
    out = {u: r for u, r, _ in drive(((t, proposer(t)) for t in ("a", "b", "c")), {Propose: LocalPool(coder)}, 3)}
    assert out == {"a": "A!", "b": "B!", "c": "C!"}
    assert coder.calls == [["a", "b", "c"], ["A!", "B!", "C!"]]  # one call per round for all three


def test_a_request_kind_without_a_pool_is_an_error():
    with pytest.raises(TypeError, match="no pool answers Propose"):
        list(drive([("a", proposer("a"))], {Generate: LocalPool(Coder())}, 1))
