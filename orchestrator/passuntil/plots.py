"""PassUntil plots: the Eq. (3) line on log(-log PU) axes, and fixed-K vs PassUntil."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator.passuntil.fit import loglog
from orchestrator.plots import finish, plt


def scaling_law(path: Path, model_rows: list[dict], fit) -> Path:
    """Measured PU per model (intervals), the fitted line, and the held-out prediction (the
    points alone when `fit` is None: no line could be drawn)."""
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    x = np.log([r["params"] for r in model_rows])
    y = loglog([r["pu"] for r in model_rows])
    # log(-log) is decreasing in PU: the interval's high PU is the low end on this axis.
    lo, hi = loglog([r["pu_high"] for r in model_rows]), loglog([r["pu_low"] for r in model_rows])
    yerr = np.nan_to_num(np.stack([y - lo, hi - y]))
    ax.errorbar(x[:-1], y[:-1], yerr=yerr[:, :-1], fmt="o", color="C0", label="measured (fitted)")
    ax.errorbar(x[-1:], y[-1:], yerr=yerr[:, -1:], fmt="s", color="C3", label="measured (held out)")
    if fit is not None:
        grid = np.linspace(x.min() - 0.1, x.max() + 0.1, 50)
        ax.plot(grid, fit.intercept + fit.slope * grid, "k--", label=f"fit: slope {fit.slope:.2f}")
        ax.plot([x[-1]], [loglog([fit.prediction.predicted])[0]], "r*", ms=14, label="predicted (held out)")
    return finish(fig, ax, path, "log N (non-embedding parameters)", "log(-log PU)",
                  "task scaling law (Hu et al. 2023, Eq. 3)")


def fixed_vs_passuntil(path: Path, model_rows: list[dict], fixed_k: int) -> Path:
    """Fixed-K pass@1 reads 0 where PassUntil still resolves the trend (log y axis)."""
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    n = [r["params"] for r in model_rows]
    ax.errorbar(n, [r["pu"] for r in model_rows],
                yerr=[[r["pu"] - r["pu_low"] for r in model_rows], [r["pu_high"] - r["pu"] for r in model_rows]],
                fmt="o-", label="PassUntil PU")
    floor = 0.5 / (fixed_k * max(1, len(model_rows)))
    fixed = [max(r["fixed_k_pass1"], floor) for r in model_rows]
    ax.plot(n, fixed, "s--", label=f"fixed K={fixed_k} pass@1 (0 drawn at the floor)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return finish(fig, ax, path, "N (non-embedding parameters)", "pass rate")
