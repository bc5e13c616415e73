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


# ---- the rule's own bounds ----

@pytest.mark.parametrize("kwargs, ok", [
    ({"r": 1, "cap": 1, "first_round": 1}, True),
    ({"r": 3, "cap": 3}, True),
    ({"r": 0}, False),
    ({"r": 3, "cap": 2}, False),
    ({"first_round": 0}, False),
])
def test_rule_needs_r_at_least_one_cap_at_least_r_and_a_positive_first_round(kwargs, ok):
    if ok:
        PassUntilRule(**kwargs)
    else:
        with pytest.raises(ValueError):
            PassUntilRule(**kwargs)


def test_rule_defaults():
    assert (PassUntilRule().r, PassUntilRule().cap, PassUntilRule().first_round) == (3, 1024, 16)


@pytest.mark.parametrize("state, done", [((3, 10), True), ((2, 99), False), ((2, 100), True), ((0, 100), True),
                                         ((0, 0), False), ((4, 5), True)])
def test_done_at_r_passes_or_the_cap(state, done):
    assert RULE.done(*state) is done


def test_next_round_never_asks_past_the_cap_even_while_doubling():
    rule = PassUntilRule(r=3, cap=50, first_round=16)
    assert rule.next_round(0, 40) == 10  # doubling would ask 40; 10 are left
    assert rule.next_round(0, 8) == 16  # doubling 8 is below the first round
    assert rule.next_round(1, 49) == 1


def test_record_counts_a_round_in_sample_order_from_a_resumed_state():
    assert RULE.record(0, 0, []) == (0, 0)
    assert RULE.record(2, 50, [False, False, True, True]) == (3, 53)
    assert RULE.record(0, 0, [True, False, True]) == (2, 3)


# ---- estimates: errors, the confidence level, the table text ----

@pytest.mark.parametrize("passes, samples", [(3, 2), (1, 99), (0, 101)])
def test_impossible_or_unfinished_counts_are_refused(passes, samples):
    with pytest.raises(ValueError):
        estimate(passes, samples, RULE)


def test_the_confidence_level_sets_both_tails():
    e = estimate(3, 10, RULE, confidence=0.9)
    assert sps.binom.sf(2, 10, e.low) == pytest.approx(0.05, rel=1e-6)
    assert sps.binom.cdf(2, 9, e.high) == pytest.approx(0.05, rel=1e-6)
    c = estimate(2, 100, RULE, confidence=0.8)
    assert sps.binom.cdf(2, 100, c.high) == pytest.approx(0.1, rel=1e-6)
    assert sps.binom.sf(1, 100, c.low) == pytest.approx(0.1, rel=1e-6)


def test_estimate_fields_of_a_censored_and_a_stopped_instance():
    c = estimate(2, 100, RULE)
    assert (c.passes, c.samples, c.censored, c.unbiased) == (2, 100, True, True)
    assert c.p_hat == pytest.approx(0.02) and c.p_mle == pytest.approx(0.02)
    s = estimate(3, 4, RULE)
    assert (s.censored, s.p_hat, s.p_mle) == (False, pytest.approx(2 / 3), pytest.approx(0.75))
    assert s.low < s.p_hat < s.high < 1.0


def test_estimate_text_of_a_censored_and_a_stopped_instance():
    # stopped at K = r = 3: p_hat 1, low = 0.025 ** (1/3) = 0.2924, high 1
    assert estimate(3, 3, RULE).text() == "1 [0.292, 1]"
    # censored 0 of 100: high = 1 - 0.025 ** (1/100) = 0.03622
    assert estimate(0, 100, RULE).text() == "<0.0362 (censored, 0/100)"


def test_estimate_arrays_mixes_stopped_and_censored_instances():
    from orchestrator.passuntil.estimators import estimate_arrays
    a = estimate_arrays([3, 1, 3], [10, 100, 3], RULE)
    assert a["censored"].tolist() == [False, True, False]
    assert a["p_hat"].tolist() == pytest.approx([2 / 9, 0.01, 1.0])
    assert a["p_mle"].tolist() == pytest.approx([0.3, 0.01, 1.0])
    assert a["high"][2] == 1.0 and a["low"][1] == pytest.approx(estimate(1, 100, RULE).low)


