"""Statistics shared by every experiment: bootstrap means and percentile intervals over instances.

An instance is the sampling unit (a problem of a benchmark, a run of a record): intervals come
from resampling instances with replacement, so they say how much a figure would move on another
draw of instances like these.
"""
from __future__ import annotations

import numpy as np


def bootstrap_means(values, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Means of `values` over instances resampled with replacement, shape (n_boot, *leading dims).

    `values` is (instances,) or (rows, instances); every row is resampled with the same instance
    indices (a paired bootstrap: one model series evaluated on one set of problems).
    """
    v = np.asarray(values, dtype=float)
    idx = np.random.default_rng(seed).integers(0, v.shape[-1], size=(n_boot, v.shape[-1]))
    return np.moveaxis(v[..., idx].mean(axis=-1), -1, 0)


def percentile_interval(replicates, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of finite bootstrap replicates (nan, nan) when none are finite."""
    x = np.asarray(replicates, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    return float(np.percentile(x, tail)), float(np.percentile(x, 100 - tail))


def censored_percentile_interval(replicates, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval where an infinite replicate (censored above the range measured) stays
    in, beyond every finite one: a bound is inf when more than its tail is censored."""
    x = np.asarray(replicates, dtype=float)
    tail = (1 - confidence) / 2
    low, high = np.quantile(x, [tail, 1 - tail], method="inverted_cdf")  # an order statistic: inf-safe
    return float(low), float(high)


def bootstrap_mean_interval(values, confidence: float = 0.95, n_boot: int = 2000,
                            seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of per-instance values with a percentile bootstrap over instances."""
    v = np.asarray(values, dtype=float)
    low, high = percentile_interval(bootstrap_means(v, n_boot, seed), confidence)
    return float(v.mean()), low, high


def two_stage_bootstrap_interval(outcomes, confidence: float = 0.95, n_boot: int = 2000,
                                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of per-problem mean outcomes, `outcomes` shaped (problems, draws): each
    replicate resamples the problems with replacement, then each drawn problem's draws (its
    subsamples) with replacement. With one distinct draw per problem (a budget of N_max) it is
    the plain bootstrap over problems."""
    x = np.asarray(outcomes, dtype=float)
    problems, draws = x.shape
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    chunk = max(1, 2_000_000 // (problems * draws))  # replicates per batch, to bound memory
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        rows = rng.integers(0, problems, size=(size, problems, 1))
        cols = rng.integers(0, draws, size=(size, problems, draws))
        replicates[start:start + size] = x[rows, cols].mean(axis=(1, 2))
    low, high = percentile_interval(replicates, confidence)
    return float(x.mean()), low, high
