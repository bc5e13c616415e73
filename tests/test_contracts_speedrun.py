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


# ---- stats on hand-worked values: confidence, the log scale, unequal run counts ----

from scipy import stats as sps  # noqa: E402

from orchestrator.speedrun.fsr import fsr  # noqa: E402
from orchestrator.speedrun.stats import consecutive_speedups, mean_std, summarize_positive  # noqa: E402


def test_mean_std_uses_n_minus_one_and_is_nan_for_one_value():
    assert mean_std([2.0, 4.0]) == pytest.approx((3.0, math.sqrt(2.0)))
    mean, std = mean_std([7.0])
    assert mean == 7.0 and math.isnan(std)


def test_summary_interval_follows_the_confidence():
    s = summarize([1.0, 2.0, 3.0], confidence=0.9)
    half = sps.t.ppf(0.95, 2) / math.sqrt(3)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((2 - half, 2 + half))


def test_summarize_positive_geomean_and_log_scale_interval():
    s = summarize_positive([1.0, 4.0])
    # logs 0 and ln 4: mean ln 2, std ln 4 / sqrt 2; t with 1 degree of freedom
    half = sps.t.ppf(0.975, 1) * (math.log(4) / math.sqrt(2)) / math.sqrt(2)
    assert (s["n"], s["mean"], s["std"]) == pytest.approx((2, 2.5, math.sqrt(4.5)))
    assert s["geomean"] == pytest.approx(2.0)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((2 * math.exp(-half), 2 * math.exp(half)))
    one = summarize_positive([5.0])
    assert (one["geomean"], one["ci_low"], one["ci_high"]) == (pytest.approx(5.0), None, None)
    assert summarize_positive([]) == {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None,
                                      "geomean": None}


def test_acceptance_t_statistic_and_alpha_are_strict():
    r = val_loss_acceptance([3.26, 3.27, 3.28], 3.28)
    assert (r["n"], r["mean"], r["t"]) == (3, pytest.approx(3.27), pytest.approx(-math.sqrt(3)))
    assert val_loss_acceptance([3.26, 3.27, 3.28], 3.28, alpha=0.2)["accepted"] is True  # p 0.113
    assert val_loss_acceptance([3.26, 3.27, 3.28], 3.28, alpha=0.11)["accepted"] is False
    single = val_loss_acceptance([3.2], 3.28)
    assert (single["t"], single["p_value"], single["accepted"]) == (None, 0.0, True)


def test_speedup_welch_degrees_of_freedom_with_unequal_run_counts():
    s = speedup([4.0, 6.0], [2.0, 3.0, 4.0])
    va, vb = 2.0 / (2 * 25.0), 1.0 / (3 * 9.0)  # s^2 / (n mean^2): std 2 and 1, means 5 and 3
    df = (va + vb) ** 2 / (va ** 2 / 1 + vb ** 2 / 2)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert s["ratio"] == pytest.approx(5 / 3)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((5 / 3 * math.exp(-half), 5 / 3 * math.exp(half)))
    assert speedup([1.0, 1.0], []) == {"ratio": None, "ci_low": None, "ci_high": None}


def test_consecutive_speedups_of_fewer_than_two_records_are_empty():
    assert consecutive_speedups({}) == [] and consecutive_speedups({"a": [1.0]}) == []


@pytest.mark.parametrize("records, repeats, expected", [
    (["a", "b"], 0, []),
    (["a", "b"], 1, [("a", 0), ("b", 0)]),
    (["a", "b"], 2, [("a", 0), ("b", 0), ("b", 1), ("a", 1)]),
    (["a"], 3, [("a", 0), ("a", 1), ("a", 2)]),
])
def test_interleaved_order_small_cases(records, repeats, expected):
    assert interleaved_order(records, repeats) == expected


# ---- FSR ----

@pytest.mark.parametrize("t_candidate, expected", [(float("inf"), 0.0), (float("-inf"), 0.0), (100.0, 0.0),
                                                    (95.0, 0.25), (60.0, 2.0)])
