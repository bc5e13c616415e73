"""Contracts of the speedrun statistics, log parser and FSR on hand-worked cases and boundaries
(a loss exactly at the target, zero spread, single runs, launcher prefixes, the script source,
training lines without a loss, missed runs) and the layering of a record's launch environment."""
import math
from pathlib import Path

import pytest

from orchestrator.speedrun.fsr import fsr_over_runs
from orchestrator.speedrun.logparse import LogParser, parse_lines
from orchestrator.speedrun.records import Launch, Record, launch_env
from orchestrator.speedrun.stats import interleaved_order, speedup, summarize, val_loss_acceptance

T975_DF2 = 4.302652729911275  # Student t 97.5% quantile, 2 degrees of freedom


def test_interleaved_rounds_alternate_direction():
    assert interleaved_order(["a", "b", "c"], 3) == [("a", 0), ("b", 0), ("c", 0), ("c", 1), ("b", 1), ("a", 1),
                                                     ("a", 2), ("b", 2), ("c", 2)]


def test_summary_t_interval_on_hand_worked_values():
    s = summarize([1.0, 2.0, 3.0])
    half = T975_DF2 / math.sqrt(3)
    assert (s["n"], s["mean"], s["std"]) == (3, 2.0, 1.0)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((2 - half, 2 + half))
    assert summarize([5.0]) == {"n": 1, "mean": 5.0, "std": None, "ci_low": None, "ci_high": None}
    assert summarize([])["mean"] is None


@pytest.mark.parametrize("losses, p, accepted", [
    ([3.28], 1.0, False),  # exactly at the target is not below it
    ([3.28, 3.28], 1.0, False),  # zero spread at the target
    ([3.27, 3.27], 0.0, True),  # zero spread below the target
    ([3.27, 3.29], 0.5, False),  # mean at the target: t = 0
    ([3.26, 3.27, 3.28], 0.11270166537925831, False),  # t = -sqrt(3), 2 degrees of freedom
])
def test_acceptance_is_one_sided_and_strict_at_the_target(losses, p, accepted):
    result = val_loss_acceptance(losses, 3.28)
    assert result["p_value"] == pytest.approx(p, abs=1e-9) and result["accepted"] is accepted


def test_acceptance_passes_a_clear_improvement_at_alpha():
    result = val_loss_acceptance([3.270, 3.272, 3.268, 3.271, 3.269], 3.28)
    assert result["accepted"] and result["t"] < 0 and result["p_value"] < 0.01


def test_speedup_log_scale_interval_on_hand_worked_values():
    # var(log mean) = s^2 / (n mean^2) = 0.04 for both; Welch df = 2; ratio 5 / 2.5.
    s = speedup([4.0, 6.0], [2.0, 3.0])
    half = T975_DF2 * math.sqrt(0.08)
    assert s["ratio"] == pytest.approx(2.0)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((2 * math.exp(-half), 2 * math.exp(half)))
    assert speedup([2.0, 2.0], [1.0, 1.0]) == {"ratio": 2.0, "ci_low": 2.0, "ci_high": 2.0}
    assert speedup([10.0], [5.0, 5.0]) == {"ratio": 2.0, "ci_low": None, "ci_high": None}
    assert speedup([], [1.0])["ratio"] is None


def test_first_validation_exactly_at_the_target_counts():
    lines = ["step:0/100 val_loss:10.8 train_time:0ms step_avg:nanms",
             "[default0]:step:50/100 train_loss:3.5 train_time:5000ms step_avg:100.0ms",
             "[default0]:step:50/100 val_loss:3.28 train_time:5000ms step_avg:100.00ms",
             "step:100/100 val_loss:3.2799 train_time:10000ms step_avg:100.00ms"]
    r = parse_lines(lines, target=3.28)
    assert r["format"] == "modded"
    assert (r["first_step_at_or_below_target"], r["time_to_target_ms"]) == (50, 5000.0)
    assert (r["final_val_loss"], r["final_train_time_ms"]) == (3.2799, 10000.0)
    assert [p["step"] for p in r["steps"]] == [0, 50, 100]


