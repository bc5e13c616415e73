"""PassUntil sampling driven like a search: exact counts, fixed-K kept, batching-independent."""
import random

from orchestrator.passuntil.estimators import PassUntilRule
from orchestrator.passuntil.sampling import pass_until
from orchestrator.protocols import GenerateResult, Sample
from orchestrator.driver import drive
from orchestrator.protocols import Generate
from orchestrator.search import run
from test_driver import InlinePool


class CoinPolicy:
    """Sample i of a request passes with probability p, from (prompt, seed, i) alone."""

    def __init__(self, p):
        self.p, self.calls = p, []

    def generate(self, requests):
        self.calls.append(len(requests))
        out = []
        for r in requests:
            texts = ["pass" if random.Random(f"{r.prompt}|{r.seed}|{i}").random() < self.p[r.prompt] else "fail"
                     for i in range(r.n)]
            out.append(GenerateResult([Sample(t, "eos", 1) for t in texts], prompt_tokens=1, generated_tokens=r.n))
        return out


def grade(text, truncated):
    return text == "pass"


def test_stops_at_r_passes_or_cap_and_keeps_fixed_k():
    rule = PassUntilRule(r=3, cap=200, first_round=8)
    policy = CoinPolicy({"easy": 0.5, "never": 0.0})
    easy = run(pass_until("easy", rule, 0, grade, fixed_k=16), policy, None)
    assert easy["passes"] == 3 and 3 <= easy["samples"] <= 200
    assert easy["drawn"] >= 16 and 0 < easy["fixed_k_passes"] <= 16
    never = run(pass_until("never", rule, 0, grade, fixed_k=16), policy, None)
    assert never["passes"] == 0 and never["samples"] == 200 and never["drawn"] == 200
    assert never["policy_generated_tokens"] == 200


def test_batched_across_instances_equals_alone():
    rule = PassUntilRule(r=2, cap=300, first_round=8)
    p = {f"q{i}": 0.02 * (i + 1) for i in range(6)}
    alone = {q: run(pass_until(q, rule, 1, grade, fixed_k=8), CoinPolicy(p), None) for q in p}
    policy = CoinPolicy(p)
    jobs = (({"problem": q}, pass_until(q, rule, 1, grade, fixed_k=8)) for q in p)
    pools = {Generate: InlinePool(policy, "generate")}
    together = {u["problem"]: res for u, res, _ in drive(jobs, pools, max_active=6, affinity_key=lambda u: u["problem"])}
    assert together == alone
    assert len(policy.calls) < sum(r["rounds"] for r in alone.values())
