"""Weights & Biases, in one module: only the driver logs; actors return their metrics to it.

Offline unless an API key is configured (or `wandb.mode` / WANDB_MODE says otherwise), so a
laptop or CI run never needs the network; `wandb sync <run_dir>/wandb/offline-run-*` uploads
later. The run name is `<preset>-<config hash>`; the W&B group is the run id, so the
attempts of a resumed run sit together.
"""
from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from orchestrator.config import RunConfig


def resolve_mode(configured: str | None) -> str:
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError):
        pass
    return "offline"


class Tracker:
    def __init__(self, cfg: RunConfig, run_dir: Path, run_id: str, config_hash: str, config: dict):
        import wandb

        self._wandb = wandb
        self.mode = resolve_mode(cfg.wandb.mode)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or cfg.wandb.project,
            entity=os.environ.get("WANDB_ENTITY") or cfg.wandb.entity,
            name=f"{cfg.preset.replace('/', '-')}-{config_hash}",
            group=run_id,
            job_type=cfg.experiment,
            tags=list(cfg.wandb.tags),
            config=config,
            dir=os.environ.get("WANDB_DIR") or str(run_dir),
            mode=self.mode,
            settings=wandb.Settings(console="off", silent=True),
        )
        self.step = 0

    def log(self, metrics: dict[str, Any]) -> None:
        """Per-unit metrics and live curves; each call is one W&B step."""
        self.run.log(metrics, step=self.step)
        self.step += 1

    def log_table(self, name: str, rows: list[dict]) -> None:
        if not rows:
            return
        columns = list(dict.fromkeys(k for r in rows for k in r))
        data = [[_cell(r.get(c)) for c in columns] for r in rows]
        self.run.log({name: self._wandb.Table(columns=columns, data=data)}, step=self.step)

    def log_images(self, images: dict[str, Path]) -> None:
        if images:
            self.run.log({k: self._wandb.Image(str(p)) for k, p in images.items()}, step=self.step)

    def log_summary(self, scalars: dict[str, Any]) -> None:
        for k, v in scalars.items():
            self.run.summary[k] = v

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)


def _cell(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
