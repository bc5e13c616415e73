"""summary.md for people and summary.json for machines, written into every run folder."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from orchestrator.experiments import Summary
from orchestrator.results import write_json_atomic, write_text_atomic


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return "" if v is None else str(v)


def _cell(v: Any) -> str:
    """A table cell: line breaks (multi-step solutions) and pipes would end the row early."""
    return fmt(v).replace("|", "\\|").replace("\n", "<br>")


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "_(no rows)_\n"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_summary(run_dir: Path, summary: Summary, meta: dict) -> None:
    parts = [f"# {summary.title}\n"]
    parts.append("\n".join(f"- {k}: {fmt(v)}" for k, v in meta.items()) + "\n")
    if summary.notes:
        parts.append(summary.notes.strip() + "\n")
    if summary.scalars:
        parts.append("## Headline\n\n" + "\n".join(f"- {k}: {fmt(v)}" for k, v in summary.scalars.items()) + "\n")
    for name, rows in summary.tables.items():
        parts.append(f"## {name}\n\n" + markdown_table(rows))
    for name, path in summary.figures.items():
        parts.append(f"## {name}\n\n![{name}]({Path(path).relative_to(run_dir)})\n")
    write_text_atomic(run_dir / "summary.md", "\n".join(parts))
    write_json_atomic(run_dir / "summary.json", {
        **meta,
        "title": summary.title,
        "scalars": summary.scalars,
        "tables": summary.tables,
        "figures": {k: str(Path(p).relative_to(run_dir)) for k, p in summary.figures.items()},
    })


# What says how long one attempt took or which attempt it was: a resumed run and a refactor differ there only.
ATTEMPT_PARTS = ("wall", "seconds")
ATTEMPT_KEYS = ("run_id", "config_hash", "units_run_now")


def comparable_summary(value):
    """A summary.json without its attempt fields, for checking that two runs gave the same numbers."""
    if isinstance(value, dict):
        return {k: comparable_summary(v) for k, v in value.items()
                if k not in ATTEMPT_KEYS and not any(part in k for part in ATTEMPT_PARTS)}
    if isinstance(value, list):
        return [comparable_summary(v) for v in value]
    return value
