"""A small plug-in experiment the foundation tests run: deterministic values, optional sleep.

It is loaded as `experiment: tests/fixture_experiment.py:EXPERIMENT`, the way a user plugs in
an experiment of their own.
"""
import os
import random
import time
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from orchestrator.config import ConfigError, RunConfig  # noqa: E402
from orchestrator.experiments import Experiment, Summary  # noqa: E402
from orchestrator.runtime import two_per_cpu  # noqa: E402
from orchestrator.scheduler import ray_map  # noqa: E402


@dataclass
class FixtureConfig(RunConfig):
    items: int = 12
    scale: float = 1.0
    sleep: float = 0.0  # does not affect results, so it is not part of a unit

    def validate(self):
        super().validate()
        if self.items <= 0:
            raise ConfigError("items", self.items, "must be a positive int")


def units(cfg):
    return [{"id": i, "scale": cfg.scale, "seed": cfg.seed} for i in range(cfg.items)]


def work(cfg, unit):
    time.sleep(cfg.sleep)
    rng = random.Random(f"{unit['seed']}-{unit['id']}")
    return {"value": rng.random() * unit["scale"], "pid": os.getpid()}


def execute(cfg, pending, ctx):
    yield from ray_map(work, cfg, pending, ctx.in_flight(two_per_cpu()), num_cpus=0.5)


def summarize(cfg, rows, ctx):
    values = [r.result["value"] for r in rows]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([r.unit["id"] for r in rows], values, "o")
    path = ctx.run_dir / "values.png"
    fig.savefig(path)
    plt.close(fig)
    return Summary(title="fixture", scalars={"mean_value": sum(values) / len(values), "n": len(values)},
                   tables={"values": [{"id": r.unit["id"], "value": r.result["value"]} for r in rows]},
                   figures={"values": path})


EXPERIMENT = Experiment("fixture", FixtureConfig, units, execute, summarize)
