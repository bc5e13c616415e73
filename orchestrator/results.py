"""Durable results: one run folder per run, an append-only JSONL of rows keyed by unit hash.

A row is written and fsynced as soon as its unit finishes, so a killed driver loses at most
the unit in flight; a torn last line (the kill landed mid-write) is ignored on reading. A
resumed run skips every unit whose key is already in the file, so no unit is counted twice.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from orchestrator.config import content_hash


def unit_key(experiment: str, unit: dict) -> str:
    """The content hash of a work unit: every field that affects its result, and its kind."""
    return content_hash({"experiment": experiment, **unit}, 20)


def runs_root(configured: str | None) -> Path:
    return Path(configured or os.environ.get("SCALERUN_RUNS_DIR") or "runs").expanduser()


@dataclass
class Row:
    key: str
    unit: dict
    result: dict
    finished_at: float


class ResultStore:
    """Rows of one run, read from and appended to `results.jsonl`."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, Row] = {}
        if path.exists():
            self._load()
        self._file = open(path, "a", encoding="utf-8")

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        good_end = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn tail: the writer was killed mid-line
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                break
            good_end += len(line)
            self.rows.setdefault(d["key"], Row(d["key"], d["unit"], d["result"], d["finished_at"]))
        if good_end < len(data):  # cut the torn tail so the next append starts on a clean line
            with open(self.path, "r+b") as f:
                f.truncate(good_end)

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def append(self, key: str, unit: dict, result: dict) -> Row:
        if key in self.rows:
            raise ValueError(f"unit {key} already has a result")
        row = Row(key, unit, result, time.time())
        self._file.write(json.dumps(row.__dict__, default=_jsonable) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows[key] = row
        return row

    def select(self, keys: Iterable[str]) -> list[Row]:
        """Rows for these keys, in the given order (units of other configs are ignored)."""
        return [self.rows[k] for k in keys if k in self.rows]

    def close(self) -> None:
        self._file.close()


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "__dict__"):
        return x.__dict__
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