def test_fsr_on_the_edges(t_candidate, expected):
    assert fsr(100.0, 80.0, t_candidate) == pytest.approx(expected)


def test_fsr_over_runs_compares_each_run_with_the_records_mean_times():
    # records' means 3 and 1: the single 2 s run recovers half the gap (not paired run by run)
    out = fsr_over_runs([2.0, 4.0], [1.0, 1.0], [2.0], n_boot=50)
    assert out["fsr"] == pytest.approx(0.5) and (out["runs"], out["misses"]) == (1, 0)


def test_fsr_over_identical_runs_has_a_point_interval():
    out = fsr_over_runs([3.0, 3.0], [1.0, 1.0], [2.0, 2.0, 2.0], n_boot=50)
    assert (out["fsr"], out["ci_low"], out["ci_high"]) == (0.5, 0.5, 0.5)


def test_fsr_over_runs_of_no_candidate_run_is_zero():
    assert fsr_over_runs([3.0], [1.0], []) == {"fsr": 0.0, "ci_low": None, "ci_high": None, "runs": 0, "misses": 0}
    assert fsr_over_runs([3.0], [], [2.0])["fsr"] == 0.0


# ---- log parsing: what is and is not a line ----

@pytest.mark.parametrize("line, point", [
    ("step:5/10 val_loss:3.2 train_time:500ms step_avg:100ms", {"step": 5, "val_loss": 3.2, "train_time_ms": 500.0}),
    ("rank0: step:5/10 val_loss:3.2e0 train_time:500.5ms", {"step": 5, "val_loss": 3.2, "train_time_ms": 500.5}),
    ("[default0]:s:7 tel:2.5", {"step": 7, "val_loss": 2.5, "train_time_ms": None}),
    ("mystep:5/10 val_loss:3.2 train_time:500ms", None),  # glued to another word: not a log line
    ("xs:7 tel:2.5", None),
    ("step:5/10 val_loss:3.2 train_time:ms", None),
])
def test_validation_lines_are_found_after_a_separator_only(line, point):
    assert LogParser().feed(line) == point


def test_a_nan_validation_never_reaches_the_target():
    r = parse_lines(["step:10/10 val_loss:nan train_time:5ms step_avg:1ms"], target=3.28)
    assert math.isnan(r["final_val_loss"]) and r["time_to_target_ms"] is None
    assert r["first_step_at_or_below_target"] is None


def test_a_validation_line_moves_the_live_state_but_not_the_train_loss():
    parser = LogParser()
    parser.feed("step:3/9 train_loss:4.5 train_time:300ms step_avg:100ms")
    parser.feed("step:4/9 val_loss:4.0 train_time:420ms step_avg:105ms")
    assert (parser.last_step, parser.total_steps, parser.last_train_time_ms, parser.last_train_loss) == \
        (4, 9, 420.0, 4.5)
    llmc = LogParser()
    llmc.feed("s:3 trl:5.5")
    llmc.feed("s:4 tel:5.0")
    assert (llmc.last_step, llmc.last_train_loss, llmc.total_steps, llmc.format) == (4, 5.5, None, "llmc")


def test_result_of_an_empty_log_and_its_steps_are_a_copy():
    parser = LogParser(target=2.0)
    assert parser.result() == {"format": None, "target": 2.0, "steps": [], "final_val_loss": None,
                               "final_train_time_ms": None, "first_step_at_or_below_target": None,
                               "time_to_target_ms": None}
    parser.feed("step:1/2 val_loss:1.5 train_time:10ms")
    parser.feed("step:2/2 val_loss:1.0 train_time:20ms")
    r = parser.result()
    assert (r["first_step_at_or_below_target"], r["time_to_target_ms"], r["final_train_time_ms"]) == (1, 10.0, 20.0)
    r["steps"].clear()
    assert len(parser.steps) == 2


