"""PassUntil estimators and scaling-law fits on simulated Bernoulli instances with known p."""
import numpy as np
import pytest

from orchestrator.passuntil.estimators import (
    PassUntilRule, estimate, estimate_arrays, task_pass_until,
)
from orchestrator.passuntil.fit import fit_instance_law, fit_task_law


def simulate(p, rule, rng):
    """PassUntil counts for independent instances with pass rates p (any shape), vectorised.

    The pass times of an instance are cumulative sums of geometric gaps; it stops at the r-th
    pass, or is censored with the passes that came within the cap.
    """
    p = np.asarray(p, dtype=float)
    times = rng.geometric(p[..., None], size=p.shape + (rule.r,)).cumsum(axis=-1)
    within = (times <= rule.cap).sum(axis=-1)
    stopped = within >= rule.r
    return np.where(stopped, rule.r, within), np.where(stopped, times[..., -1], rule.cap)


# --- sampling rule ---------------------------------------------------------------------------

def test_rule_counts_in_order_and_stops_at_rth_pass():
    rule = PassUntilRule(r=2, cap=10, first_round=4)
    # The round overshoots: the draws after the 2nd pass are not counted.
    assert rule.record(0, 0, [False, True, False, True, True, False]) == (2, 4)
    assert rule.done(2, 4) and rule.next_round(2, 4) == 0
    # The cap truncates a round too.
    assert rule.record(1, 8, [False, False, True]) == (1, 10)
    assert rule.done(1, 10) and rule.next_round(1, 10) == 0


def test_rule_round_sizes_double_then_follow_pass_rate_and_respect_cap():
    rule = PassUntilRule(r=3, cap=100, first_round=8)
    assert rule.next_round(0, 0) == 8
    assert rule.next_round(0, 8) == 8  # doubles the draws so far
    assert rule.next_round(0, 64) == 36  # ... but never past the cap
    assert rule.next_round(1, 40) == 60  # 2 more passes at 1/40 want 80: the cap leaves 60
    assert rule.next_round(2, 10) == 8  # 1 more pass at 1/5 wants 5: first_round is the floor


def test_sequential_rounds_reproduce_the_one_by_one_plan():
    """Batched rounds count exactly the prefix a draw-by-draw PassUntil would have used."""
    rng = np.random.default_rng(0)
    rule = PassUntilRule(r=3, cap=500, first_round=7)
    for p in (0.01, 0.2):
        stream = rng.random(2000) < p
        passes = samples = drawn = 0
        while (want := rule.next_round(passes, samples)):
            passes, samples = rule.record(passes, samples, stream[drawn:drawn + want])
            drawn += want
        times = np.flatnonzero(stream) + 1
        expected = (3, times[2]) if len(times) >= 3 and times[2] <= 500 else ((times <= 500).sum(), 500)
        assert (passes, samples) == expected


# --- estimator and interval ------------------------------------------------------------------

@pytest.mark.parametrize("r,cap", [(2, 10**6), (3, 10**6), (3, 60), (5, 300)])
@pytest.mark.parametrize("p", [0.004, 0.05, 0.4])
def test_estimator_unbiased_and_interval_covers(r, cap, p):
    rule = PassUntilRule(r=r, cap=cap)
    rng = np.random.default_rng(1000 * r + cap % 997)
    runs = 8000
    k, n = simulate(np.full(runs, p), rule, rng)
    e = estimate_arrays(k, n, rule)
    # Unbiased within 4 Monte Carlo standard errors, censoring included.
    se = e["p_hat"].std() / np.sqrt(runs)
    assert abs(e["p_hat"].mean() - p) < 4 * se + 1e-12
    # Exact interval: coverage at least nominal (up to Monte Carlo error), and not vacuous.
    coverage = ((e["low"] <= p) & (p <= e["high"])).mean()
    assert 0.94 <= coverage <= 0.995


def test_r_over_k_is_biased_where_p_hat_is_not():
    rule = PassUntilRule(r=2, cap=10**6)
    k, n = simulate(np.full(20000, 0.02), rule, np.random.default_rng(3))
    e = estimate_arrays(k, n, rule)
    assert e["p_mle"].mean() > 1.5 * 0.02  # r/K overestimates small pass rates
    assert abs(e["p_hat"].mean() / 0.02 - 1) < 0.05


def test_censored_instance_reports_upper_bound_not_zero():
    rule = PassUntilRule(r=3, cap=200)
    e = estimate(0, 200, rule)
    assert e.censored and e.p_hat == 0.0 and e.low == 0.0
    # Clopper-Pearson upper end for 0 of 200 at 95%: 1 - 0.025 ** (1/200).
    assert e.high == pytest.approx(1 - 0.025 ** (1 / 200), rel=1e-9)
    assert e.text().startswith("<0.0183 (censored")
    e1 = estimate(2, 200, rule)
    assert e1.censored and e1.p_hat == pytest.approx(2 / 200) and 0 < e1.low < 0.01 < e1.high
    stopped = estimate(3, 41, rule)
    assert not stopped.censored and stopped.p_hat == pytest.approx(2 / 40)
    assert stopped.p_mle == pytest.approx(3 / 41)


def test_unfinished_instance_is_rejected():
    with pytest.raises(ValueError):
        estimate(1, 50, PassUntilRule(r=3, cap=200))