def test_task_pass_until_is_the_mean_of_p_hat_with_the_censored_counted():
    from orchestrator.passuntil.estimators import task_pass_until
    t = task_pass_until([estimate(3, 3, RULE), estimate(3, 5, RULE), estimate(0, 100, RULE)], n_boot=200)
    assert t.pu == pytest.approx((1 + 0.5 + 0) / 3)
    assert (t.n_instances, t.n_censored) == (3, 1) and 0.0 <= t.low <= t.pu <= t.high <= 1.0


# ---- sampling: requests, caps, seeds ----

class RecordingRounds(RoundsPolicy):
    def __init__(self, rounds):
        super().__init__(rounds)
        self.requests = []

    def generate(self, requests):
        self.requests += list(requests)
        return super().generate(requests)


def test_pass_until_passes_the_sampling_settings_and_a_new_seed_per_round():
    policy = RecordingRounds([[False] * 4, [True, True, False, False]])
    rule = PassUntilRule(r=2, cap=100, first_round=4)
    out = run(pass_until("q?", rule, 7, lambda t, tr: t == "pass", fixed_k=0, temperature=0.3, top_p=0.6,
                         max_tokens=12), policy, None)
    assert [(r.prompt, r.n, r.temperature, r.top_p, r.max_tokens) for r in policy.requests] == [
        ("q?", 4, 0.3, 0.6, 12), ("q?", 4, 0.3, 0.6, 12)]
    assert policy.requests[0].seed != policy.requests[1].seed
    assert (out["passes"], out["samples"], out["drawn"], out["rounds"], out["fixed_k"]) == (2, 6, 8, 2, 0)
    assert out["policy_generated_tokens"] == 8 and out["policy_prompt_tokens"] == 2


def test_pass_until_defaults_to_the_documented_sampling_settings():
    policy = RecordingRounds([[True] * 16])
    run(pass_until("q", PassUntilRule(r=1, cap=100), 0, lambda t, tr: t == "pass", fixed_k=0), policy, None)
    [r] = policy.requests
    assert (r.temperature, r.top_p, r.max_tokens, r.n) == (0.8, 1.0, 256, 16)


def test_fixed_k_above_the_cap_is_cut_to_the_cap():
    rule = PassUntilRule(r=2, cap=8, first_round=4)
    policy = RecordingRounds([[False] * 7 + [True]])
    out = run(pass_until("q", rule, 0, lambda t, tr: t == "pass", fixed_k=20), policy, None)
    assert out["fixed_k"] == 8 and [r.n for r in policy.requests] == [8]
    assert (out["passes"], out["samples"], out["fixed_k_passes"], out["rounds"]) == (1, 8, 1, 1)


# ---- the task law on exact lines ----

from orchestrator.passuntil.fit import NoTaskLine, loglog  # noqa: E402

E = np.exp([1.0, 2.0, 3.0, 4.0])  # params whose natural logs are 1, 2, 3, 4


def test_loglog_is_nan_outside_the_open_unit_interval():
    y = loglog([0.0, 1.0, 0.5, 1.5, -0.1])
    assert np.isnan(y[[0, 1, 3, 4]]).all() and y[2] == pytest.approx(np.log(np.log(2)))
    assert pu_from_loglog(0.0) == pytest.approx(np.exp(-1))


def exact_pu(ys):
    return pu_from_loglog(np.asarray(ys, dtype=float))[:, None]  # one instance per model


