"""The test-time-compute sweep's plots: accuracy vs budget, by level, and the compute-optimal curve."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from orchestrator.plots import finish, plt


def accuracy_vs_budget(path: Path, rows: list[dict], x_key: str, title: str) -> Path:
    """One line per method with its 95% interval band; log2 x axis for N, log10 for FLOPs."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    by_method = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)
    for method, rs in sorted(by_method.items()):
        rs = sorted(rs, key=lambda r: r[x_key])
        x = [r[x_key] for r in rs]
        style = "k--" if method == "pass@n" else "o-"
        ax.plot(x, [r["accuracy"] for r in rs], style, label=method)
        ax.fill_between(x, [r["ci_low"] for r in rs], [r["ci_high"] for r in rs], alpha=0.12)
    ax.set_xscale("log", base=2 if x_key == "n" else 10)
    xlabel = {"n": "budget N (generations per problem)", "flops": "FLOPs per problem"}.get(x_key, x_key)
    return finish(fig, ax, path, xlabel, "accuracy", title)


def level_bars(path: Path, rows: list[dict], n: int) -> Path:
    """Accuracy per difficulty level at budget n, one bar per method."""
    rows = [r for r in rows if r["n"] == n]
    methods = sorted({r["method"] for r in rows})
    levels = sorted({r["level"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        acc = {r["level"]: r["accuracy"] for r in rows if r["method"] == m}
        ax.bar([lv + (i - len(methods) / 2 + 0.5) * width for lv in levels],
               [acc.get(lv, 0) for lv in levels], width, label=m)
    ax.set_xticks(levels)
    return finish(fig, ax, path, "difficulty level (1 = easiest)", "accuracy", f"accuracy by level at N={n}",
                  legend_size=7, grid=False, ncol=2)


def compute_optimal(path: Path, curve_rows: list[dict], accuracy_rows: list[dict]) -> Path:
    """The compute-optimal curve (per-level 2-fold CV choice) against each single method."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    by_method = defaultdict(list)
    for r in accuracy_rows:
        if r["method"] != "pass@n":
            by_method[r["method"]].append(r)
    for method, rs in sorted(by_method.items()):
        rs = sorted(rs, key=lambda r: r["n"])
        ax.plot([r["n"] for r in rs], [r["accuracy"] for r in rs], "-", alpha=0.5, label=method)
    for bins, style in (("oracle", "k-o"), ("predicted", "k:s")):
        rs = sorted((r for r in curve_rows if r["bins"] == bins), key=lambda r: r["n"])
        if rs:
            ax.plot([r["n"] for r in rs], [r["accuracy"] for r in rs], style, lw=2,
                    label=f"compute-optimal ({bins} bins)")
    ax.set_xscale("log", base=2)
    return finish(fig, ax, path, "budget N", "accuracy", "compute-optimal test-time scaling", legend_size=7)
