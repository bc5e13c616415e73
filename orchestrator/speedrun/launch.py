"""Launching one run of a speedrun record on Ray: an all-or-nothing placement group, one trainer
actor per node, and the job each of them runs there.

A record runs as P processes on each of its N nodes. Its placement group has one bundle per node
holding all P processes' resources (P GPUs on GPU clusters), so the job gets all of its slots or
none: STRICT_PACK on one node, STRICT_SPREAD (one bundle per node) when it spans nodes. Each
node's trainer runs the record's unmodified script under torchrun (`NodeJob`).

A failed multi-process run is never restarted in place (a dead rank breaks its process group):
when any node's launcher ends, the others are stopped, and retrying means launching again.
Metrics are not logged here: the driver reads them from `RecordRun.progress()` and the result.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray
from ray.util.placement_group import PlacementGroup, placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.trainer import TrainerActor
from orchestrator.speedrun.job import StopRules, run_job
from orchestrator.speedrun.records import Record, launch_command, launch_env, prepare_data


def record_placement_group(record: Record, name: str = "") -> PlacementGroup:
    """All-or-nothing reservation for one run of `record` (wait on `.ready()` before launching)."""
    bundles = [record.node_resources() for _ in range(record.launch.nnodes)]
    strategy = "STRICT_PACK" if record.launch.nnodes == 1 else "STRICT_SPREAD"
    return placement_group(bundles, strategy=strategy, name=name)


def _bundle_options(bundle: dict[str, float]) -> dict:
    custom = {k: v for k, v in bundle.items() if k not in ("CPU", "GPU", "memory")}
    return {"num_cpus": bundle.get("CPU", 0), "num_gpus": bundle.get("GPU", 0), "resources": custom}


@dataclass
class NodeJob:
    """One node's share of a record run; called by the trainer actor on that node."""

    record: Record
    log_path: str
    rules: StopRules
    env: dict[str, str]
    script: str | None = None
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    def __call__(self, stop_event: threading.Event, on_point: Callable[[dict], None]) -> dict:
        cmd = launch_command(self.record, self.script, self.node_rank, self.master_addr, self.master_port)
        data_env = prepare_data(self.record)  # here, on this node: data paths may differ between nodes
        result = run_job(cmd, launch_env(self.record, {**data_env, **self.env}), self.log_path, self.rules,
                         stop_event=stop_event, on_point=on_point, cwd=str(Path(self.record.script).parent))
        return {**result, "node_rank": self.node_rank}


class RecordRun:
    """One run of a record: its trainer actors (one per node) and their pending results."""

    def __init__(self, record: Record, pg: PlacementGroup, log_dir, rules: StopRules | None = None,
                 env: dict[str, str] | None = None, script: str | None = None, name: str = "run"):
        self.record = record
        rules = rules or StopRules(target=record.target_val_loss)
        bundles = pg.bundle_specs
        if len(bundles) != record.launch.nnodes:
            raise ValueError(f"{record.name} needs {record.launch.nnodes} bundles, placement group has {len(bundles)}")
        self.launchers = [
            TrainerActor.options(**_bundle_options(bundle), scheduling_strategy=PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=i)).remote()
            for i, bundle in enumerate(bundles)
        ]
        master_addr = master_port = None
        if record.launch.nnodes > 1:
            master_addr, master_port = ray.get(self.launchers[0].rendezvous_address.remote())
        self.refs = [
            launcher.run.remote(NodeJob(record, str(Path(log_dir) / f"{name}.node{i}.log"), rules, env or {},
                                        script, i, master_addr, master_port))
            for i, launcher in enumerate(self.launchers)
        ]

    def progress(self) -> list[dict]:
        """Validation points printed so far (by node 0, where rank 0 prints)."""
        return ray.get(self.launchers[0].progress.remote())

    def stop(self) -> None:
        """Ask every node's launcher to stop its job (they then kill their process trees)."""
        for launcher in self.launchers:
            launcher.stop.remote()

    def wait(self, timeout_s: float | None = None) -> dict:
        """Node 0's result, with every node's result under "nodes". The others are stopped once
        node 0 ends (it holds rank 0, which decides; after up to 30 s more when it exited cleanly)
        or once any node fails (a dead rank breaks the process group). The launcher actors are
        released afterwards.

        timeout_s bounds the wait (the job's own timeout is in its StopRules); on TimeoutError the
        run is still going and wait() may be called again.
        """
        pending = list(self.refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=timeout_s)
            if not done:
                raise TimeoutError(f"{self.record.name}: not finished within {timeout_s} s")
            if done[0] == self.refs[0] or ray.get(done[0])["returncode"] != 0:
                break
        node0_done = self.refs[0] not in pending
        if pending and node0_done and ray.get(self.refs[0])["returncode"] == 0:  # a clean finish: others exit too
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=30)
        try:
            if pending:
                self.stop()
            results = ray.get(self.refs)
        finally:
            for launcher in self.launchers:
                ray.kill(launcher)
        return {**results[0], "record": self.record.name, "nodes": results}
