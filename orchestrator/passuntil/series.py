"""A tiny-world model series for task scaling laws: one recipe, five sizes.

Every model has the same shape rule (2 layers, FFN 4x the width, head dim 16) and the same
data stream, and trains on tokens proportional to its parameters: N (non-embedding
parameters, 32 x width^2) spans 9x, and so do the steps, from 444 for width 32 to 4,000 for
width 96, each over its own cosine schedule. A model is the checkpoint at the end of its
budget (evaluated once, not selected). Arithmetic is learned as a sharp phase transition
after about 3,000 steps at this batch size, so the small models stay near zero while the
largest is in the middle of its transition: the regime PassUntil is for. Each model is
trained once and cached next to the tiny world's own checkpoints.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Empty

from orchestrator.config import content_hash
from orchestrator.progress import Progress
from orchestrator.tasks import arith

SERIES = {
    # largest_steps: the largest model's steps. With scale_steps the others' scale with their N;
    # the test series trains all three as long, since at its 300 steps a proportional budget
    # leaves the smallest model below any pass and the smoke test needs two on the fitted line.
    "default": {"widths": [32, 48, 64, 80, 96], "largest_steps": 4000, "scale_steps": True, "batch": 32, "lr": 3e-3},
    "test": {"widths": [16, 32, 48], "largest_steps": 300, "scale_steps": False, "batch": 16, "lr": 3e-3},
}


@dataclass(frozen=True)
class SeriesModel:
    name: str
    path: Path
    non_embedding_params: int
    train_seconds: float


def steps(profile: str, width: int) -> int:
    """Training steps of one width: proportional to its non-embedding parameters (so are its
    tokens, at a fixed batch) with scale_steps, else the same for every width."""
    s = SERIES[profile]
    scale = (width / max(s["widths"])) ** 2 if s["scale_steps"] else 1.0
    return round(s["largest_steps"] * scale)


def recipe(profile: str, width: int) -> dict:
    s = SERIES[profile]
    return {"task_format": arith.FORMAT_VERSION, "seed": 0, "policy_hidden": width, "policy_layers": 2, "policy_ffn": 4 * width,
            "policy_head_dim": 16, "policy_lr": s["lr"], "policy_batch": s["batch"],
            "policy_steps": steps(profile, width), "policy_eval_every": steps(profile, width),
            "policy_max_pass1": 1.0, "val_per_level": 4, "val_samples": 2}


def _root(profile: str, width: int) -> Path:
    from orchestrator.tinyworld.build import cache_root  # torch: only where models are built, not for SERIES
    return cache_root() / f"series-{profile}-w{width}-{content_hash(recipe(profile, width), 10)}"


def _train_one(profile: str, width: int, progress_queue) -> None:
    """Trains one width in its own process (one torch thread) and caches it."""
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch

    from orchestrator.tinyworld.build import save_policy, save_staged
    from orchestrator.tinyworld.policy import train_policy
    from orchestrator.tinyworld.tokenizer import build_tokenizer

    torch.set_num_threads(1)
    root, started = _root(profile, width), time.time()
    model, _, history = train_policy(build_tokenizer(), recipe(profile, width), lambda msg: None,
                                     progress_queue.put)
    seconds = time.time() - started

    def write(folder: Path) -> None:
        save_policy(model, build_tokenizer(), folder)
        (folder / "stage.json").write_text(json.dumps({"history": history, "seconds": seconds}))

    save_staged(root, write)


def build_series(profile: str = "default") -> list[SeriesModel]:
    """Trains (or loads from the cache) every model of the series, smallest first.

    Missing models train side by side, one process and one thread each, largest first so that
    the longest job never starts last.
    """
    from orchestrator.checkpoints import num_parameters  # torch: only where models are built, not for SERIES

    widths = SERIES[profile]["widths"]
    missing = sorted((w for w in widths if not (_root(profile, w) / "stage.json").exists()), reverse=True)
    if missing:
        _root(profile, missing[0]).parent.mkdir(parents=True, exist_ok=True)
        workers = min(len(missing), os.cpu_count() or 1)
        context = multiprocessing.get_context("spawn")
        progress = Progress(f"series {profile}: training {len(missing)} models on {workers} processes",
                            sum(steps(profile, width) for width in missing))
        with context.Manager() as manager, \
                ProcessPoolExecutor(workers, mp_context=context) as pool:
            queue = manager.Queue()
            jobs = [pool.submit(_train_one, profile, width, queue) for width in missing]
            while not all(job.done() for job in jobs):
                try:
                    progress.advance(queue.get(timeout=1.0))
                except Empty:
                    pass
            while not queue.empty():  # steps reported just before the last job ended
                progress.advance(queue.get())
            progress.close()
            for job in jobs:
                job.result()  # re-raises a worker's error
    models = []
    for width in widths:
        root = _root(profile, width)
        stage = json.loads((root / "stage.json").read_text())
        models.append(SeriesModel(f"w{width}", root, num_parameters(str(root), non_embedding=True),
                                  stage["seconds"]))
    return models
