"""Fraction of speedup recovered (FSR): how much of the gap from record i to record i+1 a
candidate script closes, with all three times measured on the same cluster in the same replay.

    FSR = (t_i - t') / (t_i - t_{i+1})

Conventions:
- 0 when the candidate did not reach the target (no time to target), or when the record gap
  t_i - t_{i+1} is not positive (record i+1 was not faster in this replay, so there is nothing
  to recover and the ratio would be meaningless or sign-flipped).
- Clipped below at 0: a candidate slower than record i scores 0, the same as one that misses
  the target, so a slow-but-valid attempt never scores worse than a broken one.
- Not clipped above: a candidate faster than record i+1 scores above 1, which is the signal
  that it beat the next record.
Pass mean times over repeats when there are several.
"""
from __future__ import annotations

import math
import random


def fsr(t_record: float, t_next_record: float, t_candidate: float | None) -> float:
    """FSR of a candidate (time to target, None/NaN if it missed) against records i and i+1."""
    gap = t_record - t_next_record
    if t_candidate is None or not math.isfinite(t_candidate) or not gap > 0:
        return 0.0
    return max(0.0, (t_record - t_candidate) / gap)


def fsr_over_runs(t_record: list[float], t_next_record: list[float], t_candidate: list[float | None],
                  confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """FSR of a candidate from every one of its runs, a miss (None) scoring 0 for that run, with a
    bootstrap interval over the runs of all three (each list resampled with replacement).

    The point figure is the mean over the candidate's runs of fsr(mean t_i, mean t_i+1, run):
    a candidate that reaches the target in 1 run of 4 scores a quarter of what it would if it
    always did.
    """
    misses = sum(t is None for t in t_candidate)
    if not t_record or not t_next_record or not t_candidate:
        return {"fsr": 0.0, "ci_low": None, "ci_high": None, "runs": len(t_candidate), "misses": misses}

    def value(ti, tn, tc):
        a, b = sum(ti) / len(ti), sum(tn) / len(tn)
        return sum(fsr(a, b, t) for t in tc) / len(tc)

    rng = random.Random(seed)
    replicates = sorted(value(rng.choices(t_record, k=len(t_record)), rng.choices(t_next_record, k=len(t_next_record)),
                              rng.choices(t_candidate, k=len(t_candidate))) for _ in range(n_boot))
    tail = (1 - confidence) / 2
    return {"fsr": value(t_record, t_next_record, t_candidate),
            "ci_low": replicates[int(tail * (n_boot - 1))], "ci_high": replicates[int((1 - tail) * (n_boot - 1))],
            "runs": len(t_candidate), "misses": misses}
