"""`scalerun sandbox`: see which sandboxes work here, and run one command the way candidates run.

    scalerun sandbox probe
    scalerun sandbox exec [sandbox.KEY=VALUE ...] [target=LOSS] [env.NAME=VALUE ...] -- CMD ARGS...

exec makes a fresh run folder, `<sandbox.runs_dir>/<date>-<time>-<id>/` with the job's work folder
`work/` and its log `output.log` beside it, runs CMD there under the configured sandbox through
the trainer jobs' own runner (`orchestrator.speedrun.job.run_job`), streams its output, and prints
as its last line one JSON object: mode, returncode, signal, reason, flags, wall_s, workdir, log.
With target=LOSS a validation line at or below it ends the run (target_reached), as for a record.
The environment is `clean_env` plus one OpenMP thread, passive waiting, unbuffered Python and the
env.NAME=VALUE given: nothing of the caller's. Exit status 0 when it ended ok (or reached the
target unflagged), 1 when not, 2 for a bad key or when no sandbox works on the machine.
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator.config import ConfigError
from orchestrator.sandbox import Sandbox, SandboxConfig, clean_env, pids_cgroup_parent, probe, resolve_mode
from orchestrator.speedrun.job import StopRules, run_job

USAGE = ("scalerun sandbox probe | "
         "scalerun sandbox exec [sandbox.KEY=VALUE ...] [target=LOSS] [env.NAME=VALUE ...] -- CMD ARGS...")


def cli(argv: list[str]) -> int:
    try:
        if argv == ["probe"]:
            return _probe()
        if argv[:1] == ["exec"]:
            return _exec(argv[1:])
        raise ConfigError("sandbox", " ".join(argv) or None, f"usage: {USAGE}")
    except ConfigError as e:
        print(f"scalerun: {e}", file=sys.stderr)
        return 2


def _probe() -> int:
    for mode, why in probe().items():
        print(f"{mode:8}{why}")
    cgroup = pids_cgroup_parent()
    print(f"process limit: {f'pids cgroup under {cgroup}' if cgroup else 'watchdog (no writable pids cgroup)'}")
    try:
        print(f"auto    {resolve_mode('auto')}")
    except ConfigError as e:
        print(f"auto    refuses: {e}")
        return 1
    return 0


def sandbox_config(items: list[str]) -> SandboxConfig:
    """SandboxConfig from `KEY=VALUE` dotlist items (the part after `sandbox.`)."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(SandboxConfig), OmegaConf.from_dotlist(items))
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"sandbox.{key}", None, str(e).splitlines()[0]) from None


def _exec(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        raise ConfigError("exec", None, f"put the command after --: {USAGE}")
    split = argv.index("--")
    options, cmd = argv[:split], argv[split + 1:]
    items, target, extra_env = [], None, {}
    for item in options:
        key, sep, value = item.partition("=")
        if key.startswith("sandbox.") and sep:
            items.append(f"{key.removeprefix('sandbox.')}={value}")
        elif key.startswith("env.") and len(key) > 4 and sep:
            extra_env[key.removeprefix("env.")] = value
        elif key == "target" and sep:
            try:
                target = float(value)
            except ValueError:
                raise ConfigError("target", value, "a validation loss, e.g. 2.30") from None
        else:
            raise ConfigError(key, value or None, "allowed keys: sandbox.<field>, target, env.<NAME>")
    sandbox = Sandbox(sandbox_config(items))
    if sandbox.mode == "off":
        print("scalerun: warning: sandbox.mode=off: the command runs unconfined on this host", file=sys.stderr)
    runs_dir = Path(sandbox.config.runs_dir or Path(tempfile.gettempdir()) / "scalerun-sandbox")
    runs_dir.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs_dir))
    work = run / "work"
    work.mkdir()
    env = {**clean_env(work), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1",
           **extra_env}
    rules = StopRules(target=-math.inf if target is None else target, diverge_margin=math.inf)
    result = run_job(cmd, env, run / "output.log", rules, cwd=work, sandbox=sandbox, grace_s=2.0, on_line=_echo)
    reason = "ok" if target is None and result["reason"] == "missed_target" else result["reason"]
    summary = {"mode": sandbox.mode, "returncode": result["returncode"], "signal": result["signal"], "reason": reason,
               "flags": result["flags"], "wall_s": round(result["wall_s"], 3),
               "workdir": str(work), "log": str(run / "output.log")}
    print(json.dumps(summary), flush=True)
    return 0 if reason in ("ok", "target_reached") and not result["flags"] else 1


def _echo(line: str) -> None:
    sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()
