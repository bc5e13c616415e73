"""Speedrun records: a training script plus how to launch it, its target, and its integrity rules.

A record is one YAML file next to its script, for example `records/shakespeare/01_adamw.yaml`:

    name: shakespeare/01_adamw        # defaults to <folder name>/<yaml stem>
    order: 1                          # position in the ladder (records are compared in this order)
    script: 01_adamw.py               # relative to the YAML file; may use ${VAR} of os.environ
    target_val_loss: 2.30
    launch:
      nproc_per_node: 1               # processes per node (1 GPU each on GPU clusters)
      nnodes: 1
      env: {OMP_NUM_THREADS: "1"}     # values may use ${VAR} of the launch environment
      args: []                        # extra script arguments
      launcher: torchrun              # or python (one process, no torchrun start-up)
    resources_per_process: {CPU: 1}   # Ray resources one process needs ({GPU: 1} on GPUs)
    data_prep: orchestrator.speedrun.shakespeare_data:prepare   # optional "module:function"
    integrity:
      data_hashes: {"${SHAKESPEARE_DATA_DIR}/val.bin": <sha256>}
      pinned_settings: {val_tokens: "32768"}   # assignments the script may not change
      timed_region: ["t0 = time.perf_counter()"]  # lines that must appear (comments aside)

`data_prep` names a function `prepare() -> dict[str, str]` that makes the data available and
returns environment variables (for example the data folder) to add to the launch environment.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.sandbox import clean_env


@dataclass
class Launch:
    nproc_per_node: int = 1
    nnodes: int = 1
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    # "torchrun" (always works), or "python" for single-process scripts that run without
    # torchrun: it skips torchrun's start-up, seconds on a busy CPU machine.
    launcher: str = "torchrun"


@dataclass
class Integrity:
    data_hashes: dict[str, str] = field(default_factory=dict)  # path (may hold ${VAR}) -> sha256
    pinned_settings: dict[str, str] = field(default_factory=dict)  # name -> literal value
    timed_region: list[str] = field(default_factory=list)  # lines the script must contain


@dataclass
class Record:
    name: str
    script: Path
    order: int = 0
    target_val_loss: float = 3.28
    launch: Launch = field(default_factory=Launch)
    resources_per_process: dict[str, float] = field(default_factory=lambda: {"CPU": 1})
    data_prep: str | None = None
    integrity: Integrity = field(default_factory=Integrity)
    description: str = ""

    @property
    def world_size(self) -> int:
        return self.launch.nproc_per_node * self.launch.nnodes

    def node_resources(self) -> dict[str, float]:
        """Ray resources of one node's share of the job: P processes' worth."""
        return {k: v * self.launch.nproc_per_node for k, v in self.resources_per_process.items()}


def load_record(path) -> Record:
    path = Path(path).resolve()
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - set(Record.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown record keys {sorted(unknown)}")
    if "script" not in spec:
        raise ValueError(f"{path}: a record needs a script")
    launch = Launch(**(spec.get("launch") or {}))
    if launch.launcher not in ("torchrun", "python"):
        raise ValueError(f"{path}: launcher must be torchrun or python, got {launch.launcher!r}")
    if launch.launcher == "python" and launch.nproc_per_node * launch.nnodes != 1:
        raise ValueError(f"{path}: launcher python runs one process; use torchrun for {launch.nproc_per_node}")
    launch.env = {k: str(v) for k, v in launch.env.items()}
    launch.args = [str(a) for a in launch.args]
    integrity = Integrity(**(spec.get("integrity") or {}))
    integrity.pinned_settings = {k: str(v) for k, v in integrity.pinned_settings.items()}
    return Record(
        name=spec.get("name", f"{path.parent.name}/{path.stem}"),
        script=(path.parent / _expand(spec["script"], os.environ)).resolve(),
        order=int(spec.get("order", 0)),
        target_val_loss=float(spec.get("target_val_loss", 3.28)),
        launch=launch,
        resources_per_process=dict(spec.get("resources_per_process") or {"CPU": 1}),
        data_prep=spec.get("data_prep"),
        integrity=integrity,
        description=spec.get("description", ""),
    )


def load_records(folder) -> list[Record]:
    """All records of a folder (one YAML per record), in ladder order."""
    records = [load_record(p) for p in sorted(Path(folder).glob("*.yaml"))]
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        raise ValueError(f"{folder}: duplicate record names {names}")
    return sorted(records, key=lambda r: (r.order, r.name))


def prepare_data(record: Record) -> dict[str, str]:
    """Run the record's data preparation; returns the environment variables it asks for."""
    if not record.data_prep:
        return {}
    module, _, func = record.data_prep.partition(":")
    return dict(getattr(importlib.import_module(module), func)())