def test_task_law_on_an_exact_line_predicts_the_held_out_model():
    # y = 1 - 0.5 x on x = 1, 2, 3; the held-out (last) model at x = 4 has y = -1.
    fit = fit_task_law(E, exact_pu([0.5, 0.0, -0.5, -1.0]), n_boot=20)
    assert (fit.slope, fit.intercept) == pytest.approx((-0.5, 1.0))
    assert fit.train_params == pytest.approx(list(E[:3])) and fit.excluded == []
    assert fit.train_pu == pytest.approx(list(pu_from_loglog(np.array([0.5, 0.0, -0.5]))))
    p = fit.prediction
    assert (p.params, p.predicted, p.measured) == pytest.approx((E[3], np.exp(-np.exp(-1.0)), np.exp(-np.exp(-1.0))))
    assert p.relative_deviation == pytest.approx(0.0, abs=1e-12)
    assert fit.prediction_interval == pytest.approx((p.predicted, p.predicted))  # no residual spread
    assert fit.n_boot_valid == 20 and fit.slope_ci == pytest.approx((-0.5, -0.5))


def test_task_law_holds_out_the_model_it_is_told():
    fit = fit_task_law(E, exact_pu([0.5, 0.0, -0.5, -1.0]), held_out=0, n_boot=10)
    assert fit.train_params == pytest.approx(list(E[1:]))
    assert fit.prediction.params == pytest.approx(E[0]) and fit.prediction.predicted == pytest.approx(np.exp(-np.exp(0.5)))


def test_relative_deviation_is_relative_to_the_measurement():
    # the line predicts exp(-exp(-1)) = 0.6922 for the last model, which measured 0.5
    fit = fit_task_law(E, np.vstack([exact_pu([0.5, 0.0, -0.5]), [[0.5]]]), n_boot=10)
    assert fit.prediction.measured == 0.5
    assert fit.prediction.relative_deviation == pytest.approx((np.exp(-np.exp(-1.0)) - 0.5) / 0.5)


def test_relative_deviation_is_nan_when_the_measurement_is_zero():
    fit = fit_task_law(E, np.vstack([exact_pu([0.5, 0.0, -0.5]), [[0.0]]]), n_boot=10)
    assert np.isnan(fit.prediction.relative_deviation)


def test_prediction_interval_uses_the_residual_spread_and_n_minus_two_degrees_of_freedom():
    # y = 0, 0.1, 0 on x = 1, 2, 3: the line is flat at 1/30, residuals -1/30, 2/30, -1/30 (s^2 = 0.02/3 / 1)
    fit = fit_task_law(E, np.vstack([exact_pu([0.0, 0.1, 0.0]), [[0.5]]]), n_boot=10)
    s = np.sqrt((1 + 4 + 1) / 900 / (3 - 2))
    half = sps.t.ppf(0.975, 1) * s * np.sqrt(1 + 1 / 3 + (4 - 2) ** 2 / 2)
    y0 = 1 / 30
    assert fit.slope == pytest.approx(0.0, abs=1e-12) and fit.intercept == pytest.approx(y0)
    assert fit.prediction_interval == pytest.approx((np.exp(-np.exp(y0 + half)), np.exp(-np.exp(y0 - half))))


def test_two_models_on_the_line_give_no_prediction_interval():
    fit = fit_task_law(E[:3], exact_pu([0.5, 0.0, -0.5]), n_boot=10)
    assert fit.prediction_interval is None and fit.prediction.predicted == pytest.approx(np.exp(-np.exp(-0.5)))


def test_models_at_pu_zero_or_one_leave_the_line_and_too_few_left_is_no_line():
    p = np.vstack([[[1.0]], exact_pu([0.0, -0.5]), [[0.0]], exact_pu([-1.5])])
    fit = fit_task_law(np.exp([1.0, 2.0, 3.0, 4.0, 5.0]), p, n_boot=10)
    assert fit.excluded == [0, 3] and fit.train_params == pytest.approx(list(np.exp([2.0, 3.0])))
    assert (fit.slope, fit.intercept) == pytest.approx((-0.5, 1.0))
    with pytest.raises(NoTaskLine):
        fit_task_law(E, np.vstack([[[1.0]], [[0.0]], exact_pu([0.0, -1.0])]), n_boot=10)


def test_a_fit_needs_three_models():
    with pytest.raises(ValueError, match="at least 3"):
        fit_task_law(E[:2], exact_pu([0.5, 0.0]))


