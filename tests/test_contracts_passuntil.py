"""Contracts of PassUntil: the sampling rule and estimators on hand-worked cases and boundaries,
the prediction interval's coverage (tight enough to catch wrong degrees of freedom), and that
a truncated sample reaches the grader as truncated."""
import numpy as np
import pytest
from scipy import stats as sps

from orchestrator.passuntil.estimators import PassUntilRule, estimate
from orchestrator.passuntil.fit import fit_instance_law, fit_task_law, pu_from_loglog
from orchestrator.passuntil.sampling import pass_until
from orchestrator.protocols import GenerateResult, Sample
from orchestrator.search import run

RULE = PassUntilRule(r=3, cap=100, first_round=16)


@pytest.mark.parametrize("state, expected", [
    ((0, 0), 16), ((0, 16), 16), ((0, 64), 36),  # doubling while nothing passed, capped
    ((1, 16), 32), ((2, 40), 20),  # (r - passes) x samples / passes
    ((2, 95), 5), ((3, 20), 0), ((1, 100), 0),
])
def test_next_round_on_hand_worked_states(state, expected):
    assert RULE.next_round(*state) == expected


def test_record_counts_to_the_rth_pass_or_the_cap_and_no_further():
    assert RULE.record(1, 10, [False, True, True, True, True]) == (3, 13)
    assert RULE.record(0, 98, [True, True, True]) == (2, 100)
    assert RULE.record(3, 13, [True]) == (3, 13)


def test_stopped_instance_estimate_and_exact_interval():
    e = estimate(3, 10, RULE)
    assert not e.censored and e.unbiased
    assert e.p_hat == pytest.approx(2 / 9) and e.p_mle == pytest.approx(0.3)
    # Stopped at K=10 or better <=> Bin(10, p) >= 3; at K or worse <=> Bin(9, p) <= 2.
    assert sps.binom.sf(2, 10, e.low) == pytest.approx(0.025, rel=1e-6)
    assert sps.binom.cdf(2, 9, e.high) == pytest.approx(0.025, rel=1e-6)


def test_stopped_at_the_rth_draw_has_upper_end_one_and_stopping_at_the_cap_is_not_censored():
    assert estimate(3, 3, RULE).high == 1.0 and estimate(3, 3, RULE).p_hat == 1.0
    at_cap = estimate(3, 100, RULE)
    assert not at_cap.censored and at_cap.p_hat == pytest.approx(2 / 99)


def test_censored_instances_report_an_upper_bound():
    e = estimate(1, 100, RULE)
    assert e.censored and e.p_hat == pytest.approx(0.01)
    assert sps.binom.cdf(1, 100, e.high) == pytest.approx(0.025, rel=1e-6)
    assert sps.binom.sf(0, 100, e.low) == pytest.approx(0.025, rel=1e-6)
    never = estimate(0, 100, RULE)
    assert never.low == 0.0 and never.p_hat == 0.0 and never.text().startswith("<")
    assert never.high == pytest.approx(1 - 0.025 ** (1 / 100))


@pytest.mark.parametrize("passes, samples", [(2, 99), (4, 50), (3, 101), (0, 0)])
def test_unfinished_or_impossible_states_are_refused(passes, samples):
    with pytest.raises(ValueError):
        estimate(passes, samples, RULE)


def test_r1_reads_one_over_k_and_says_it_is_biased():
    e = estimate(1, 8, PassUntilRule(r=1, cap=100))
    assert e.p_hat == pytest.approx(1 / 8) and not e.unbiased


def test_prediction_interval_covers_a_new_model_at_nominal():
    # The regression model holds exactly on the log(-log PU) axis: 4 training models, so the
    # interval's t quantile has 2 degrees of freedom; 3 would cover about 91%, 1 about 99%.
    params = np.array([1e5, 3e5, 1e6, 3e6, 1e7])
    x = np.log(params)
    rng = np.random.default_rng(11)
    trials, hits = 3000, 0
    for _ in range(trials):
        y = 2.0 - 0.3 * x + rng.normal(0, 0.2, size=len(x))
        fit = fit_task_law(params, pu_from_loglog(y)[:, None], n_boot=2, seed=0)
        low, high = fit.prediction_interval
        hits += low < pu_from_loglog(y[-1]) < high
    assert 0.935 <= hits / trials <= 0.965, hits / trials