def test_json_safe_writes_non_finite_numbers_as_strings():
    from orchestrator.speedrun.logparse import _json_safe
    assert _json_safe({"a": [1.5, float("nan"), {"b": float("inf")}], "c": None, "d": "x"}) == \
        {"a": [1.5, "nan", {"b": "inf"}], "c": None, "d": "x"}


# ---- job stop rules and the harness clock (pure: fed parsed lines) ----

from orchestrator.speedrun.job import HarnessClock, StopRules, stop_reason  # noqa: E402


def parsed(*lines, target=3.0):
    parser = LogParser(target)
    for line in lines:
        parser.feed(line)
    return parser


def val(step, loss, ms):
    return f"step:{step}/100 val_loss:{loss} train_time:{ms}ms step_avg:1ms"


def train(step, loss, ms):
    return f"step:{step}/100 train_loss:{loss} train_time:{ms}ms step_avg:1ms"


@pytest.mark.parametrize("lines, rules, wall_s, reason", [
    ((), StopRules(3.0), 0.0, None),
    ((val(1, 4.0, 10),), StopRules(3.0), 0.0, None),
    ((val(1, "nan", 10),), StopRules(3.0), 0.0, "nan"),
    ((train(1, "inf", 10),), StopRules(3.0), 0.0, "nan"),
    ((val(1, 2.9, 10), train(2, "nan", 20)), StopRules(3.0), 0.0, "nan"),  # nan comes before the target
    ((val(1, 3.0, 10),), StopRules(3.0), 0.0, "target_reached"),  # at the target counts
    ((val(1, 3.0, 10),), StopRules(3.0, stop_at_target=False), 0.0, None),
    ((val(1, 4.0, 10), val(2, 3.5, 20), val(3, 4.5, 30)), StopRules(3.0), 0.0, None),  # exactly the margin
    ((val(1, 4.0, 10), val(2, 3.5, 20), val(3, 4.6, 30)), StopRules(3.0), 0.0, "diverged"),
    ((val(1, 9.0, 10), val(2, 3.5, 20)), StopRules(3.0, diverge_margin=0.1), 0.0, None),  # falling is fine
    ((train(1, 4.0, 500),), StopRules(3.0, beat_time_ms=500), 0.0, "cannot_beat"),
    ((train(1, 4.0, 499),), StopRules(3.0, beat_time_ms=500), 0.0, None),
    ((val(1, 2.0, 600),), StopRules(3.0, stop_at_target=False, beat_time_ms=500), 0.0, None),  # reached in time
    ((), StopRules(3.0, timeout_s=10), 10.0, "timeout"),
    ((), StopRules(3.0, timeout_s=10), 9.9, None),
    ((train(1, 4.0, 600),), StopRules(3.0, beat_time_ms=500, timeout_s=1), 5.0, "cannot_beat"),
])
def test_stop_reason_rules_and_their_order(lines, rules, wall_s, reason):
    assert stop_reason(rules, parsed(*lines), wall_s) == reason


def clocked(timeline, target=3.0):
    """Feed (line, harness seconds) pairs the way run_job does; return (parser, clock)."""
    parser, clock = LogParser(target), HarnessClock()
    for line, now in timeline:
        before = (parser.last_step, parser.last_train_time_ms)
        point = parser.feed(line)
        timed = (parser.last_step, parser.last_train_time_ms) != before
        clock.feed(point, parser.last_train_time_ms if timed else None, now)
    return parser, clock


