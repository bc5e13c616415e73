"""Runs an experiment: run folder, Ray, W&B, resume, progress, summary.

Follow a work unit: `experiment.units(cfg)` lists it; its key is the content hash of the
unit; if the run's results.jsonl has that key it is skipped, otherwise `experiment.execute`
runs it and the row is appended and fsynced at once; at the end `experiment.summarize`
reads the rows of this config's units (in unit order) and the runner writes summary.md,
summary.json and the plots, and logs them to W&B.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator import runtime
from orchestrator.config import ConfigError, RunConfig, config_hash, to_dict, to_yaml
from orchestrator.experiments import Experiment, get_experiment
from orchestrator.progress import Progress
from orchestrator.report import write_summary
from orchestrator.results import ResultStore, runs_root, unit_key, write_text_atomic
from orchestrator.tracking import Tracker


@dataclass
class RunContext:
    """What `execute` and `summarize` may use besides the config."""

    run_dir: Path
    run_id: str
    tracker: Tracker
    max_in_flight: int  # ray.max_in_flight: work units in flight at once; 0 = the experiment's default
    progress_mode: str
    log: Callable[[str], None]

    def in_flight(self, default: int) -> int:
        return self.max_in_flight or default


def resolve_run_dir(cfg: RunConfig) -> tuple[Path, str]:
    """The run folder, `<runs_dir>/<preset>/<run id>`. A `resume` or a named `run_id` that exists
    must have been made by this same config: otherwise its rows would be reported as this
    config's (raises ConfigError naming the key)."""
    base = runs_root(cfg.runs_dir) / cfg.preset
    chash = config_hash(cfg)
    if cfg.resume:
        run_dir = base / cfg.resume
        if not (run_dir / "config.yaml").exists():
            known = sorted(p.name for p in base.glob("*") if (p / "config.yaml").exists()) if base.exists() else []
            raise ConfigError("resume", cfg.resume, "allowed: existing runs of this preset: " + (", ".join(known) or "none"))
        key, run_id = "resume", cfg.resume
    else:
        key, run_id = "run_id", cfg.run_id or chash
        run_dir = base / run_id
    stored_file = run_dir / "config_hash"
    if stored_file.exists() and (stored := stored_file.read_text().strip()) != chash:
        raise ConfigError(key, run_id, f"that run has config hash {stored}, this config has {chash}; "
                          "use the run's own settings or another run id")
    return run_dir, run_id


def run(cfg: RunConfig, log: Callable[[str], None] = print) -> Path:
    """Runs (or resumes) the experiment `cfg` describes; returns the run folder."""
    experiment: Experiment = get_experiment(cfg.experiment)
    run_dir, run_id = resolve_run_dir(cfg)
    units = experiment.units(cfg)  # may still reject the config: nothing is on disk yet
    keys = [unit_key(experiment.name, u) for u in units]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{experiment.name}: two work units have the same content")

    run_dir.mkdir(parents=True, exist_ok=True)
    chash = config_hash(cfg)
    if not (run_dir / "config_hash").exists():  # written last: it marks the folder as this config's
        write_text_atomic(run_dir / "config.yaml", to_yaml(cfg))
        write_text_atomic(run_dir / "config_hash", chash + "\n")
    log(f"[scalerun] {cfg.preset}: run {run_id} in {run_dir}")

    runtime.connect(cfg.ray, log)
    tracker = Tracker(cfg, run_dir, run_id, chash, to_dict(cfg))
    store = ResultStore(run_dir / "results.jsonl")
    pending = [u for u, k in zip(units, keys) if k not in store]
    log(f"[scalerun] {len(units)} work units, {len(units) - len(pending)} already done, {len(pending)} to run")
    ctx = RunContext(run_dir, run_id, tracker, cfg.ray.max_in_flight, cfg.progress, log)
    progress = None if cfg.progress == "quiet" else Progress(experiment.name, len(units), cfg.progress,
                                                           done=len(units) - len(pending))
    started = time.time()
    exit_code = 1
    try:
        for unit, result in experiment.execute(cfg, pending, ctx):
            key = unit_key(experiment.name, unit)
            store.append(key, unit, result)
            tracker.log({f"unit/{k}": v for k, v in result.items() if isinstance(v, (int, float))})
            if progress:
                progress.advance()
        if progress:
            progress.close()
        rows = store.select(keys)
        missing = len(keys) - len(rows)
        if missing:
            raise RuntimeError(f"{missing} work units have no result after execute")
        summary = experiment.summarize(cfg, rows, ctx)
        meta = {"experiment": experiment.name, "preset": cfg.preset, "run_id": run_id, "config_hash": chash,
                "units": len(units), "units_run_now": len(pending),
                "wall_seconds_this_attempt": round(time.time() - started, 2),
                "wandb_mode": tracker.mode}
        write_summary(run_dir, summary, meta)
        tracker.log_summary(summary.scalars)
        for name, table in summary.tables.items():
            tracker.log_table(f"table/{name}", table)
        tracker.log_images({f"plot/{k}": p for k, p in summary.figures.items()})
        exit_code = 0
        log(f"[scalerun] done: {run_dir / 'summary.md'}")
    finally:
        store.close()
        tracker.finish(exit_code)
    return run_dir