def test_a_run_that_never_reaches_the_target_has_no_time():
    r = parse_lines(["step:10/10 val_loss:3.2801 train_time:900ms step_avg:90ms"], target=3.28)
    assert r["first_step_at_or_below_target"] is None and r["time_to_target_ms"] is None
    assert r["final_val_loss"] == 3.2801


def test_script_source_and_llmc_lines():
    source = ['print0(f"step:{step}/{args.num_iterations} val_loss:{val_loss:.4f} train_time:{t:.0f}ms")']
    assert parse_lines(source)["steps"] == []
    parser = LogParser(3.28)
    for line in ["s:0 tel:10.9", "s:10 trl:4.25 lr:1e-3", "s:20 tel:3.25"]:
        parser.feed(line)
    r = parser.result()
    assert r["format"] == "llmc" and r["first_step_at_or_below_target"] == 20 and r["time_to_target_ms"] is None
    assert (parser.last_step, parser.last_train_loss) == (20, 4.25)


def test_training_lines_update_the_live_state_without_adding_validations():
    parser = LogParser()
    assert parser.feed("step:7/20 train_loss:nan train_time:700ms step_avg:100ms") is None
    assert (parser.last_step, parser.total_steps, parser.last_train_time_ms) == (7, 20, 700.0)
    assert math.isnan(parser.last_train_loss) and parser.steps == []


def test_training_lines_without_a_loss_still_move_the_live_state():
    # Early modded-nanogpt logs print `step:{s}/{N} train_time:...` with no train_loss.
    parser = LogParser()
    parser.feed("step:5/20 train_loss:4.0 train_time:500ms step_avg:100ms")
    assert parser.feed("[default0]:step:6/20 train_time:600ms step_avg:100ms") is None
    assert (parser.last_step, parser.total_steps, parser.last_train_time_ms, parser.last_train_loss) == \
        (6, 20, 600.0, 4.0)
    assert parser.steps == [] and parser.format == "modded"


def test_fsr_over_runs_counts_a_missed_run_as_zero():
    # Records at 3 s and 1 s: a 2 s run recovers half the gap, a miss nothing; the mean is 1/4.
    out = fsr_over_runs([3.0, 3.0], [1.0, 1.0], [2.0, None], n_boot=200)
    assert (out["fsr"], out["runs"], out["misses"]) == (0.25, 2, 1)
    assert 0.0 <= out["ci_low"] <= out["fsr"] <= out["ci_high"] <= 0.5


def test_fsr_over_runs_counts_misses_when_the_records_have_no_time():
    assert fsr_over_runs([], [1.0], [None, 2.0]) == {"fsr": 0.0, "ci_low": None, "ci_high": None, "runs": 2,
                                                     "misses": 1}


def test_a_validation_line_cut_before_its_unit_is_not_a_point():
    parser = LogParser(target=3.28)
    assert parser.feed("step:500/1750 val_loss:3.2100 train_time:1234") is None  # still being written
    assert parser.steps == []
    assert parser.feed("step:500/1750 val_loss:3.2100 train_time:1234ms step_avg:2.47ms") == {
        "step": 500, "val_loss": 3.21, "train_time_ms": 1234.0}


def test_launch_env_layers_base_defaults_record_env_then_extra():
    """launch_env: base, then the one-thread defaults, then the record's env (${VAR} expanded
    against what is there so far, extra included), then the caller's extra last, so a seed or
    data folder the caller passes always wins over the record's own value."""
    record = Record("r/01", Path("r.py"), launch=Launch(env={"SEED": "7", "DATA": "${ROOT}/val", "OMP_NUM_THREADS": "4",
                                                             "HOME": "${HOME}/x"}))
    env = launch_env(record, extra={"SEED": "3", "ROOT": "/data"}, base={"HOME": "/h", "SEED": "0", "PATH": "/bin"})
    assert env == {"HOME": "/h/x", "SEED": "3", "PATH": "/bin", "ROOT": "/data", "DATA": "/data/val",
                   "OMP_NUM_THREADS": "4", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    assert launch_env(Record("r/02", Path("r.py")), extra={"OMP_NUM_THREADS": "2"}, base={})["OMP_NUM_THREADS"] == "2"
