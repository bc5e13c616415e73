"""The one place that starts or joins Ray.

Under `ray job submit`, or with RAY_ADDRESS / `ray.address` set, the driver joins that
cluster; otherwise it starts a local instance sized to the machine (no dashboard: it halves
memory on a laptop). Nothing else in the project calls `ray.init`.
"""
from __future__ import annotations

import os
import sys

import ray

from orchestrator.config import RayConfig


def connect(cfg: RayConfig, log=print) -> dict:
    """Joins or starts Ray and returns the cluster's total resources."""
    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS")
        if address or os.environ.get("RAY_JOB_SUBMISSION_ID"):
            ray.init(address=address or "auto", log_to_driver=True)
            where = f"cluster at {address or 'auto'}"
        else:
            ray.init(num_cpus=cfg.num_cpus or os.cpu_count(), include_dashboard=False,
                     log_to_driver=True)
            where = "local Ray instance"
        resources = ray.cluster_resources()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        shown = ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items())
                          if k in ("CPU", "GPU") or not (k.startswith("node:") or k.endswith("memory")))
        log(f"[ray] {where}: {len(nodes)} node(s), {shown}")
    return ray.cluster_resources()


def two_per_cpu() -> int:
    """The default number of independent work units in flight: two per CPU of the cluster."""
    return max(2, int(ray.cluster_resources().get("CPU", 1)) * 2)


def shutdown() -> None:
    """Leaves Ray; a local instance started here is stopped with it."""
    if ray.is_initialized():
        ray.shutdown()
    sys.stdout.flush()
