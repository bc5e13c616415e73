"""The one driver, with in-process pools: same results as one problem at a time, merged calls, a
bounded number of active problems, finished problems replaced at once; cohorts that move on
their own, down to each strategy alone (asynchronous)."""
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


@dataclass
class Run:
    """A slow request kind (a candidate's training run): each item is (name, waits it takes)."""

    requests: list[tuple[str, int]]
    method: ClassVar[str] = "run"


class TickingCall:
    def __init__(self, items):
        self.names, self.left = [name for name, _ in items], max(waits for _, waits in items)

    @property
    def done(self):
        return self.left == 0

    def result(self):
        return [f"ran {name}" for name in self.names]


class TickingPool:
    """Time passes in ticks, for all of its calls in flight at once: a call is back when its slowest
    item's ticks have passed. `wait` ticks until enough calls are back, or once with a timeout.
    Logs ("sent"/"back", names) in order."""

    def __init__(self, events):
        self.events, self.inflight = events, []

    def submit(self, method, items, affinity=None):
        assert method == "run"
        call = TickingCall(items)
        self.inflight.append(call)
        self.events.append(("sent", call.names))
        return call

    def wait(self, calls, num_returns=None, timeout=None):
        num_returns = len(calls) if num_returns is None else num_returns
        while sum(c.done for c in calls) < num_returns:
            for call in list(self.inflight):
                call.left -= 1
                if call.done:
                    self.inflight.remove(call)
                    self.events.append(("back", call.names))
            if timeout is not None:
                break
        return [c for c in calls if c.done], [c for c in calls if not c.done]


class LoggingCoder:
    def __init__(self, events):
        self.events = events

    def propose(self, tasks):
        self.events.append(("proposed", list(tasks)))
        return [f"{task} edit" for task in tasks]


def candidate_loop(name, waits, rounds=2):
    """Propose, then run the candidate, `rounds` times (a rollout's shape)."""
    ran = []
    for k in range(rounds):
        edit = yield Propose([f"{name}{k}"])
        ran += (yield Run([(edit[0], waits)]))
    return ran


def drive_candidates(cohorts, waits=(4, 1), max_active=None):
    events = []
    names = "abcdefgh"[:len(waits)]
    jobs = [(name, candidate_loop(name, w)) for name, w in zip(names, waits)]
    pools = {Run: TickingPool(events), Propose: LocalPool(LoggingCoder(events))}
    results = {u: r for u, r, _ in drive(jobs, pools, max_active=max_active or len(jobs), cohorts=cohorts)}
    return results, events


def test_asynchronous_strategies_move_on_as_soon_as_their_call_is_back():
    results, events = drive_candidates(cohorts=None)
    assert results == {"a": ["ran a0 edit", "ran a1 edit"], "b": ["ran b0 edit", "ran b1 edit"]}
    assert ("sent", ["a0 edit"]) in events and ("sent", ["b0 edit"]) in events  # one call per strategy
    a_back = events.index(("back", ["a0 edit"]))
    # b's next proposal and run went out (and came back) while a's first run was still going
    assert events.index(("proposed", ["b1"])) < a_back
    assert events.index(("back", ["b1 edit"])) < a_back


def test_lockstep_strategies_wait_for_the_round():
    results, events = drive_candidates(cohorts=1)
    assert results == drive_candidates(cohorts=None)[0]  # the same answers either way
    assert ("sent", ["a0 edit", "b0 edit"]) in events  # one merged call per round
    assert events.index(("proposed", ["a1", "b1"])) > events.index(("back", ["a0 edit", "b0 edit"]))


def test_cohorts_merge_their_own_calls_and_move_on_alone():
    """Slots 0 and 2 (a, c) are one cohort, 1 and 3 (b, d) the other."""
    results, events = drive_candidates(cohorts=2, waits=(4, 1, 4, 1))
    assert results == drive_candidates(cohorts=None, waits=(4, 1, 4, 1))[0]
    assert ("sent", ["a0 edit", "c0 edit"]) in events and ("sent", ["b0 edit", "d0 edit"]) in events
    assert events.index(("back", ["b1 edit", "d1 edit"])) < events.index(("back", ["a0 edit", "c0 edit"]))


def test_a_new_job_joins_the_cohort_that_freed_its_slot():
    """Four at a time in two cohorts, a fast one and a slow one: the jobs that replace the fast
    cohort's go out together, so every call carries a whole cohort (two runs)."""
    waits = (4, 1, 4, 1, 1, 1, 4, 4)
    results, events = drive_candidates(cohorts=2, waits=waits, max_active=4)
    assert results == drive_candidates(cohorts=None, waits=waits)[0]
    sent = [names for what, names in events if what == "sent"]
    assert len(sent) == 8 and all(len(names) == 2 for names in sent)


@pytest.mark.parametrize("max_active", [1, 3])
@pytest.mark.parametrize("cohorts", [None, 2])
def test_search_in_cohorts_matches_lockstep(max_active, cohorts):
    units = [{"problem": q, "method": m} for m in sorted(STRATEGIES) for q in QUESTIONS[:2]]

    def results(cohorts):
        jobs = ((u, strategy(u["method"], u["problem"])) for u in units)
        pools = {Generate: LocalPool(SeededPolicy("\n")), Score: LocalPool(RuleScorer(hashed_score))}
        return {(u["problem"], u["method"]): r.to_dict() for u, r, _ in drive(jobs, pools, max_active, cohorts=cohorts)}

    assert results(cohorts) == results(1)


class KeyedPool(LocalPool):
    """A local pool that notes each call's affinity, to see where a cohort's calls were sent."""

    def __init__(self, model, sent):
        super().__init__(model)
        self.sent = sent

    def submit(self, method, items, affinity=None):
        self.sent.append(affinity)
        return super().submit(method, items, affinity)


PROBLEMS = [f"q{i}" for i in range(6)]


def beam_in_cohorts(**how):
    """Each problem's beam search through the driver: its results and the affinity of each call."""
    units = [{"problem": q, "method": "beam"} for q in PROBLEMS]
    jobs = ((u, strategy(u["method"], u["problem"])) for u in units)
    sent = []
    pools = {Generate: KeyedPool(SeededPolicy("\n"), sent), Score: KeyedPool(RuleScorer(hashed_score), sent)}
    found = {u["problem"]: r.to_dict() for u, r, _ in drive(jobs, pools, 6, affinity_key=lambda u: u["problem"], **how)}
    return found, sent


def test_cohort_affinity_sends_each_cohort_whole_under_its_own_key():
    """Three cohorts of two: every call carries its cohort's one key (one replica), not a key per
    request; the answers are lockstep's."""
    found, sent = beam_in_cohorts(cohorts=3, cohort_affinity=True)
    lockstep, lockstep_sent = beam_in_cohorts(cohorts=1)
    assert found == lockstep
    assert set(sent) == {("cohort", 0), ("cohort", 1), ("cohort", 2)}
    assert all(isinstance(keys, list) and set(keys) <= set(PROBLEMS) for keys in lockstep_sent)
