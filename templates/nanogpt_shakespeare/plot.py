"""Plots of every run in this folder: `python plot.py` (run from the folder holding run_0, run_1, ...).

Writes val_loss.png (validation loss against step, one line per run and seed) and
final_val_loss.png (final validation loss per run, with its stderr over seeds).
"""
import json
import os
from pathlib import Path

os.environ.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")  # the home folder may be read-only
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def run_number(path):
    return int(path.name.split("_", 1)[1])


def main():
    runs = sorted((p for p in Path(".").glob("run_*") if p.name.split("_", 1)[1].isdigit()
                   and (p / "final_info.json").is_file()), key=run_number)
    if not runs:
        raise SystemExit("no run_i/final_info.json found")
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        if (run / "curves.json").is_file():
            for seed, curve in json.loads((run / "curves.json").read_text()).items():
                ax.plot([c[0] for c in curve], [c[2] for c in curve], marker="o", label=f"{run.name} seed {seed}")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats/byte)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("val_loss.png", dpi=100)

    names, means, errs = [], [], []
    for run in runs:
        info = json.loads((run / "final_info.json").read_text())
        dataset = next(iter(info.values()))
        names.append(run.name)
        means.append(dataset["means"]["final_val_loss"])
        errs.append(dataset.get("stderrs", {}).get("final_val_loss", 0.0))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, means, yerr=errs, capsize=4)
    ax.set_ylabel("final validation loss (nats/byte)")
    ax.set_ylim(min(means) * 0.95, max(means) * 1.02)
    fig.tight_layout()
    fig.savefig("final_val_loss.png", dpi=100)


if __name__ == "__main__":
    main()
