"""Difficulty levels and compute-optimal strategy selection for test-time-compute sweeps.

Following Snell et al. (2024), "Scaling LLM Test-Time Compute Optimally can be More Effective
than Scaling Model Parameters" (arXiv 2408.03314):
- Difficulty is per problem, from K samples of the base policy: oracle difficulty is their pass@1
  (fraction correct), model-predicted difficulty is the mean PRM score of their final answers (no
  ground truth needed). Problems are binned into five quantile levels, level 1 the easiest
  (highest pass rate or score) and level 5 the hardest. Binning is by quantile thresholds; tied
  values share a level, the easier one when they straddle a threshold, which leaves levels of
  unequal size when many problems tie (e.g. all K samples right).
- The compute-optimal strategy at a budget is the configuration (method and hyperparameters)
  with the best accuracy among those whose cost fits the budget, chosen per difficulty level. To
  keep the choice from being scored on the problems it was chosen on, each level's problems are
  split into two folds (deterministically from a seed): the best configuration on one fold is
  scored on the other, and the other way round. A level's held-out accuracy is the mean over all
  its problems of these held-out scores; the curve's accuracy at a budget is the mean over all
  problems, i.e. levels weighted by size.
- The budget axis is whatever `Config.cost` holds: the generation budget N, or the mean tokens or
  FLOPs per problem a configuration used. A configuration is a candidate at budget B when its cost
  is at most B (a cheaper configuration may always be chosen).
Ties in fold accuracy go to the cheaper configuration, then to the name, so the choice is
deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from orchestrator.stats import censored_percentile_interval, percentile_interval


def oracle_difficulty(correct: Sequence[Sequence[bool]]) -> np.ndarray:
    """Per-problem pass@1 from its K graded samples (rows may differ in length)."""
    return np.array([float(np.mean(row)) for row in correct])


def predicted_difficulty(final_scores: Sequence[Sequence[float]]) -> np.ndarray:
    """Per-problem mean PRM score of the final answers of the same K samples."""
    return np.array([float(np.mean(row)) for row in final_scores])


def difficulty_levels(values: Sequence[float], n_levels: int = 5) -> np.ndarray:
    """Quantile level per problem: 1 for the highest values (easiest) to n_levels (hardest).

    Threshold k is the lowest value among the easiest k/n_levels of the problems; a problem's
    level is 1 plus the number of thresholds it falls below, so a value tied with a threshold
    goes to the easier level (many problems at pass@1 = 1 fill level 1 and may overflow it).
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.zeros(0, dtype=int)
    descending = np.sort(v)[::-1]
    positions = np.ceil(np.arange(1, n_levels) * len(v) / n_levels).astype(int) - 1
    thresholds = descending[positions]
    return 1 + (v[:, None] < thresholds[None, :]).sum(axis=1)


def two_fold_split(problems: Sequence[int], seed: int, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of a level's problems, from a permutation seeded by (seed, level)."""
    perm = np.random.default_rng([seed, level]).permutation(np.asarray(problems, dtype=int))
    half = len(perm) // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


@dataclass(frozen=True)
class Config:
    """One swept configuration: per-problem accuracy in [0, 1], problems in one shared order."""

    name: str  # e.g. "beam_search M=4 N=16"
    cost: float  # its budget: N, or mean tokens or FLOPs per problem
    correct: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "correct", np.asarray(self.correct, dtype=float))


@dataclass(frozen=True)
class LevelChoice:
    level: int
    budget: float
    n_problems: int
    best: str  # chosen on all the level's problems: the configuration to run there
    fold_choices: tuple[str, str]  # chosen on fold A (scored on B), chosen on fold B (scored on A)
    cv_accuracy: float  # held-out accuracy over the level's problems


@dataclass(frozen=True)
class CurvePoint:
    budget: float
    accuracy: float  # held-out accuracy over all problems
    low: float
    high: float
    levels: list[LevelChoice]
    # Each level's best chosen and scored on all its problems: an optimistic ceiling on what
    # per-level selection can gain over the best single configuration.
    in_sample_accuracy: float = float("nan")
    # Held-out accuracy in each bootstrap replicate (selection redone in each), for paired figures.
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)


@dataclass(frozen=True)
class Multiplier:
    """Snell et al.'s efficiency figure: weighted best-of-N needs `value` times the budget `at`
    to match the compute-optimal accuracy there. inf when it never does within the sweep."""

    at: float
    value: float
    low: float
    high: float
    matched_budget: float  # the budget where weighted best-of-N reaches that accuracy


def _best(candidates: Sequence[Config], problems: np.ndarray) -> Config:
    return min(candidates, key=lambda c: (-float(c.correct[problems].mean()), c.cost, c.name))


