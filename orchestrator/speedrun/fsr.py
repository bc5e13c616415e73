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


def fsr(t_record: float, t_next_record: float, t_candidate: float | None) -> float:
    """FSR of a candidate (time to target, None/NaN if it missed) against records i and i+1."""
    gap = t_record - t_next_record
    if t_candidate is None or not math.isfinite(t_candidate) or not gap > 0:
        return 0.0
    return max(0.0, (t_record - t_candidate) / gap)
