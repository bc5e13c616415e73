"""Task scaling law of PassUntil across a model series, fitted on all but one model, predicting it.

Hu et al. (2023), arXiv 2310.03262. Their task scaling law, Eq. (3), is
    PU(N) = exp(-c N^(-alpha)),   i.e.   log(-log PU(N)) = log c - alpha log N,
with N the non-embedding parameter count: a straight line on log(-log PU) against log N (their
Fig. 1 inset). Here the line is `intercept + slope * log N` (natural logs), so c = exp(intercept)
and alpha = -slope.

Two fits, both on every model but the held-out one (by default the largest), both predicting it:
- Task level (`fit_task_law`): least squares of log(-log PU) on log N over the training models,
  where PU is the mean of the instances' unbiased PassUntil estimates. A model whose PU is 0 or 1
  has no log(-log PU) and is left out of the line (listed in `excluded`).
- Instance level (`fit_instance_law`), the paper's instance-level PassUntil fit: every instance s
  follows its own law PU_s(N) = exp(-c_s N^(-alpha_s)), and the task's prediction is the mean of
  the instances' predictions. Instances that never passed on some models have no
  log(-log p_hat), so each instance's line is fitted by maximum likelihood on its raw counts instead of least squares: whatever the stopping rule, the
  likelihood of a sampled sequence with k passes in n draws is p^k (1-p)^(n-k), so a censored
  "0 of cap" still says how small p must be. A weak quadratic pull (`prior_weight`) towards the
  task-level line keeps the instances whose counts cannot pin a line down (never or always
  passing) finite; it moves well-measured instances by a negligible amount.

Intervals come from a paired bootstrap over instances (every model resampled with the same
problems): it covers the sampling noise of the PassUntil estimates and of the problem set, not a
wrong functional form. With three or more training models the task-level fit also reports the
least-squares prediction interval of the held-out point, mapped to PU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize
from scipy import stats as sps

from orchestrator.stats import bootstrap_means, percentile_interval


def loglog(pu):
    """log(-log PU): the axis on which Eq. (3) is a straight line (nan outside (0, 1))."""
    pu = np.asarray(pu, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(-np.log(pu))
    return np.where((pu > 0) & (pu < 1), y, np.nan)


def pu_from_loglog(y):
    return np.exp(-np.exp(np.asarray(y, dtype=float)))


@dataclass(frozen=True)
class Prediction:
    """The held-out model: predicted vs measured PU, each with a bootstrap interval."""

    params: float
    predicted: float
    predicted_ci: tuple[float, float]
    measured: float
    measured_ci: tuple[float, float]
    relative_deviation: float  # (predicted - measured) / measured


@dataclass(frozen=True)
class TaskLawFit:
    slope: float  # -alpha of Eq. (3)
    intercept: float  # log c of Eq. (3)
    slope_ci: tuple[float, float]
    intercept_ci: tuple[float, float]
    train_params: list[float]  # N of the models on the line
    train_pu: list[float]
    excluded: list[int]  # training models with PU of 0 or 1, left off the line
    prediction: Prediction
    prediction_interval: tuple[float, float] | None  # least-squares, mapped to PU; >= 3 models
    n_boot_valid: int  # bootstrap replicates with 0 < PU < 1 on every model of the line


@dataclass(frozen=True)
class InstanceLawFit:
    slopes: list[float]  # per instance: -alpha_s
    intercepts: list[float]  # per instance: log c_s
    n_never_passed: int  # instances without a pass on any training model: they rest on the pull
    converged: bool  # the optimiser's verdict on the joint likelihood fit
    prediction: Prediction


def _split(params: Sequence[float], held_out: int) -> tuple[np.ndarray, np.ndarray, int]:
    n = len(params)
    held_out = held_out % n
    if n < 3:
        raise ValueError("a held-out prediction needs at least 3 models (2 to fit, 1 to predict)")
    train = np.array([i for i in range(n) if i != held_out])
    return np.log(np.asarray(params, dtype=float)), train, held_out


def _line(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (slope, intercept) of y on x along the last axis."""
    xm = x.mean()
    slope = ((x - xm) * (y - y.mean(axis=-1, keepdims=True))).sum(axis=-1) / ((x - xm) ** 2).sum()
    return slope, y.mean(axis=-1) - slope * xm


class NoTaskLine(ValueError):
    """Fewer than two training models have 0 < PU < 1: no Eq. (3) line can be drawn (a series
    whose small models never pass within the cap, or whose large ones always pass)."""


