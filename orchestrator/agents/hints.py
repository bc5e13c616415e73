"""Hints per record transition: `<folder>/<record i>-<record i+1>/level<N>.md` (stems of the record
names), level 1 pseudo-code, 2 a text description, 3 a mini-paper; level 0 is no hint."""
from __future__ import annotations

from pathlib import Path

LEVELS = (0, 1, 2, 3)


def hint_path(folder, record: str, next_record: str, level: int) -> Path:
    stem = lambda name: name.rsplit("/", 1)[-1]  # noqa: E731
    return Path(folder) / f"{stem(record)}-{stem(next_record)}" / f"level{level}.md"


def load_hint(folder, record: str, next_record: str, level: int) -> str:
    """The hint's text ("" at level 0); a missing file raises FileNotFoundError."""
    if level not in LEVELS:
        raise ValueError(f"hint level must be one of {LEVELS}, got {level}")
    return "" if level == 0 else hint_path(folder, record, next_record, level).read_text()
