"""A tiny-world model series for task scaling laws: one recipe, five sizes.

Every model has the same shape rule (2 layers, FFN 4x the width, head dim 16), the same data
stream and the same step budget, and is the checkpoint at the end of it (evaluated once, not
selected); only the width changes, so N (non-embedding parameters,
32 x width^2) spans about 9x. Arithmetic is learned as a sharp phase transition, so a common
step budget spans near-zero to solid pass rates. Each model is trained once and cached next
to the tiny world's own checkpoints.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import content_hash
from orchestrator.progress import Progress

SERIES = {
    # 4,000 steps: the tiny world's own (larger) policy passes its phase transition at about
    # 2,500-3,000, so the smaller models here stop at different points of theirs.
    "default": {"widths": [32, 48, 64, 80, 96], "steps": 4000, "batch": 32, "lr": 3e-3},
    "test": {"widths": [16, 32, 48], "steps": 300, "batch": 16, "lr": 3e-3},
}


@dataclass(frozen=True)
class SeriesModel:
    name: str
    path: Path
    non_embedding_params: int
    train_seconds: float


def recipe(profile: str, width: int) -> dict:
    s = SERIES[profile]
    from orchestrator.tasks import arith

    return {"task_format": arith.FORMAT_VERSION, "seed": 0, "policy_hidden": width, "policy_layers": 2, "policy_ffn": 4 * width,
            "policy_head_dim": 16, "policy_lr": s["lr"], "policy_batch": s["batch"],
            "policy_steps": s["steps"], "policy_eval_every": s["steps"],
            "policy_max_pass1": 1.0, "val_per_level": 4, "val_samples": 2}


def build_series(profile: str = "default") -> list[SeriesModel]:
    """Trains (or loads from the cache) every model of the series, smallest first."""
    import torch

    from orchestrator.models import num_parameters
    from orchestrator.tinyworld.build import cache_root, save_policy
    from orchestrator.tinyworld.policy import train_policy
    from orchestrator.tinyworld.tokenizer import build_tokenizer

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(1)
    widths = SERIES[profile]["widths"]
    models = []
    for width in widths:
        r = recipe(profile, width)
        root = cache_root() / f"series-{profile}-w{width}-{content_hash(r, 10)}"
        if not (root / "stage.json").exists():
            progress = Progress(f"series {profile} width {width}", r["policy_steps"])
            started = time.time()
            model, _, history = train_policy(build_tokenizer(), r, lambda msg: None, progress.advance)
            progress.close()
            staging = root.parent / f"{root.name}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            save_policy(model, build_tokenizer(), staging)
            (staging / "stage.json").write_text(json.dumps({"history": history, "seconds": time.time() - started}))
            staging.rename(root)
        stage = json.loads((root / "stage.json").read_text())
        models.append(SeriesModel(f"w{width}", root, num_parameters(str(root), non_embedding=True),
                                  stage["seconds"]))
    return models
