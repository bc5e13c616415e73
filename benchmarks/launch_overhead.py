"""What launching a record through Ray costs: one CPU-ladder record run as the speedrun replay runs
it (placement group, trainer actor, data preparation and integrity check in the actor, torchrun
where the record uses it, the sandbox: `RecordRun`) against the same script started directly (a
plain subprocess through `run_job`, the same record environment, no sandbox), side by side, and
between them the script in the sandbox as the actor runs it but without Ray (`sandboxed`), so the
sandbox's share and Ray's share of the fixed cost come apart.

    python benchmarks/launch_overhead.py [--record records/shakespeare/04_tuned_lr.yaml] [--repeats 5]

Runs alternate one by one (direct, sandboxed, ray), the order reversing every repeat, each with seed 0 and stopping at the
target. Per run: the time to target (the script's own timed region) and the fixed cost, wall
minus time to target. Where the Ray run's fixed cost goes is read from timestamps: the driver's
(placement group ready, the first validation point, seen by polling the actor every 50 ms, the
end) and `run_job`'s start in the actor; data preparation and the integrity check are timed
alone beside each run (the same calls the actor makes), and so are the sandbox's start and the
interpreter with `import torch` (probes of `python -c`, direct and sandboxed).
Ends with ONE JSON line: `ray_vs_direct_time_to_target_ratio` (target <= 1.02), the fixed
costs and the breakdown (medians).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from orchestrator import runtime  # noqa: E402
from orchestrator.config import RayConfig  # noqa: E402
from orchestrator.sandbox import Sandbox, SandboxConfig  # noqa: E402
from orchestrator.speedrun.job import StopRules, run_job  # noqa: E402
from orchestrator.speedrun.launch import RecordRun, record_placement_group  # noqa: E402
from orchestrator.speedrun.records import check_integrity, launch_command, launch_env, load_record, prepare_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUN_ENV = {"SEED": "0", "STOP_AT_TARGET": "1"}
POLL_S = 0.05


def rules(record) -> StopRules:
    return StopRules(target=record.target_val_loss, stop_at_target=True, timeout_s=900)


def direct(record, folder: Path) -> dict:
    """The script as a plain subprocess on the host; the first validation point stamped as it arrives."""
    first = []
    started = time.time()
    result = run_job(launch_command(record), launch_env(record, {**prepare_data(record), **RUN_ENV}),
                     folder / "direct.log", rules(record), cwd=str(record.script.parent),
                     on_point=lambda point: first or first.append(time.time()))
    return {**result, "t0": started, "t_end": time.time(), "t_first_point": first[0] if first else None}


def sandboxed(record, folder: Path, sandbox: Sandbox) -> dict:
    """As the trainer actor runs it (a checked copy in its work folder, data read-only), without Ray."""
    data_env = prepare_data(record)
    work = folder / "sandboxed.work"
    work.mkdir()
    checked = work / record.script.name
    shutil.copyfile(record.script, checked)
    first = []
    started = time.time()
    result = run_job(launch_command(record, checked), launch_env(record, {**data_env, **RUN_ENV}, workdir=work),
                     folder / "sandboxed.log", rules(record), cwd=str(work), sandbox=sandbox,
                     ro_paths=sorted({v for v in data_env.values() if os.path.exists(v)}),
                     on_point=lambda point: first or first.append(time.time()))
    return {**result, "t0": started, "t_end": time.time(), "t_first_point": first[0] if first else None}


def through_ray(record, folder: Path, sandbox: SandboxConfig) -> dict:
    """One run as the replay launches it; the driver's timestamps around it."""
    t0 = time.time()
    pg = record_placement_group(record)
    ray.get(pg.ready())
    t_pg = time.time()
    run = RecordRun(record, pg, folder, rules(record), dict(RUN_ENV), name="ray", sandbox=sandbox)
    first = None
    while not ray.wait(run.refs[:1], timeout=POLL_S)[0]:
        if first is None and run.progress():
            first = time.time()
    result = run.wait()
    ray.util.remove_placement_group(pg)
    return {**result, "t0": t0, "t_pg": t_pg, "t_end": time.time(), "t_first_point": first}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def probes(record, sandbox: Sandbox, folder: Path) -> dict:
    """Alone, beside each run: the calls the actor makes before run_job, and process start-ups."""
    data_env = prepare_data(record)
    python = [sys.executable, "-c"]
    work = folder / "probe.work"
    work.mkdir()

    def confined_python(code: str) -> None:
        confined = sandbox.start(python + [code], launch_env(record, RUN_ENV, workdir=work), work,
                                 ro_paths=[str(REPO)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        confined.proc.wait()
        confined.close()

    return {"data_prep_s": timed(lambda: prepare_data(record)),
            "integrity_check_s": timed(lambda: check_integrity(record, record.script, {**os.environ, **data_env})),
            "python_s": timed(lambda: subprocess.run(python + ["pass"], check=True)),
            "python_torch_s": timed(lambda: subprocess.run(python + ["import torch"], check=True)),
            "sandboxed_python_s": timed(lambda: confined_python("pass"))}


def breakdown(run: dict, probe: dict, side: str) -> dict:
    """Where one run's wall time outside the timed region went, in seconds."""
    ttt = run["time_to_target_ms"] / 1000
    job_start, job_end = run["started_at"], run["started_at"] + run["wall_s"]
    parts = {}
    if side != "direct":
        parts["sandbox_start"] = probe["sandboxed_python_s"] - probe["python_s"]
    if side == "ray":
        parts["placement_group_ready"] = run["t_pg"] - run["t0"]
        before_job = job_start - run["t_pg"]
        parts["data_prep"] = probe["data_prep_s"]
        parts["integrity_check"] = probe["integrity_check_s"]
        parts["actor_start_and_hand_off"] = before_job - probe["data_prep_s"] - probe["integrity_check_s"]
    else:
        parts["before_job"] = job_start - run["t0"]  # data prep in this process (cached files)
    parts["interpreter_and_torch_import"] = probe["python_torch_s"]
    to_first = run["t_first_point"] - job_start
    parts["script_setup_to_first_point"] = to_first - parts["interpreter_and_torch_import"] - parts.get("sandbox_start", 0)
    parts["after_first_point_untimed"] = run["wall_s"] - to_first - ttt  # evaluations, exit after the target
    parts["teardown"] = run["t_end"] - job_end  # killing the tree (and, through Ray, the actor, the group)
    return parts


def median(values) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", default=str(REPO / "records/shakespeare/04_tuned_lr.yaml"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    record = load_record(args.record)
    sandbox_config = SandboxConfig()
    sandbox = Sandbox(sandbox_config)
    prepare_data(record)  # downloads nothing after the first time; neither side pays for it
    runtime.connect(RayConfig())
    sides = ("direct", "sandboxed", "ray")
    runs: dict[str, list[tuple[dict, dict]]] = {side: [] for side in sides}
    try:
        with tempfile.TemporaryDirectory(prefix="launch-overhead-") as tmp:
            for i in range(args.repeats):
                for side in (sides if i % 2 == 0 else sides[::-1]):
                    folder = Path(tmp) / f"{side}-{i}"
                    folder.mkdir()
                    probe = probes(record, sandbox, folder)
                    r = {"direct": lambda: direct(record, folder), "sandboxed": lambda: sandboxed(record, folder, sandbox),
                         "ray": lambda: through_ray(record, folder, sandbox_config)}[side]()
                    if r["status"] != "ok" or r["t_first_point"] is None:
                        raise SystemExit(f"{side} run {i} did not reach the target: {r['reason']} {r['flags']}")
                    wall = r["t_end"] - r["t0"]
                    r["fixed_s"] = wall - r["time_to_target_ms"] / 1000
                    runs[side].append((r, breakdown(r, probe, side)))
                    print(f"{side:7} repeat {i}: time to target {r['time_to_target_ms'] / 1000:6.2f} s, "
                          f"wall {wall:6.2f} s, fixed {r['fixed_s']:5.2f} s, steps {r['steps_to_target']}", flush=True)
    finally:
        runtime.shutdown()
    ttt = {side: median(r["time_to_target_ms"] / 1000 for r, _ in rs) for side, rs in runs.items()}
    fixed = {side: median(r["fixed_s"] for r, _ in rs) for side, rs in runs.items()}
    wall = {side: median(r["t_end"] - r["t0"] for r, _ in rs) for side, rs in runs.items()}
    parts = {side: {k: median(p[k] for _, p in rs) for k in rs[0][1]} for side, rs in runs.items()}
    print(f"\n{'median (s)':34}" + "".join(f"{side:>11}" for side in sides))
    for name, figures in (("time to target", ttt), ("wall", wall), ("fixed cost (wall - time to target)", fixed)):
        print(f"{name:34}" + "".join(f"{figures[side]:11.2f}" for side in sides))
    print("  fixed cost, by part:")
    for key in dict.fromkeys(k for side in ("ray", "sandboxed", "direct") for k in parts[side]):
        print(f"    {key:30}" + "".join(f"{parts[side][key]:11.2f}" if key in parts[side] else f"{'-':>11}"
                                        for side in sides))
    print(f"  time to target ray / direct {ttt['ray'] / ttt['direct']:.3f} (target <= 1.02); extra fixed cost per "
          f"run: sandbox {fixed['sandboxed'] - fixed['direct']:.2f} s, Ray on top of it {fixed['ray'] - fixed['sandboxed']:.2f} s")
    print(json.dumps({
        "benchmark": "launch_overhead", "record": record.name, "repeats": args.repeats, "sandbox_mode": sandbox.mode,
        "launcher": record.launch.launcher, "nproc_per_node": record.launch.nproc_per_node,
        "direct_time_to_target_s": ttt["direct"], "ray_time_to_target_s": ttt["ray"],
        "ray_vs_direct_time_to_target_ratio": round(ttt["ray"] / ttt["direct"], 4), "time_to_target_ratio_target": 1.02,
        "direct_wall_s": wall["direct"], "ray_wall_s": wall["ray"],
        "sandboxed_time_to_target_s": ttt["sandboxed"], "sandboxed_wall_s": wall["sandboxed"],
        "direct_fixed_s": fixed["direct"], "sandboxed_fixed_s": fixed["sandboxed"], "ray_fixed_s": fixed["ray"],
        "ray_extra_fixed_s": round(fixed["ray"] - fixed["direct"], 3),
        "sandbox_extra_fixed_s": round(fixed["sandboxed"] - fixed["direct"], 3),
        "ray_over_sandboxed_extra_fixed_s": round(fixed["ray"] - fixed["sandboxed"], 3),
        "fixed_breakdown_s": parts, "steps_to_target": {s: median(r["steps_to_target"] for r, _ in rs) for s, rs in runs.items()},
    }))


if __name__ == "__main__":
    main()
