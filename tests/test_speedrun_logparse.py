"""The speedrun log parser on the seven real modded-nanogpt logs (one per log-format era)."""
import json
import math
from pathlib import Path

import pytest

from orchestrator.speedrun.logparse import LogParser, main, parse_lines, parse_log

LOGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "modded-nanogpt-logs"
if not LOGS.is_dir():
    LOGS = Path("/work/shared/data/modded-nanogpt-logs")

# file: (format, number of val points, first val loss, final val loss, final train ms,
#        first step at or below 3.28, train ms at that step) -- read off the files by hand.
EXPECTED = {
    "2024-06-06_AdamW.log": ("llmc", 76, 10.968871, 3.275959, None, 9472, None),
    "2024-10-13_llmc.log": ("llmc", 80, 11.0092, 3.2722, None, 17250, None),
    "2024-10-14_ModernArch.txt": ("modded", 42, 16.0058, 3.2741, 910546.0, 5000, 892894.0),
    "2024-11-19_FlexAttention.txt": ("modded", 16, 10.8258, 3.2783, 301825.0, 1875, 301825.0),
    "2025-01-16_Sub3Min.txt": ("modded", 13, 10.8258, 3.2785, 179527.0, 1393, 179527.0),
    "2025-09-03_FA3.txt": ("modded", 15, 10.8258, 3.2780, 163618.0, 1670, 163618.0),
    "2026-07-17_FP8DownProjection.txt": ("modded", 7, 10.8328, 3.2767, 80693.0, 1390, 80693.0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_logs(name):
    fmt, n, first, final, final_ms, step_hit, ms_hit = EXPECTED[name]
    r = parse_log(LOGS / name, target=3.28)
    assert r["format"] == fmt
    assert len(r["steps"]) == n
    assert r["steps"][0]["step"] == 0 and r["steps"][0]["val_loss"] == pytest.approx(first)
    assert r["final_val_loss"] == pytest.approx(final)
    assert r["final_train_time_ms"] == final_ms
    assert r["first_step_at_or_below_target"] == step_hit
    assert r["time_to_target_ms"] == ms_hit
    steps = [p["step"] for p in r["steps"]]
    assert steps == sorted(steps)


def test_target_changes_crossing():
    r = parse_log(LOGS / "2024-10-14_ModernArch.txt", target=3.29)
    assert r["first_step_at_or_below_target"] == 4875  # 3.2857 at step 4875
    assert r["time_to_target_ms"] == 870349.0
    r = parse_log(LOGS / "2024-10-14_ModernArch.txt", target=3.0)
    assert r["first_step_at_or_below_target"] is None and r["time_to_target_ms"] is None


def test_live_parser_tracks_training_lines():
    p = LogParser(target=2.0)
    assert p.feed("step:1/100 train_time:17608ms step_avg:nanms") is None
    assert p.feed("[default0]:step:2/100 train_loss:3.5 train_time:17900ms step_avg:nanms") is None
    assert (p.last_step, p.last_train_time_ms, p.last_train_loss, p.total_steps) == (2, 17900.0, 3.5, 100)
    point = p.feed("step:10/100 val_loss:1.9 train_time:20000ms step_avg:2000.00ms")
    assert point == {"step": 10, "val_loss": 1.9, "train_time_ms": 20000.0}
    assert p.result()["time_to_target_ms"] == 20000.0
    assert p.feed("s:3 trl:nan") is None and math.isnan(p.last_train_loss)


def test_source_code_lines_are_not_points():
    lines = [
        'print0(f"step:{step}/{args.num_iterations} val_loss:{val_loss:.4f} train_time:{t:.0f}ms")',
        "    val_loss_every : int = 125 # every how many steps",
        "steps:12/100 val_loss:1.0 train_time:5ms",
    ]
    r = parse_lines(lines)
    assert r["format"] is None and r["steps"] == []


def test_nan_val_loss_parsed():
    r = parse_lines(["step:5/10 val_loss:nan train_time:50ms step_avg:10.00ms"])
    assert math.isnan(r["final_val_loss"])


def test_main_prints_json(capsys):
    assert main([str(LOGS / "2025-01-16_Sub3Min.txt"), "--target", "3.28"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "modded"
    assert out["first_step_at_or_below_target"] == 1393
    assert out["steps"][1] == {"step": 125, "val_loss": 4.4043, "train_time_ms": 14281.0}
