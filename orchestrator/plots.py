"""Matplotlib set up for run folders and W&B (Agg backend: no display needed), shared by every
experiment's plots."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def finish(fig, ax, path: Path, xlabel: str, ylabel: str, title: str = "", legend_size: int = 8,
           grid: bool = True, **legend) -> Path:
    """Label one axes (a light grid, a small legend) and save its figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if grid:
        ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size, **legend)
    return save(fig, path)