@pytest.mark.parametrize("samples", [4, 5, 10, 100])
def test_stopped_interval_inverts_both_tails_for_every_k_above_r(samples):
    """Stopped at K or better <=> Bin(K, p) >= r; at K or worse <=> Bin(K-1, p) <= r-1, each tail
    at 2.5% (K = r + 1 included, where the upper shape K - r is 1)."""
    e = estimate(3, samples, RULE)
    assert sps.binom.sf(2, samples, e.low) == pytest.approx(0.025, rel=1e-6)
    assert sps.binom.cdf(2, samples - 1, e.high) == pytest.approx(0.025, rel=1e-6)


@pytest.mark.parametrize("passes, samples", [([3, 4], [10, 50]), ([3, 3], [10, 2]), ([3, 1], [10, 101]),
                                             ([3, 1], [10, 50])])
def test_estimate_arrays_refuses_a_batch_with_one_bad_instance(passes, samples):
    from orchestrator.passuntil.estimators import estimate_arrays
    with pytest.raises(ValueError):
        estimate_arrays(passes, samples, RULE)


def test_measured_interval_resamples_the_held_out_models_instances():
    # training models: two identical instances each (their bootstrap is a point); the held-out
    # model's instances 0.2 and 0.6 resample to means 0.2, 0.4, 0.6 (chances 1/4, 1/2, 1/4)
    train = np.repeat(exact_pu([0.5, 0.0, -0.5]), 2, axis=1)
    fit = fit_task_law(E, np.vstack([train, [[0.2, 0.6]]]), n_boot=400)
    p = fit.prediction
    assert p.measured == pytest.approx(0.4) and p.measured_ci == pytest.approx((0.2, 0.6))
    assert p.predicted_ci == pytest.approx((p.predicted, p.predicted))
    assert fit.intercept_ci == pytest.approx((1.0, 1.0)) and fit.n_boot_valid == 400


def test_instance_likelihood_gradient_matches_finite_differences():
    from scipy import optimize
    from orchestrator.passuntil.fit import _instance_nll
    xc = np.array([-1.0, 0.0, 1.0])
    k = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 3.0]])
    n = np.array([[10.0, 10.0], [10.0, 10.0], [5.0, 3.0]])
    args = (xc, k, n, (0.2, -0.5), 0.3)
    for theta in (np.array([0.1, -0.3, -0.4, 0.2]), np.array([1.0, 0.5, -1.0, -0.7])):
        grad = _instance_nll(theta, *args)[1]
        numeric = optimize.approx_fprime(theta, lambda t: _instance_nll(t, *args)[0], 1e-7)
        assert grad == pytest.approx(numeric, rel=1e-4, abs=1e-5)


def test_instance_likelihood_on_a_hand_worked_point():
    from orchestrator.passuntil.fit import _instance_nll
    # one model, one instance, eta = 0: -log p = 1, p = 1/e; 1 pass in 3 draws; prior at theta
    nll, _ = _instance_nll(np.array([0.0, 0.0]), np.array([0.0]), np.array([[1.0]]), np.array([[3.0]]), (0.0, 0.0), 1.0)
    assert nll == pytest.approx(1.0 - 2 * np.log(1 - np.exp(-1)))
    # the pull: 0.5 * weight * ((a - a0)^2 + (b - b0)^2) on top
    pulled, _ = _instance_nll(np.array([0.0, 0.0]), np.array([0.0]), np.array([[1.0]]), np.array([[3.0]]), (1.0, 2.0), 0.5)
    assert pulled == pytest.approx(nll + 0.5 * 0.5 * 5)


def test_instances_never_passing_on_the_training_models_are_counted_whatever_the_held_out_says():
    params = np.array([1e5, 1e6, 1e7])
    p = np.array([[0.1, 0.0], [0.3, 0.0], [0.5, 0.4]])  # instance 1 passes only on the held-out model
    n = np.full_like(p, 100.0)
    k = np.round(p * n)
    fit = fit_instance_law(params, k, n, k / n, n_boot=20)
    assert fit.n_never_passed == 1 and len(fit.slopes) == len(fit.intercepts) == 2
    assert fit.prediction.measured == pytest.approx(0.45) and fit.prediction.params == 1e7