@pytest.mark.parametrize("timeline, flags", [
    # honest: 2 s printed over 2 s measured, the target line at 3.5 s claims 3 s
    ([(train(1, 4, 1000), 1.0), (train(2, 4, 3000), 3.0), (val(2, 2.9, 3000), 3.5)], []),
    # claims 2.6 s of training 1.5 s after the start (1 s of slack)
    ([(val(1, 2.9, 2600), 1.5)], ["claims_more_time_than_elapsed"]),
    ([(val(1, 2.9, 2500), 1.5)], []),  # within the slack
    # the target line says 4 s after a train line said 5 s
    ([(train(1, 4, 5000), 9.0), (val(1, 2.9, 4000), 9.5)], ["target_time_behind_train_time"]),
    # 0.5 s printed over 4 s measured: slower than half the harness's rate
    ([(train(1, 4, 1000), 1.0), (train(2, 4, 1500), 5.0), (val(2, 2.9, 1500), 5.0)], ["clock_slower_than_harness"]),
    # the same rate over 1.9 s measured is too short to judge
    ([(train(1, 4, 1000), 1.0), (train(2, 4, 1100), 2.9), (val(2, 2.9, 1100), 3.0)], []),
    # exactly 2 s measured is judged: 0.9 s printed < 1 s
    ([(train(1, 4, 1000), 1.0), (train(2, 4, 1900), 3.0), (val(2, 2.9, 1900), 3.0)], ["clock_slower_than_harness"]),
    ([(val(1, 3.5, 99999), 0.1)], []),  # never reached the target: nothing to judge
])
def test_harness_clock_flags(timeline, flags):
    parser, clock = clocked(timeline)
    assert clock.flags(parser) == flags


def test_harness_clock_judges_the_first_point_at_the_target():
    # the first target point is honest; a later lying one is not judged
    parser, clock = clocked([(val(1, 2.9, 1000), 5.0), (val(2, 2.8, 99000), 6.0)])
    assert clock.flags(parser) == []


def test_harness_clock_counts_only_forward_train_intervals():
    # a clock reset (train time going back) adds no interval
    _, clock = clocked([(train(1, 4, 5000), 1.0), (train(2, 4, 100), 2.0), (train(3, 4, 600), 3.0)])
    assert (clock.printed_ms, clock.measured_s) == (500.0, 1.0)


# ---- records: launch command, resources, script and data rules, loading ----

from orchestrator.speedrun import records as rec  # noqa: E402


def test_launch_command_for_python_one_node_and_several_nodes():
    one = Record("r", Path("/s/r.py"), launch=Launch(nproc_per_node=2, args=["--x", "1"]))
    assert rec.launch_command(one, python="py") == ["py", "-m", "torch.distributed.run", "--nproc_per_node=2",
                                                   "--standalone", "/s/r.py", "--x", "1"]
    assert rec.launch_command(one, script="/t/c.py", python="py")[-3:] == ["/t/c.py", "--x", "1"]
    plain = Record("r", Path("/s/r.py"), launch=Launch(launcher="python", args=["a"]))
    assert rec.launch_command(plain, python="py") == ["py", "/s/r.py", "a"]
    multi = Record("r", Path("/s/r.py"), launch=Launch(nproc_per_node=4, nnodes=2))
    assert rec.launch_command(multi, node_rank=1, master_addr="h", master_port=29500, python="py") == [
        "py", "-m", "torch.distributed.run", "--nproc_per_node=4", "--nnodes=2", "--node_rank=1",
        "--master_addr=h", "--master_port=29500", "/s/r.py"]
    with pytest.raises(ValueError, match="master_addr"):
        rec.launch_command(multi, master_addr="h", python="py")


def test_world_size_and_node_resources_scale_with_processes_per_node():
    r = Record("r", Path("r.py"), launch=Launch(nproc_per_node=3, nnodes=2), resources_per_process={"CPU": 2, "GPU": 1})
    assert r.world_size == 6 and r.node_resources() == {"CPU": 6, "GPU": 3}
    assert Record("r", Path("r.py")).node_resources() == {"CPU": 1}


def test_expand_replaces_known_variables_and_keeps_unknown_ones():
    assert rec._expand("${A}/x/${B}/${A}", {"A": "1"}) == "1/x/${B}/1"
    assert rec._expand("$A ${}", {"A": "1"}) == "$A ${}"