def bootstrap_folds(levels: Sequence[int], seed: int = 0, n_boot: int = 2000) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per level of at least two problems: (level, fold A, fold B) resampled with replacement
    within each fold, each (n_boot, fold size) problem indices. Resampling inside the folds keeps
    level and fold sizes and never puts one problem on both sides of a fold."""
    levels = np.asarray(levels, dtype=int)
    rng = np.random.default_rng([seed, 1])
    out = []
    for level in np.unique(levels):
        problems = np.flatnonzero(levels == level)
        if len(problems) < 2:
            continue
        fold_a, fold_b = two_fold_split(problems, seed, int(level))
        out.append((int(level), rng.choice(fold_a, size=(n_boot, len(fold_a))),
                    rng.choice(fold_b, size=(n_boot, len(fold_b)))))
    return out


def compute_optimal(configs: Sequence[Config], levels: Sequence[int], budgets: Sequence[float],
                    seed: int = 0, confidence: float = 0.95, n_boot: int = 2000) -> list[CurvePoint]:
    """The compute-optimal curve: per budget, the 2-fold cross-validated choice in every level.

    Levels with fewer than two problems cannot be split and are left out; budgets that no
    configuration fits are skipped. The interval is a bootstrap over problems (`bootstrap_folds`)
    that redoes every fold's choice in each replicate, so it includes the noise of the selection.
    """
    levels = np.asarray(levels, dtype=int)
    boots = bootstrap_folds(levels, seed, n_boot)
    points = []
    for budget in budgets:
        candidates = sorted((c for c in configs if c.cost <= budget * (1 + 1e-9)), key=lambda c: (c.cost, c.name))
        if not candidates:
            continue
        held_out = np.full(len(levels), np.nan)
        choices, in_sample = [], 0.0
        for level in np.unique(levels):
            problems = np.flatnonzero(levels == level)
            if len(problems) < 2:
                continue
            fold_a, fold_b = two_fold_split(problems, seed, int(level))
            on_a, on_b = _best(candidates, fold_a), _best(candidates, fold_b)
            held_out[fold_b] = on_a.correct[fold_b]
            held_out[fold_a] = on_b.correct[fold_a]
            best = _best(candidates, problems)
            in_sample += best.correct[problems].sum()
            choices.append(LevelChoice(
                level=int(level),
                budget=float(budget),
                n_problems=len(problems),
                best=best.name,
                fold_choices=(on_a.name, on_b.name),
                cv_accuracy=float(held_out[problems].mean()),
            ))
        scored = held_out[np.isfinite(held_out)]
        if scored.size == 0:
            continue
        correct = np.stack([c.correct for c in candidates])  # candidates x problems, cheapest first
        total, count = np.zeros(n_boot), 0
        for _, boot_a, boot_b in boots:
            # argmax takes the first maximum: ties go to the cheaper candidate, then the name.
            on_a = correct[:, boot_a].mean(axis=-1).argmax(axis=0)
            on_b = correct[:, boot_b].mean(axis=-1).argmax(axis=0)
            total += correct[on_a[:, None], boot_b].sum(axis=-1) + correct[on_b[:, None], boot_a].sum(axis=-1)
            count += boot_a.shape[1] + boot_b.shape[1]
        replicates = total / count
        low, high = percentile_interval(replicates, confidence)
        points.append(CurvePoint(float(budget), float(scored.mean()), low, high, choices,
                                 float(in_sample / scored.size), replicates))
    return points


def matching_budget(budgets: Sequence[float], accuracies: Sequence[float], target: float) -> float:
    """The budget at which a curve (accuracies at increasing budgets) first reaches `target`,
    interpolated linearly in log budget; the smallest budget if it starts there, inf if never."""
    b, a = np.asarray(budgets, dtype=float), np.asarray(accuracies, dtype=float)
    if a[0] >= target:
        return float(b[0])
    for i in range(1, len(b)):
        if a[i] >= target:
            fraction = (target - a[i - 1]) / (a[i] - a[i - 1])
            return float(np.exp(np.log(b[i - 1]) + fraction * (np.log(b[i]) - np.log(b[i - 1]))))
    return float("inf")


def efficiency_multiplier(weighted: Sequence[Config], curve: Sequence[CurvePoint], at: float,
                          levels: Sequence[int], seed: int = 0, n_boot: int = 2000,
                          confidence: float = 0.95) -> Multiplier:
    """How many times the budget `at` weighted best-of-N needs to match the compute-optimal
    accuracy at `at`, with a paired bootstrap interval.

    `weighted` holds weighted best-of-N at each swept N (cost = N); `curve` comes from
    `compute_optimal` with the same levels, seed and n_boot, so each replicate compares both on
    the same resampled problems. A replicate that never matches counts as inf (censored above
    the sweep), so the interval can be open above.
    """
    weighted = sorted(weighted, key=lambda c: c.cost)
    budgets = [c.cost for c in weighted]
    (point,) = [p for p in curve if np.isclose(p.budget, at)]
    boots = bootstrap_folds(levels, seed, n_boot)
    resampled = np.concatenate([np.concatenate([a, b], axis=1) for _, a, b in boots], axis=1)
    levels = np.asarray(levels, dtype=int)
    problems = np.flatnonzero(np.isin(levels, [level for level, _, _ in boots]))  # those the curve scored
    correct = np.stack([c.correct for c in weighted])
    matched = matching_budget(budgets, correct[:, problems].mean(axis=1), point.accuracy)
    curves = correct[:, resampled].mean(axis=-1).T  # replicates x budgets
    replicates = np.array([matching_budget(budgets, acc, target) / at
                           for acc, target in zip(curves, point.replicates)])
    low, high = censored_percentile_interval(replicates, confidence)
    return Multiplier(float(at), matched / at, low, high, matched)
