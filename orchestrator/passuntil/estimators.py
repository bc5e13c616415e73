"""PassUntil for one instance: sample until r passes or a sample cap, then estimate its pass rate.

Hu et al. (2023), "Predicting Emergent Abilities with Infinite Resolution Evaluation" (arXiv
2310.03262): instead of a fixed number of samples, keep sampling an instance until it passes, so
pass rates far below 1/K of a fixed-K evaluation still get a finite, nonzero estimate; a task's
PassUntil (PU) is the mean of its instances' pass rates. The number of draws K to the r-th pass
is negative binomial, and its direct reading r/K (the maximum-likelihood estimate) is biased; the
estimator below is not.

Sampling plan. Draw until r passes or `cap` draws, whichever comes first (the cap bounds the cost
of instances the model essentially never solves). Draws come in rounds so a driver can batch many
instances into one generation call; `PassUntilRule.record` counts a round's outcomes in sample
order and stops counting at the r-th pass or the cap, so a round that overshoots changes nothing:
the counted prefix is exactly the sequential plan. An instance ends in one of two states:
- stopped: the r-th pass came on draw K (passes = r, samples = K <= cap);
- censored: s < r passes in `cap` draws. Its estimate is not "0": it is reported with the flag
  and an upper bound.

Point estimate (unbiased). For a sequential Bernoulli plan, Girshick, Mosteller and Savage (1946)
give the unbiased estimator at a stopping point as (number of paths to that point whose first
draw passed) / (number of paths to it):
- stopped at the r-th pass on draw K: C(K-2, r-2) / C(K-1, r-1) = (r-1)/(K-1)   (r >= 2)
- censored with s passes in cap draws: C(cap-1, s-1) / C(cap, s) = s/cap
so E[p_hat] = p exactly, cap included, which keeps the task mean unbiased too. The reading r/K
(`p_mle`) is biased upward, badly at r = 1, where E[1/K] = p ln(1/p) / (1-p) (4.7 p at
p = 0.01). At r = 1 the only unbiased estimator is
1{K = 1}, which says nothing, so there `p_hat` falls back to 1/K and `unbiased` is False: use r >= 2.

Interval (exact). Order the outcomes from worst to best (censored s = 0, 1, ..., r-1, then stopped
at K = cap, cap-1, ..., r). The events "at least this good" are monotone in p:
- stopped at K or better  <=>  Bin(K, p) >= r;  stopped at K or worse  <=>  Bin(K-1, p) <= r-1;
- censored s or better    <=>  Bin(cap, p) >= s; censored s or worse   <=>  Bin(cap, p) <= s.
Inverting each tail at a/2, a = 1 - confidence, through the binomial-beta relation gives, for stopped,
[Beta(a/2; r, K-r+1), Beta(1-a/2; r, K-r)] (the upper end is 1 when K = r), and for censored the
Clopper-Pearson interval on s passes in cap draws. Coverage is at least nominal for every p (the
discreteness makes it conservative). Clopper-Pearson on the stopped counts would use r+1 in the
upper end: valid but wider, because it ignores that sampling stopped right after a pass.

Task PU over instances: the mean of the instances' p_hat, with a percentile bootstrap over
instances (instances are the sampling unit when the task is a sample of problems).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from orchestrator.stats import bootstrap_mean_interval


@dataclass(frozen=True)
class PassUntilRule:
    """When to stop sampling one instance, and how many samples to ask for in the next round.

    Round sizes: double the draws so far while an instance has not passed yet; once it has, ask
    for the draws its pass rate so far says the remaining passes need. Never below `first_round`
    (batches stay large), never past `cap`. Every round must draw fresh samples (a new seed per
    round, e.g. derived from the instance and the draws so far) and pass their outcomes to
    `record` in sample order. (passes, samples) is the whole state: persist it to resume.
    """

    r: int = 3
    cap: int = 1024
    first_round: int = 16

    def __post_init__(self):
        if self.r < 1 or self.cap < self.r or self.first_round < 1:
            raise ValueError(f"PassUntilRule needs 1 <= r <= cap and first_round >= 1, got {self}")

    def done(self, passes: int, samples: int) -> bool:
        return passes >= self.r or samples >= self.cap

    def next_round(self, passes: int, samples: int) -> int:
        """How many more samples to draw for an instance at (passes, samples); 0 when it is done."""
        if self.done(passes, samples):
            return 0
        if passes == 0:
            want = max(samples, self.first_round)
        else:
            want = math.ceil((self.r - passes) * samples / passes)
        return min(max(want, self.first_round), self.cap - samples)

    def record(self, passes: int, samples: int, outcomes: Sequence[bool]) -> tuple[int, int]:
        """(passes, samples) after a round's outcomes, counted in sample order up to the stop."""
        for passed in outcomes:
            if self.done(passes, samples):
                break
            samples += 1
            passes += bool(passed)
        return passes, samples


