"""Parse NanoGPT speedrun training logs of every era, whole files or live line by line.

Two formats of validation lines exist:
- llm.c era (2024-06): `s:{step} tel:{val_loss}` (training lines are `s:{step} trl:{loss} ...`);
  these logs carry no train time, so times are None.
- modded-nanogpt (2024-10 on): `step:{s}/{N} val_loss:{x} train_time:{ms}ms step_avg:{ms}ms`,
  with training lines `step:{s}/{N} [train_loss:{x} ]train_time:{ms}ms step_avg:{ms}ms`.
Logs open with the script's source; its format strings hold `{step}` rather than digits, so the
patterns below (which need digits) never match it. Patterns are searched, not anchored, so a
launcher prefix such as `[default0]:` does not hide a line.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys

DEFAULT_TARGET = 3.28

_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
_LLMC_VAL = re.compile(r"(?:^|[\s\]:])s:(\d+) tel:" + _NUM)
_LLMC_TRAIN = re.compile(r"(?:^|[\s\]:])s:(\d+) trl:" + _NUM)
_STEP_VAL = re.compile(r"(?:^|[\s\]:])step:(\d+)/(\d+) val_loss:" + _NUM + r" train_time:([0-9.]+)ms")
_STEP_TRAIN = re.compile(r"(?:^|[\s\]:])step:(\d+)/(\d+) (?:train_loss:" + _NUM + r" )?train_time:([0-9.]+)ms")


class LogParser:
    """Incremental parser: feed it lines as they arrive, read `result()` at any time.

    Besides validation points it tracks the latest step, train time and train loss of any line,
    which the live trainer needs to stop a run that is NaN or can no longer beat a time.
    """

    def __init__(self, target: float = DEFAULT_TARGET):
        self.target = target
        self.format: str | None = None  # "llmc" or "modded" once a training line is seen
        self.steps: list[dict] = []  # validation points {step, val_loss, train_time_ms}
        self.total_steps: int | None = None
        self.last_step: int | None = None
        self.last_train_time_ms: float | None = None
        self.last_train_loss: float | None = None

    def feed(self, line: str) -> dict | None:
        """Parse one line; returns the validation point if the line was one, else None."""
        if m := _STEP_VAL.search(line):
            self.format = "modded"
            step, total, loss, ms = int(m[1]), int(m[2]), float(m[3]), float(m[4])
            self.total_steps, self.last_step, self.last_train_time_ms = total, step, ms
            point = {"step": step, "val_loss": loss, "train_time_ms": ms}
            self.steps.append(point)
            return point
        if m := _STEP_TRAIN.search(line):
            self.format = "modded"
            self.total_steps, self.last_step = int(m[2]), int(m[1])
            self.last_train_time_ms = float(m[4])
            if m[3] is not None:
                self.last_train_loss = float(m[3])
            return None
        if m := _LLMC_VAL.search(line):
            self.format = "llmc"
            self.last_step = int(m[1])
            point = {"step": int(m[1]), "val_loss": float(m[2]), "train_time_ms": None}
            self.steps.append(point)
            return point
        if m := _LLMC_TRAIN.search(line):
            self.format = "llmc"
            self.last_step, self.last_train_loss = int(m[1]), float(m[2])
        return None

    def first_at_or_below_target(self) -> dict | None:
        return next((p for p in self.steps if p["val_loss"] <= self.target), None)

    def result(self) -> dict:
        first = self.first_at_or_below_target()
        last = self.steps[-1] if self.steps else None
        return {
            "format": self.format,
            "target": self.target,
            "steps": list(self.steps),
            "final_val_loss": last["val_loss"] if last else None,
            "final_train_time_ms": last["train_time_ms"] if last else None,
            "first_step_at_or_below_target": first["step"] if first else None,
            "time_to_target_ms": first["train_time_ms"] if first else None,
        }


def parse_lines(lines, target: float = DEFAULT_TARGET) -> dict:
    parser = LogParser(target)
    for line in lines:
        parser.feed(line)
    return parser.result()


def parse_log(path, target: float = DEFAULT_TARGET) -> dict:
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_lines(f, target)


def _json_safe(x):
    """JSON has no NaN; write non-finite losses as strings ("nan", "inf")."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def main(argv=None) -> int:
    """`scalerun speedrun parse <log> [--target 3.28]`: print the parsed log as JSON."""
    ap = argparse.ArgumentParser(prog="scalerun speedrun parse", description=main.__doc__)
    ap.add_argument("log")
    ap.add_argument("--target", type=float, default=DEFAULT_TARGET)
    args = ap.parse_args(argv)
    result = parse_log(args.log, args.target)
    json.dump(_json_safe(result), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0 if result["format"] else 1


if __name__ == "__main__":
    sys.exit(main())
