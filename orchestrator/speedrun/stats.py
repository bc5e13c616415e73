"""Timing statistics a speedrun record claim would survive.

- Repeats run in interleaved, direction-alternating rounds (A B C, C B A, A B C, ...): every
  record sees the same mix of early and late slots, so a linear drift in machine speed (another
  job starting, thermal throttling) adds the same amount to every record's mean.
- Time to target (and steps to target) get a mean, standard deviation, and a geometric mean with
  a Student-t 95% interval on the log scale: times are positive and multiplicative, and a
  symmetric interval on 2 runs reached below zero.
- Acceptance is tested on the final losses of runs that went to their scheduled end: a run that
  stops at its first validation at or below the target is at most the target by construction.
- Acceptance follows modded-nanogpt: a one-sided t-test that the mean final validation loss is
  below the target (H0: mean >= target), passed when p < alpha (0.01 there).
- Speedup of record b over record a is mean(t_a) / mean(t_b). Its interval uses the delta method
  on the log ratio: var(log mean) ~ s^2 / (n mean^2) for each record, combined with
  Welch-Satterthwaite degrees of freedom and a t quantile, then exponentiated, so the interval
  is asymmetric and always positive. With one run of either record the interval is undefined
  (None).
"""
from __future__ import annotations

import math

from scipy import stats as sps


def interleaved_order(records: list[str], repeats: int) -> list[tuple[str, int]]:
    """(record, repeat index) pairs: one round per repeat, alternating direction each round."""
    order = []
    for r in range(repeats):
        names = records if r % 2 == 0 else records[::-1]
        order.extend((name, r) for name in names)
    return order


def mean_std(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")
    return mean, std


def summarize(xs: list[float], confidence: float = 0.95) -> dict:
    """n, mean, std and the Student-t interval of the mean (None bounds with fewer than 2 values)."""
    if not xs:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    n = len(xs)
    mean, std = mean_std(xs)
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def summarize_positive(xs: list[float], confidence: float = 0.95) -> dict:
    """For times and step counts, which are positive and vary multiplicatively: n, the arithmetic
    mean and std, and the geometric mean with a Student-t interval on the log scale (exponentiated,
    so it is asymmetric and never below 0)."""
    out = summarize(xs, confidence)
    if not xs:
        return {**out, "geomean": None}
    logs = [math.log(x) for x in xs]
    on_log = summarize(logs, confidence)
    out["geomean"] = math.exp(on_log["mean"])
    if on_log["ci_low"] is not None:
        out["ci_low"], out["ci_high"] = math.exp(on_log["ci_low"]), math.exp(on_log["ci_high"])
    return out


def val_loss_acceptance(losses: list[float], target: float, alpha: float = 0.01) -> dict:
    """One-sided t-test of H0: mean >= target against H1: mean < target.

    Returns the t statistic, p-value and whether the runs show mean loss below target at level
    alpha. A single run (or runs with zero spread) decides by comparison alone (p 0 or 1).
    """
    n = len(losses)
    mean, std = mean_std(losses)
    if n < 2 or std == 0:
        p = 0.0 if mean < target else 1.0
        return {"n": n, "mean": mean, "t": None, "p_value": p, "accepted": p < alpha}
    t = (mean - target) / (std / math.sqrt(n))
    p = float(sps.t.cdf(t, n - 1))
    return {"n": n, "mean": mean, "t": t, "p_value": p, "accepted": p < alpha}


def speedup(times_a: list[float], times_b: list[float], confidence: float = 0.95) -> dict:
    """Speedup of b over a, mean(times_a) / mean(times_b), with a delta-method log-scale interval."""
    if not times_a or not times_b:
        return {"ratio": None, "ci_low": None, "ci_high": None}
    mean_a, std_a = mean_std(times_a)
    mean_b, std_b = mean_std(times_b)
    ratio = mean_a / mean_b
    if len(times_a) < 2 or len(times_b) < 2:
        return {"ratio": ratio, "ci_low": None, "ci_high": None}
    va = std_a**2 / (len(times_a) * mean_a**2)  # variance of log(mean_a), delta method
    vb = std_b**2 / (len(times_b) * mean_b**2)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"ratio": ratio, "ci_low": ratio, "ci_high": ratio}
    df = (va + vb) ** 2 / (va**2 / (len(times_a) - 1) + vb**2 / (len(times_b) - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    return {"ratio": ratio, "ci_low": ratio * math.exp(-half), "ci_high": ratio * math.exp(half)}


def consecutive_speedups(times_by_record: dict[str, list[float]], confidence: float = 0.95) -> list[dict]:
    """Speedup of each record over the one before it (dict order is ladder order)."""
    names = list(times_by_record)
    return [
        {"from": a, "to": b, **speedup(times_by_record[a], times_by_record[b], confidence)}
        for a, b in zip(names, names[1:])
    ]