def launch_env(record: Record, extra: dict[str, str] | None = None, base: dict | None = None,
               workdir=None) -> dict[str, str]:
    """The environment a record's processes run with: base, then the record's env with ${VAR}
    expanded against it, then `extra` (seed, data folder) last. The base defaults to os.environ,
    or, for a sandboxed run (given its work folder), to nothing of the host's: `clean_env(workdir)`
    (PATH, HOME = the work folder, LANG, TMPDIR), so no API key or credential reaches the job.

    One thread per process and passive OpenMP waiting unless the record or caller says otherwise:
    spinning OpenMP threads make a shared machine several times slower.
    """
    if base is None:
        base = os.environ if workdir is None else clean_env(workdir)
    env = dict(base)
    env.update({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    for k, v in record.launch.env.items():
        env[k] = _expand(v, env)
    env.update(extra or {})
    return env


def launch_command(record: Record, script=None, node_rank: int = 0, master_addr: str | None = None,
                   master_port: int | None = None, python: str = sys.executable) -> list[str]:
    """The command that runs the (unmodified) script as P processes on one node of the job.

    torchrun on one node: `--standalone` (torchrun picks a free port itself, so jobs can share a
    machine). Several nodes: a static rendezvous at master_addr:master_port with this node's rank.
    """
    launch = record.launch
    if launch.launcher == "python":
        return [python, str(script or record.script), *launch.args]
    cmd = [python, "-m", "torch.distributed.run", f"--nproc_per_node={launch.nproc_per_node}"]
    if launch.nnodes == 1:
        cmd.append("--standalone")
    else:
        if master_addr is None or master_port is None:
            raise ValueError(f"{record.name} spans {launch.nnodes} nodes: pass master_addr and master_port")
        cmd += [f"--nnodes={launch.nnodes}", f"--node_rank={node_rank}",
                f"--master_addr={master_addr}", f"--master_port={master_port}"]
    return cmd + [str(script or record.script), *launch.args]


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], m[0]), value)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_data(record: Record, env: dict[str, str]) -> list[str]:
    """Violations of the record's data hashes, with ${VAR} in paths taken from `env`."""
    problems = []
    for raw, want in record.integrity.data_hashes.items():
        path = _expand(raw, env)
        if not os.path.isfile(path):
            problems.append(f"data file missing: {path}")
        elif (got := sha256_file(path)) != want:
            problems.append(f"data file {path} has sha256 {got}, expected {want}")
    return problems


def check_script(record: Record, script=None) -> list[str]:
    """Violations of the record's script rules by `script` (default: the record's own script).

    A pinned setting must be assigned at least once (`name = v`, `name: int = v`, `name : int = v`)
    and every assignment of it must be the pinned literal. Timed-region lines must appear verbatim
    (ignoring indentation and a trailing comment).
    """
    text = Path(script or record.script).read_text()
    lines = {re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines()}
    problems = []
    for name, value in record.integrity.pinned_settings.items():
        assigned = re.findall(rf"^\s*{re.escape(name)}\s*(?::\s*[\w\[\], ]+?\s*)?=\s*([^#\n]+?)\s*(?:#.*)?$",
                              text, flags=re.M)
        if not assigned:
            problems.append(f"pinned setting {name} is not assigned")
        problems += [f"pinned setting {name} = {v}, expected {value}" for v in assigned if v != value]
    problems += [f"timed region line missing: {line}" for line in record.integrity.timed_region
                 if line.strip() not in lines]
    return problems


def check_integrity(record: Record, script=None, env: dict[str, str] | None = None) -> list[str]:
    """All violations (empty list when the script and data keep the record's rules)."""
    return check_script(record, script) + check_data(record, env if env is not None else dict(os.environ))
