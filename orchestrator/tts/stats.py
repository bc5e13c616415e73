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

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from orchestrator.stats import bootstrap_mean_interval


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


def _best(candidates: Sequence[Config], problems: np.ndarray) -> Config:
    return min(candidates, key=lambda c: (-float(c.correct[problems].mean()), c.cost, c.name))


def compute_optimal(configs: Sequence[Config], levels: Sequence[int], budgets: Sequence[float],
                    seed: int = 0, confidence: float = 0.95) -> list[CurvePoint]:
    """The compute-optimal curve: per budget, the 2-fold cross-validated choice in every level.

    Levels with fewer than two problems cannot be split and are left out; budgets that no
    configuration fits are skipped.
    """
    levels = np.asarray(levels, dtype=int)
    points = []
    for budget in budgets:
        candidates = [c for c in configs if c.cost <= budget * (1 + 1e-9)]
        if not candidates:
            continue
        held_out = np.full(len(levels), np.nan)
        choices = []
        for level in np.unique(levels):
            problems = np.flatnonzero(levels == level)
            if len(problems) < 2:
                continue
            fold_a, fold_b = two_fold_split(problems, seed, int(level))
            on_a, on_b = _best(candidates, fold_a), _best(candidates, fold_b)
            held_out[fold_b] = on_a.correct[fold_b]
            held_out[fold_a] = on_b.correct[fold_a]
            choices.append(LevelChoice(
                level=int(level),
                budget=float(budget),
                n_problems=len(problems),
                best=_best(candidates, problems).name,
                fold_choices=(on_a.name, on_b.name),
                cv_accuracy=float(held_out[problems].mean()),
            ))
        scored = held_out[np.isfinite(held_out)]
        if scored.size == 0:
            continue
        accuracy, low, high = bootstrap_mean_interval(scored, confidence, seed=seed)
        points.append(CurvePoint(float(budget), accuracy, low, high, choices))
    return points
