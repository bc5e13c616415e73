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

import dataclasses
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray
from ray.util.placement_group import PlacementGroup, placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from actors.trainer import TrainerActor
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.speedrun.job import StopRules, run_job
from orchestrator.speedrun.records import Record, check_integrity, launch_command, launch_env, prepare_data


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
    """One node's share of a record run; called by the trainer actor on that node.

    The script is checked against the record's integrity rules (pinned settings, timed region,
    data hashes) before anything runs: a violation fails the run with its reasons, untimed. Then
    it runs in the sandbox (`sandbox`; None only where a caller asks for no confinement) from a
    copy in its work folder (next to its log), with the data read-only.
    """

    record: Record
    log_path: str
    rules: StopRules
    env: dict[str, str]
    script: str | None = None
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    sandbox: SandboxConfig | None = None

    def __call__(self, stop_event: threading.Event, on_point: Callable[[dict], None]) -> dict:
        data_env = prepare_data(self.record)  # here, on this node: data paths may differ between nodes
        script = Path(self.script or self.record.script)
        problems = check_integrity(self.record, script, {**os.environ, **data_env})
        if problems:
            cmd = launch_command(self.record, script, self.node_rank, self.master_addr, self.master_port)
            return {**integrity_failure(cmd, self.log_path, problems), "node_rank": self.node_rank,
                    "sandbox": self.sandbox.mode if self.sandbox is not None else None}
        if self.sandbox is None:
            cmd = launch_command(self.record, script, self.node_rank, self.master_addr, self.master_port)
            env = launch_env(self.record, {**data_env, **self.env})
            result = run_job(cmd, env, self.log_path, self.rules, stop_event=stop_event, on_point=on_point,
                             cwd=str(script.parent))
        else:
            workdir = Path(self.log_path).with_suffix(".work").resolve()  # the run starts in it: no relative paths
            workdir.mkdir(parents=True, exist_ok=True)
            # The checked script runs from the work folder: its own folder may be closed to the
            # sandbox's user, and what runs is then exactly what was checked.
            checked = workdir / script.name
            shutil.copyfile(script, checked)
            cmd = launch_command(self.record, checked, self.node_rank, self.master_addr, self.master_port)
            gpus = {k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES",) if k in os.environ}  # Ray's share
            env = launch_env(self.record, {**data_env, **gpus, **self.env}, workdir=workdir)
            readable = [v for v in data_env.values() if os.path.exists(v)]  # the data, read-only
            result = run_job(cmd, env, self.log_path, self.rules, stop_event=stop_event, on_point=on_point,
                             cwd=str(workdir), sandbox=Sandbox(self.sandbox), ro_paths=sorted(set(readable)))
        return {**result, "node_rank": self.node_rank}


def integrity_failure(cmd: list[str], log_path, problems: list[str]) -> dict:
    """The result row of a run refused for breaking the record's rules: nothing ran or was timed."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(log_path).write_text("".join(f"integrity: {p}\n" for p in problems))
    return {"reason": "integrity", "status": "failed", "flags": [], "integrity": problems, "sandbox": None,
            "returncode": None, "signal": None, "time_to_target_ms": None, "steps_to_target": None, "steps": [],
            "final_val_loss": None, "final_train_time_ms": None, "log_format": None, "log_path": str(log_path),
            "wall_s": 0.0, "started_at": time.time(), "cmd": cmd}


class RecordRun:
    """One run of a record: its trainer actors (one per node) and their pending results."""

    def __init__(self, record: Record, pg: PlacementGroup, log_dir, rules: StopRules | None = None,
                 env: dict[str, str] | None = None, script: str | None = None, name: str = "run",
                 sandbox: SandboxConfig | None = None):
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
        if record.launch.nnodes > 1 and sandbox is not None:  # torchrun's rendezvous needs the host network
            sandbox = dataclasses.replace(sandbox, network=True)
        if record.launch.nnodes > 1:
            master_addr, master_port = ray.get(self.launchers[0].rendezvous_address.remote())
        self.refs = [
            launcher.run.remote(NodeJob(record, str(Path(log_dir) / f"{name}.node{i}.log"), rules, env or {},
                                        script, i, master_addr, master_port, sandbox))
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