def test_launch_env_defaults_and_the_sandbox_base(tmp_path):
    env = launch_env(Record("r", Path("r.py")), base={"X": "1"})
    assert env == {"X": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    sandboxed = launch_env(Record("r", Path("r.py")), workdir=tmp_path)
    assert sandboxed["HOME"] == str(tmp_path) and not {"AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY"} & set(sandboxed)


def pinned_record(tmp_path, script_text, pinned=None, timed=()):
    script = tmp_path / "s.py"
    script.write_text(script_text)
    return Record("r", script, integrity=rec.Integrity(pinned_settings=pinned or {}, timed_region=list(timed)))


@pytest.mark.parametrize("text, problems", [
    ("val_tokens = 8192\n", []),
    ("val_tokens: int = 8192  # pinned\n", []),
    ("  val_tokens : int = 8192\n", []),
    ("val_tokens = 4096\n", ["pinned setting val_tokens = 4096, expected 8192"]),
    ("val_tokens = 8192\nval_tokens = 1\n", ["pinned setting val_tokens = 1, expected 8192"]),
    ("x = 1\n", ["pinned setting val_tokens is not assigned"]),
    ("my_val_tokens = 1\nval_tokens_x = 2\nval_tokens = 8192\n", []),  # other names are other settings
])
def test_check_script_pinned_settings(tmp_path, text, problems):
    assert rec.check_script(pinned_record(tmp_path, text, {"val_tokens": "8192"})) == problems


def test_check_script_timed_region_ignores_indentation_and_trailing_comments(tmp_path):
    r = pinned_record(tmp_path, "def f():\n    t0 = time.perf_counter()  # start\n", timed=["t0 = time.perf_counter()",
                                                                                          "  torch.cuda.synchronize()"])
    assert rec.check_script(r) == ["timed region line missing:   torch.cuda.synchronize()"]
    other = tmp_path / "other.py"
    other.write_text("t0 = time.perf_counter()\ntorch.cuda.synchronize()\n")
    assert rec.check_script(r, other) == []


def test_check_data_missing_wrong_and_right_hashes(tmp_path):
    data = tmp_path / "val.bin"
    data.write_bytes(b"abc")
    good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    r = Record("r", Path("r.py"), integrity=rec.Integrity(data_hashes={"${D}/val.bin": good, "${D}/gone.bin": good}))
    assert rec.check_data(r, {"D": str(tmp_path)}) == [f"data file missing: {tmp_path}/gone.bin"]
    data.write_bytes(b"abd")
    assert rec.check_data(r, {"D": str(tmp_path)})[0].startswith(f"data file {tmp_path}/val.bin has sha256 ")


def write_yaml(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return folder / f"{name}.yaml"


def test_load_record_defaults_and_string_values(tmp_path):
    path = write_yaml(tmp_path / "ladder", "02_x", "script: s.py\nlaunch: {env: {N: 4}, args: [1, 2]}\n"
                      "integrity: {pinned_settings: {val_tokens: 8192}}\n")
    r = rec.load_record(path)
    assert (r.name, r.order, r.target_val_loss, r.script) == ("ladder/02_x", 0, 3.28, (tmp_path / "ladder/s.py").resolve())
    assert (r.launch.env, r.launch.args, r.integrity.pinned_settings) == ({"N": "4"}, ["1", "2"], {"val_tokens": "8192"})
    assert r.resources_per_process == {"CPU": 1} and r.launch.launcher == "torchrun"


@pytest.mark.parametrize("text, why", [
    ("script: s.py\ncolour: red\n", "unknown record keys"),
    ("name: x\n", "needs a script"),
    ("script: s.py\nlaunch: {launcher: mpirun}\n", "launcher must be"),
    ("script: s.py\nlaunch: {launcher: python, nproc_per_node: 2}\n", "one process"),
])
def test_load_record_refuses_bad_specs(tmp_path, text, why):
    with pytest.raises(ValueError, match=why):
        rec.load_record(write_yaml(tmp_path, "r", text))


def test_load_records_orders_by_order_then_name_and_refuses_duplicates(tmp_path):
    write_yaml(tmp_path / "l", "a", "script: a.py\norder: 2\n")
    write_yaml(tmp_path / "l", "b", "script: b.py\norder: 1\n")
    write_yaml(tmp_path / "l", "c", "script: c.py\norder: 1\n")
    assert [r.name for r in rec.load_records(tmp_path / "l")] == ["l/b", "l/c", "l/a"]
    write_yaml(tmp_path / "l", "d", "script: d.py\nname: l/a\n")
    with pytest.raises(ValueError, match="duplicate"):
        rec.load_records(tmp_path / "l")


def test_confidence_reaches_the_log_scale_interval_the_speedup_and_the_ladder():
    s = summarize_positive([1.0, 4.0], confidence=0.5)
    half = sps.t.ppf(0.75, 1) * (math.log(4) / math.sqrt(2)) / math.sqrt(2)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((2 * math.exp(-half), 2 * math.exp(half)))
    half = sps.t.ppf(0.95, 2) * math.sqrt(0.08)  # the hand-worked speedup above, at 90%
    assert (speedup([4.0, 6.0], [2.0, 3.0], 0.9)["ci_low"], speedup([4.0, 6.0], [2.0, 3.0], 0.9)["ci_high"]) == \
        pytest.approx((2 * math.exp(-half), 2 * math.exp(half)))
    [step] = consecutive_speedups({"a": [4.0, 6.0], "b": [2.0, 3.0]}, confidence=0.9)
    assert (step["from"], step["to"], step["ci_low"]) == ("a", "b", pytest.approx(2 * math.exp(-half)))


# ---- replay summaries (pure: rows in, figures out) ----

def replay_row(record, repeat, t_ms, status="ok", mode="timed", final=None, attempt=0, steps=10, cpu=None):
    return {"record": record, "repeat": repeat, "mode": mode, "status": status, "time_to_target_ms": t_ms,
            "steps_to_target": steps, "final_val_loss": final, "attempt": attempt, "cpu_s_to_target": cpu}


def test_seconds_to_target_by_clock():
    from orchestrator.speedrun.replay import seconds_to_target
    assert seconds_to_target(replay_row("a", 0, 2500.0, cpu=7.5)) == 2.5
    assert seconds_to_target(replay_row("a", 0, 2500.0, cpu=7.5), "cpu") == 7.5
    assert seconds_to_target(replay_row("a", 0, None)) is None


def test_summarize_replay_counts_each_repeat_by_its_last_attempt_and_times_only_ok_runs():
    from orchestrator.speedrun.replay import summarize_replay
    rows = [replay_row("a", 0, 9000.0, status="failed", attempt=0), replay_row("a", 0, 4000.0, attempt=1),
            replay_row("a", 1, 1000.0), replay_row("a", 2, None, status="failed"),
            replay_row("b", 0, 2000.0), replay_row("b", 1, 2000.0),
            replay_row("a", 0, 5000.0, mode="full", final=3.27), replay_row("a", 1, 6000.0, mode="full", final=None)]
    out = summarize_replay(rows, [Record("b", Path("b.py")), Record("a", Path("a.py"), target_val_loss=3.28)])
    b, a = out["records"]
    assert (b["record"], b["runs"], b["ok"], b["time_to_target_s"]["mean"]) == ("b", 2, 2, 2.0)
    assert (a["record"], a["runs"], a["ok"]) == ("a", 5, 4)  # timed 0, 1, 2 and full 0, 1
    assert a["time_to_target_s"]["mean"] == pytest.approx(4.0)  # 4, 1, 5 and 6 s: the failed 9 s attempt was retried
    assert a["acceptance"]["n"] == 1 and a["acceptance"]["accepted"] is True  # one full run with a loss
    assert b["acceptance"] is None
    [step] = out["speedups"]
    assert (step["from"], step["to"]) == ("b", "a")
