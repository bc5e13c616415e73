"""Speedrun plots: validation loss vs train time per run, and speedups with intervals."""
from __future__ import annotations

from pathlib import Path

from orchestrator.plots import plt, save


def curves(path: Path, results: list[dict]) -> Path:
    """One line per run (a colour per record), the target as a dashed line."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {}
    for r in results:
        points = [p for p in r.get("steps") or [] if p.get("val_loss") is not None]
        if not points:
            continue
        colour = colours.setdefault(r["record"], f"C{len(colours) % 10}")
        ax.plot([p["train_time_ms"] / 1000 for p in points], [p["val_loss"] for p in points], color=colour,
                alpha=0.8, label=r["record"] if r["repeat"] == min(x["repeat"] for x in results
                                                                   if x["record"] == r["record"]) else None)
    ax.set_xlabel("train time (s)")
    ax.set_ylabel("validation loss")
    ax.set_title("validation loss vs train time, every run")
    ax.grid(alpha=0.3)
    if colours:
        ax.legend(fontsize=7)
    return save(fig, path)


def speedups(path: Path, rows: list[dict]) -> Path:
    """Speedup of each record over the one before, with its 95% interval."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    labels = [f"{r['from'].split('/')[-1]}\n-> {r['to'].split('/')[-1]}" for r in rows]
    values = [r["speedup"] or 0 for r in rows]
    low = [max(0.0, v - (r["ci_low"] if r["ci_low"] is not None else v)) for v, r in zip(values, rows)]
    high = [max(0.0, (r["ci_high"] if r["ci_high"] is not None else v) - v) for v, r in zip(values, rows)]
    ax.bar(range(len(rows)), values, yerr=[low, high], capsize=4, color="C0")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("speedup (time to target)")
    ax.set_title("speedup over the previous record (95% interval)")
    return save(fig, path)