def test_r1_falls_back_to_mle_and_says_so():
    e = estimate(1, 20, PassUntilRule(r=1, cap=100))
    assert e.p_hat == pytest.approx(1 / 20) and not e.unbiased


def test_task_pu_mean_interval_and_censored_count():
    rule = PassUntilRule(r=3, cap=400)
    rng = np.random.default_rng(5)
    p = rng.uniform(0.0, 0.2, size=300)
    k, n = simulate(p, rule, rng)
    estimates = [estimate(a, b, rule) for a, b in zip(k, n)]
    t = task_pass_until(estimates)
    assert t.n_instances == 300 and t.n_censored == sum(e.censored for e in estimates) > 0
    assert t.low < p.mean() < t.high and t.high - t.low < 0.03


# --- scaling-law fits ------------------------------------------------------------------------

N = np.array([1e5, 3e5, 1e6, 3e6, 1e7])
ALPHA, C = 0.5, 2214.0  # PU from about 0.001 at the smallest model to 0.5 at the largest


def test_task_law_recovers_slope_intercept_and_predicts_held_out_model():
    true = np.exp(-C * N ** -ALPHA)
    rule = PassUntilRule(r=4, cap=20000)
    k, n = simulate(np.repeat(true[:, None], 300, axis=1), rule, np.random.default_rng(7))
    fit = fit_task_law(N, estimate_arrays(k, n, rule)["p_hat"])
    assert fit.slope == pytest.approx(-ALPHA, abs=0.03)
    assert fit.intercept == pytest.approx(np.log(C), abs=0.3)
    pred = fit.prediction
    assert pred.params == 1e7 and pred.predicted == pytest.approx(true[-1], rel=0.08)
    assert pred.measured == pytest.approx(true[-1], rel=0.08)
    assert pred.relative_deviation == pytest.approx(pred.predicted / pred.measured - 1)
    assert abs(pred.relative_deviation) < 0.1
    assert fit.n_boot_valid == 2000 and fit.excluded == []


def test_task_law_intervals_cover_near_nominal():
    true = np.exp(-C * N ** -ALPHA)
    rule = PassUntilRule(r=4, cap=20000)
    runs, hits = 40, np.zeros(4)
    for seed in range(runs):
        k, n = simulate(np.repeat(true[:, None], 300, axis=1), rule, np.random.default_rng(seed))
        fit = fit_task_law(N, estimate_arrays(k, n, rule)["p_hat"], n_boot=300, seed=seed)
        hits += [fit.slope_ci[0] < -ALPHA < fit.slope_ci[1],
                 fit.prediction.predicted_ci[0] < true[-1] < fit.prediction.predicted_ci[1],
                 fit.prediction.measured_ci[0] < true[-1] < fit.prediction.measured_ci[1],
                 fit.prediction_interval[0] < true[-1] < fit.prediction_interval[1]]
    assert np.all(hits / runs >= 0.85), hits / runs


def test_task_law_leaves_out_a_model_with_zero_pu():
    rule = PassUntilRule(r=2, cap=50)
    p = np.exp(-C * N ** -ALPHA)
    p[0] = 1e-9  # the smallest model never passes within the cap
    k, n = simulate(np.repeat(p[:, None], 200, axis=1), rule, np.random.default_rng(8))
    fit = fit_task_law(N, estimate_arrays(k, n, rule)["p_hat"])
    assert fit.excluded == [0] and fit.train_params == [3e5, 1e6, 3e6]


def test_instance_law_predicts_heterogeneous_task():
    """Every instance follows its own Eq. (3) law; the task mean is no longer of that form."""
    rng = np.random.default_rng(9)
    m = 300
    c = C * np.exp(rng.normal(0, 0.5, m))
    alpha = ALPHA * (1 + 0.2 * rng.uniform(-1, 1, m))
    p = np.exp(-c[None, :] * N[:, None] ** -alpha[None, :])
    rule = PassUntilRule(r=3, cap=2000)
    k, n = simulate(p, rule, rng)
    p_hat = estimate_arrays(k, n, rule)["p_hat"]
    fit = fit_instance_law(N, k, n, p_hat)
    true_task = p[-1].mean()
    assert fit.prediction.predicted == pytest.approx(true_task, rel=0.08)
    assert fit.prediction.predicted_ci[0] < true_task < fit.prediction.predicted_ci[1]
    assert np.median(fit.slopes) == pytest.approx(-ALPHA, abs=0.05)
    assert len(fit.slopes) == m


def test_instance_law_keeps_never_passing_instances_finite_and_near_zero():
    rule = PassUntilRule(r=3, cap=500)
    rng = np.random.default_rng(10)
    p = np.repeat(np.exp(-C * N ** -ALPHA)[:, None], 50, axis=1)
    p[:, :5] = 1e-12  # five instances no model ever solves
    k, n = simulate(p, rule, rng)
    fit = fit_instance_law(N, k, n, estimate_arrays(k, n, rule)["p_hat"])
    assert fit.n_never_passed == 5
    assert np.all(np.isfinite(fit.slopes)) and np.all(np.isfinite(fit.intercepts))
    x = np.log(1e7)
    never = np.exp(-np.exp(np.array(fit.intercepts[:5]) + np.array(fit.slopes[:5]) * x))
    assert np.all(never < 1e-3)