class TruncatingPolicy:
    """Every other sample is cut at max_tokens."""

    def generate(self, requests):
        return [GenerateResult([Sample("x", "length" if i % 2 else "eos", 1) for i in range(r.n)],
                               prompt_tokens=1, generated_tokens=r.n) for r in requests]


def test_pass_until_tells_the_grader_which_samples_were_truncated():
    seen = []

    def grade(text, truncated):
        seen.append(truncated)
        return not truncated

    out = run(pass_until("q", PassUntilRule(r=2, cap=8, first_round=4), 0, grade, fixed_k=4), TruncatingPolicy(), None)
    assert seen[:4] == [False, True, False, True]
    assert (out["passes"], out["samples"], out["fixed_k_passes"]) == (2, 3, 2)


def test_each_instance_line_is_the_one_its_prediction_uses():
    rng = np.random.default_rng(3)
    params = np.array([1e5, 3e5, 1e6, 3e6])
    p = np.exp(-2.0 * params[:, None] ** -(0.3 + 0.1 * rng.uniform(size=20))[None, :])
    n = np.full_like(p, 200.0)
    k = np.round(p * n)
    fit = fit_instance_law(params, k, n, k / n)
    lines = np.array(fit.intercepts) + np.array(fit.slopes) * np.log(params[-1])
    assert pu_from_loglog(lines).mean() == pytest.approx(fit.prediction.predicted, rel=1e-9)


@pytest.mark.parametrize("rule, state, expected", [
    (RULE, (2, 33), 17), (RULE, (2, 41), 21),  # 16.5 and 20.5 draws projected: rounded up
    (RULE, (2, 83), 17),  # 41.5 projected, but only 17 left before the cap
    (PassUntilRule(r=3, cap=1000, first_round=1), (2, 3), 2),  # 1.5 -> 2
    (PassUntilRule(r=3, cap=1000, first_round=1), (2, 5), 3),  # 2.5 -> 3
    (PassUntilRule(r=3, cap=1000, first_round=1), (1, 3), 6),  # exact: no rounding
])
def test_next_round_rounds_the_projected_draws_up(rule, state, expected):
    """Once an instance has passed, the round asks for ceil((r - passes) x samples / passes)
    draws (never fewer than the projection says the remaining passes need), within the bounds."""
    assert rule.next_round(*state) == expected


class RoundsPolicy:
    """The i-th call's samples pass or fail as `rounds[i]` says (one request per call)."""

    def __init__(self, rounds):
        self.rounds, self.calls = rounds, 0

    def generate(self, requests):
        [request] = requests
        outcomes = self.rounds[self.calls]
        assert request.n == len(outcomes)
        self.calls += 1
        return [GenerateResult([Sample("pass" if ok else "fail", "eos", 1) for ok in outcomes],
                               prompt_tokens=1, generated_tokens=request.n)]


@pytest.mark.parametrize("fixed_k, rounds, expected", [
    # Round 1 draws the first 4 (fixed-K); all fail; round 2 passes twice: PU (2, 6), fixed-K 0 of 4.
    (4, [[False] * 4, [True] * 4], (2, 6, 0, 8)),
    # One pass among the first 4, then the 5th draw passes: fixed-K 1 of 4, not 1 + round 2's.
    (4, [[False, True, False, False], [True] * 4], (2, 5, 1, 8)),
    # fixed_k above first_round: round 1 draws all 6 fixed-K samples.
    (6, [[False, False, False, False, False, True], [True] * 6], (2, 7, 1, 12)),
])
def test_fixed_k_counts_only_the_first_fixed_k_draws(fixed_k, rounds, expected):
    """The fixed-K evaluation is the first `fixed_k` draws of the instance, whatever later
    rounds (drawn to reach r passes) return."""
    rule = PassUntilRule(r=2, cap=100, first_round=4)
    grade = lambda text, truncated: text == "pass"  # noqa: E731
    out = run(pass_until("q", rule, 0, grade, fixed_k=fixed_k), RoundsPolicy(rounds), None)
    assert (out["passes"], out["samples"], out["fixed_k_passes"], out["drawn"]) == expected
    assert out["fixed_k"] == fixed_k and out["rounds"] == 2