def _task_line(x: np.ndarray, p: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The training models with 0 < PU < 1, and the Eq. (3) line through their task PU."""
    y = loglog(p.mean(axis=1))
    on_line = train[np.isfinite(y[train])]
    if len(on_line) < 2:
        pu = ", ".join(f"{v:.3g}" for v in p.mean(axis=1)[train])
        raise NoTaskLine(f"fewer than 2 training models with 0 < PU < 1 (training PU: {pu})")
    slope, intercept = _line(x[on_line], y[on_line])
    return on_line, float(slope), float(intercept)


def _prediction(params, pred, pred_reps, measured, meas_reps, confidence) -> Prediction:
    return Prediction(
        params=float(params),
        predicted=float(pred),
        predicted_ci=percentile_interval(pred_reps, confidence),
        measured=float(measured),
        measured_ci=percentile_interval(meas_reps, confidence),
        relative_deviation=float((pred - measured) / measured) if measured > 0 else float("nan"),
    )


def fit_task_law(params: Sequence[float], p_hat, held_out: int = -1, confidence: float = 0.95,
                 n_boot: int = 2000, seed: int = 0) -> TaskLawFit:
    """Eq. (3) on the task PU of every model but `held_out`, predicting that one.

    params: non-embedding parameter count per model; p_hat: (models, instances) unbiased
    per-instance PassUntil estimates, the same instances in the same order for every model.
    """
    x, train, held_out = _split(params, held_out)
    p = np.asarray(p_hat, dtype=float)
    on_line, slope, intercept = _task_line(x, p, train)
    y = loglog(p.mean(axis=1))
    pred = pu_from_loglog(intercept + slope * x[held_out])

    reps = bootstrap_means(p, n_boot, seed)  # (n_boot, models)
    y_reps = loglog(reps[:, on_line])
    valid = np.isfinite(y_reps).all(axis=1)
    slope_reps, intercept_reps = _line(x[on_line], y_reps[valid])
    pred_reps = pu_from_loglog(intercept_reps + slope_reps * x[held_out])

    interval = None
    if len(on_line) >= 3:
        xs, n = x[on_line], len(on_line)
        resid = y[on_line] - (intercept + slope * xs)
        s = np.sqrt((resid ** 2).sum() / (n - 2))
        half = sps.t.ppf(0.5 + confidence / 2, n - 2) * s * np.sqrt(
            1 + 1 / n + (x[held_out] - xs.mean()) ** 2 / ((xs - xs.mean()) ** 2).sum())
        y0 = intercept + slope * x[held_out]
        interval = (float(pu_from_loglog(y0 + half)), float(pu_from_loglog(y0 - half)))

    return TaskLawFit(
        slope=float(slope),
        intercept=float(intercept),
        slope_ci=percentile_interval(slope_reps, confidence),
        intercept_ci=percentile_interval(intercept_reps, confidence),
        train_params=[float(params[i]) for i in on_line],
        train_pu=[float(p[i].mean()) for i in on_line],
        excluded=[int(i) for i in train if i not in on_line],
        prediction=_prediction(params[held_out], pred, pred_reps,
                               p[held_out].mean(), reps[:, held_out], confidence),
        prediction_interval=interval,
        n_boot_valid=int(valid.sum()),
    )


def _instance_nll(theta, xc, k, n, prior, weight):
    """Penalised negative log-likelihood of every instance's line, and its gradient.

    theta = (a_s, b_s) per instance with eta = a_s + b_s * xc = log(-log p); k, n: (models,
    instances) pass and sample counts. eta is clipped where p is already beyond any resolution.
    """
    m = k.shape[1]
    a, b = theta[:m], theta[m:]
    eta = np.clip(a[None, :] + b[None, :] * xc[:, None], -40.0, 6.0)
    t = np.exp(eta)  # -log p
    log_fail = np.log(-np.expm1(-t))  # log(1 - p)
    ll = -k * t + (n - k) * log_fail
    dll = -k * t + (n - k) * t / np.expm1(t)  # d ll / d eta
    da, db = a - prior[0], b - prior[1]
    nll = -ll.sum() + 0.5 * weight * (da ** 2 + db ** 2).sum()
    grad = np.concatenate([-dll.sum(axis=0) + weight * da, -(dll * xc[:, None]).sum(axis=0) + weight * db])
    return nll, grad


def fit_instance_law(params: Sequence[float], passes, samples, p_hat, held_out: int = -1,
                     confidence: float = 0.95, prior_weight: float = 1e-2,
                     n_boot: int = 2000, seed: int = 0) -> InstanceLawFit:
    """Each instance's own Eq. (3) line from its counts; the task prediction is their mean.

    passes, samples: (models, instances) PassUntil counts; p_hat: the unbiased estimates from the
    same counts, used for the measured PU of the held-out model and for the task-level pull.
    """
    x, train, held_out = _split(params, held_out)
    k = np.asarray(passes, dtype=float)[train]
    n = np.asarray(samples, dtype=float)[train]
    p = np.asarray(p_hat, dtype=float)
    _, slope, intercept = _task_line(x, p, train)
    xm = x[train].mean()
    xc = x[train] - xm
    prior = (intercept + slope * xm, slope)  # the task line, centred on the training models
    m = k.shape[1]
    theta0 = np.concatenate([np.full(m, prior[0]), np.full(m, prior[1])])
    res = optimize.minimize(_instance_nll, theta0, args=(xc, k, n, prior, prior_weight),
                            jac=True, method="L-BFGS-B")
    a, b = res.x[:m], res.x[m:]
    per_instance = pu_from_loglog(a + b * (x[held_out] - xm))

    # Paired bootstrap: the predicted and measured task PU over the same resampled instances.
    both = np.stack([per_instance, p[held_out]])
    reps = bootstrap_means(both, n_boot, seed)
    return InstanceLawFit(
        slopes=b.tolist(),
        intercepts=(a - b * xm).tolist(),
        n_never_passed=int((k.sum(axis=0) == 0).sum()),
        converged=bool(res.success),
        prediction=_prediction(params[held_out], per_instance.mean(), reps[:, 0],
                               p[held_out].mean(), reps[:, 1], confidence),
    )