@dataclass(frozen=True)
class PassRateEstimate:
    """One instance's pass-rate estimate under a PassUntilRule."""

    passes: int
    samples: int
    censored: bool  # hit the cap before r passes: `high` is the number to report
    p_hat: float  # unbiased (r >= 2); the MLE when r == 1
    p_mle: float  # passes / samples: r/K when stopped, the maximum-likelihood estimate
    low: float
    high: float
    unbiased: bool

    def text(self) -> str:
        """Table cell: a censored instance reads as an upper bound, never as 0."""
        if self.censored:
            return f"<{self.high:.3g} (censored, {self.passes}/{self.samples})"
        return f"{self.p_hat:.3g} [{self.low:.3g}, {self.high:.3g}]"


def estimate_arrays(passes, samples, rule: PassUntilRule, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Vectorised pass-rate estimates for finished instances (arrays of passes and samples)."""
    k = np.asarray(passes, dtype=np.int64)
    n = np.asarray(samples, dtype=np.int64)
    stopped = k >= rule.r
    censored = ~stopped & (n >= rule.cap)
    if np.any(~stopped & ~censored) or np.any(k > rule.r) or np.any(n > rule.cap) or np.any(k > n):
        raise ValueError("estimate needs finished instances: passes == r, or passes < r after cap samples")
    tail = (1.0 - confidence) / 2
    r = rule.r
    kf, nf = k.astype(float), n.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if r >= 2:
            p_hat = np.where(stopped, (r - 1) / (nf - 1), kf / nf)
        else:
            p_hat = kf / nf
        # stopped at the r-th pass on draw K = n: the negative-binomial interval.
        stop_low = sps.beta.ppf(tail, r, nf - r + 1)
        stop_high = np.where(nf > r, sps.beta.ppf(1 - tail, r, np.maximum(nf - r, 1)), 1.0)
        # censored with k < r passes in cap draws: Clopper-Pearson.
        cens_low = np.where(k > 0, sps.beta.ppf(tail, np.maximum(kf, 1), nf - kf + 1), 0.0)
        cens_high = sps.beta.ppf(1 - tail, kf + 1, nf - kf)
    return {
        "passes": k,
        "samples": n,
        "censored": censored,
        "p_hat": p_hat,
        "p_mle": kf / nf,
        "low": np.where(stopped, stop_low, cens_low),
        "high": np.where(stopped, stop_high, cens_high),
    }


def estimate(passes: int, samples: int, rule: PassUntilRule, confidence: float = 0.95) -> PassRateEstimate:
    """One finished instance's estimate (see the module docstring for the estimator and interval)."""
    a = estimate_arrays([passes], [samples], rule, confidence)
    return PassRateEstimate(
        passes=int(passes),
        samples=int(samples),
        censored=bool(a["censored"][0]),
        p_hat=float(a["p_hat"][0]),
        p_mle=float(a["p_mle"][0]),
        low=float(a["low"][0]),
        high=float(a["high"][0]),
        unbiased=rule.r >= 2,
    )


@dataclass(frozen=True)
class TaskPassUntil:
    """A task's PU: the mean of its instances' unbiased estimates, bootstrap interval over instances."""

    pu: float
    low: float
    high: float
    n_instances: int
    n_censored: int


def task_pass_until(estimates: Sequence[PassRateEstimate], confidence: float = 0.95,
                    n_boot: int = 2000, seed: int = 0) -> TaskPassUntil:
    pu, low, high = bootstrap_mean_interval([e.p_hat for e in estimates], confidence, n_boot, seed)
    return TaskPassUntil(pu, low, high, len(estimates), sum(e.censored for e in estimates))
