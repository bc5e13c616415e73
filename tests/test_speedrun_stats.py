"""Speedrun timing statistics and FSR."""
import math

import pytest

from orchestrator.speedrun.fsr import fsr
from orchestrator.speedrun.stats import (consecutive_speedups, interleaved_order, summarize, speedup,
                                         val_loss_acceptance)


def test_interleaved_order_alternates_rounds():
    order = interleaved_order(["a", "b", "c"], 3)
    assert order == [("a", 0), ("b", 0), ("c", 0), ("c", 1), ("b", 1), ("a", 1), ("a", 2), ("b", 2), ("c", 2)]


def test_interleaved_order_cancels_linear_drift():
    # Each slot adds `slot` seconds of drift; with an even number of rounds every record gets the same total.
    order = interleaved_order(["a", "b", "c", "d"], 4)
    drift = {name: 0 for name in "abcd"}
    for slot, (name, _) in enumerate(order):
        drift[name] += slot
    assert len(set(drift.values())) == 1


def test_summarize_t_interval():
    s = summarize([10.0, 12.0, 14.0])
    assert (s["n"], s["mean"], s["std"]) == (3, 12.0, 2.0)
    half = 4.302652729911275 * 2.0 / math.sqrt(3)  # t_{0.975, 2}
    assert s["ci_low"] == pytest.approx(12 - half) and s["ci_high"] == pytest.approx(12 + half)
    assert summarize([5.0])["ci_low"] is None
    assert summarize([])["n"] == 0


def test_val_loss_acceptance_one_sided():
    clear = val_loss_acceptance([3.270, 3.271, 3.269, 3.272, 3.270], target=3.28)
    assert clear["accepted"] and clear["p_value"] < 1e-4 and clear["t"] < 0
    marginal = val_loss_acceptance([3.27, 3.275, 3.272], target=3.28)
    assert marginal["p_value"] == pytest.approx(0.01704540, rel=1e-5)
    assert not marginal["accepted"]  # p > 0.01: not significant at modded-nanogpt's level
    assert val_loss_acceptance([3.27, 3.275, 3.272], target=3.28, alpha=0.05)["accepted"]
    above = val_loss_acceptance([3.29, 3.285, 3.30], target=3.28)
    assert above["p_value"] > 0.5 and not above["accepted"]


def test_speedup_delta_method_interval():
    s = speedup([100.0, 110.0], [50.0, 55.0])
    assert s["ratio"] == pytest.approx(2.0)
    # se of the log ratio = sqrt(2 * 50 / (2 * 105^2)) with equal variances; Welch df = 2.
    half = 4.302652729911275 * math.sqrt(2 * 50 / (2 * 105.0**2))
    assert s["ci_low"] == pytest.approx(2 * math.exp(-half))
    assert s["ci_high"] == pytest.approx(2 * math.exp(half))
    assert speedup([100.0], [50.0, 60.0])["ci_low"] is None
    assert speedup([], [50.0])["ratio"] is None


def test_consecutive_speedups_follow_ladder_order():
    out = consecutive_speedups({"r1": [120.0, 130.0], "r2": [60.0, 65.0], "r3": [30.0, 31.0]})
    assert [(s["from"], s["to"]) for s in out] == [("r1", "r2"), ("r2", "r3")]
    assert out[0]["ratio"] == pytest.approx(2.0) and out[1]["ratio"] == pytest.approx(62.5 / 30.5)
    assert all(s["ci_low"] < s["ratio"] < s["ci_high"] for s in out)


def test_fsr_conventions():
    assert fsr(100.0, 80.0, 90.0) == pytest.approx(0.5)
    assert fsr(100.0, 80.0, 80.0) == pytest.approx(1.0)
    assert fsr(100.0, 80.0, 70.0) == pytest.approx(1.5)  # beat the next record: not clipped above
    assert fsr(100.0, 80.0, 120.0) == 0.0  # slower than record i: clipped to 0
    assert fsr(100.0, 80.0, None) == 0.0  # missed the target
    assert fsr(100.0, 80.0, float("nan")) == 0.0
    assert fsr(80.0, 100.0, 70.0) == 0.0  # record gap not positive
    assert fsr(80.0, 80.0, 70.0) == 0.0
