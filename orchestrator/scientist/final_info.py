"""final_info.json, the template's results file: `{dataset: {"means": {name: number},
"stderrs": {name: number}}}`. Read back untrusted, so checked before anything uses it."""
from __future__ import annotations

import json
import math


class BadResults(ValueError):
    """final_info.json that breaks the schema; the message says where."""


def check_final_info(data: bytes) -> dict:
    try:
        info = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadResults(f"final_info.json is not JSON: {e}") from None
    if not isinstance(info, dict) or not info:
        raise BadResults("final_info.json must be a non-empty object of datasets")
    for dataset, entry in info.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("means"), dict):
            raise BadResults(f"final_info.json: {dataset!r} needs a 'means' object")
        for part in ("means", "stderrs"):
            for name, value in (entry.get(part) or {}).items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise BadResults(f"final_info.json: {dataset}.{part}.{name} is not a number: {value!r}")
    return info


def metric_value(info: dict | None, metric: str) -> float | None:
    """The metric's mean in the first dataset that reports it (None: none does, or not finite)."""
    for entry in (info or {}).values():
        value = entry["means"].get(metric)
        if value is not None:
            return float(value) if math.isfinite(value) else None
    return None


def brief(info: dict | None) -> str:
    """One line: dataset: name=mean±stderr, ..."""
    if not info:
        return "none"
    parts = []
    for dataset, entry in info.items():
        errs = entry.get("stderrs") or {}
        shown = ", ".join(f"{k}={v:.6g}" + (f"±{errs[k]:.2g}" if k in errs else "") for k, v in entry["means"].items())
        parts.append(f"{dataset}: {shown}")
    return "; ".join(parts)
