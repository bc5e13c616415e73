"""What the sandbox costs a record: time to target of one CPU-ladder record run through the trainer
jobs' runner (`run_job`, no Ray) on the host and in the sandbox, side by side in one run.

    python benchmarks/sandbox_overhead.py [--record records/shakespeare/01_adamw.yaml] [--repeats 5]
                                          [sandbox.KEY=VALUE ...]

Runs alternate one by one, the order flipping every pair (a busy spell from another process hits
both sides about equally), each with the same seed. Prints one row per run, a side-by-side table
of medians, and ends with ONE JSON line carrying `sandboxed_vs_host_time_to_target_ratio` (target
<= 1.05) and the same ratio for wall time (start-up and data loading included).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from orchestrator.sandbox import Sandbox
from orchestrator.sandbox.cli import sandbox_config
from orchestrator.speedrun.job import StopRules, run_job
from orchestrator.speedrun.records import launch_command, launch_env, load_record, prepare_data

REPO = Path(__file__).resolve().parents[1]


def run_once(record, data_env: dict[str, str], folder: Path, sandbox: Sandbox | None) -> dict:
    rules = StopRules(target=record.target_val_loss, timeout_s=900)
    cmd = launch_command(record)
    extra = {**data_env, "SEED": "0"}
    if sandbox is None:
        return run_job(cmd, launch_env(record, extra), folder / "host.log", rules, cwd=str(record.script.parent))
    work = folder / "work"
    work.mkdir()
    read_only = [str(record.script.parent), *(v for v in data_env.values() if Path(v).exists())]
    return run_job(cmd, launch_env(record, extra, workdir=work), folder / "sandboxed.log", rules, cwd=work,
                   sandbox=sandbox, ro_paths=read_only)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", default=str(REPO / "records/shakespeare/01_adamw.yaml"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("overrides", nargs="*", help="sandbox.KEY=VALUE")
    args = ap.parse_args()
    sandbox = Sandbox(sandbox_config([o.removeprefix("sandbox.") for o in args.overrides]))
    record = load_record(args.record)
    data_env = prepare_data(record)
    runs: dict[str, list[dict]] = {"host": [], "sandboxed": []}
    with tempfile.TemporaryDirectory(prefix="sandbox-overhead-") as tmp:
        for i in range(args.repeats):
            for side in (("host", "sandboxed") if i % 2 == 0 else ("sandboxed", "host")):
                folder = Path(tmp) / f"{side}-{i}"
                folder.mkdir()
                r = run_once(record, data_env, folder, sandbox if side == "sandboxed" else None)
                if r["status"] != "ok":
                    raise SystemExit(f"{side} run {i} did not reach the target: {r['reason']} {r['flags']}")
                runs[side].append(r)
                print(f"{side:10} repeat {i}: time to target {r['time_to_target_ms'] / 1000:7.2f} s, "
                      f"wall {r['wall_s']:6.2f} s, steps {r['steps_to_target']}", flush=True)
    ttt = {side: statistics.median(r["time_to_target_ms"] / 1000 for r in rs) for side, rs in runs.items()}
    wall = {side: statistics.median(r["wall_s"] for r in rs) for side, rs in runs.items()}
    steps = {side: statistics.median(r["steps_to_target"] for r in rs) for side, rs in runs.items()}
    print(f"\n{'median':22}{'host':>10}{'sandboxed':>12}{'ratio':>8}")
    for name, figures in (("time to target (s)", ttt), ("wall (s)", wall), ("steps to target", steps)):
        host, sandboxed = figures["host"], figures["sandboxed"]
        print(f"{name:22}{host:10.2f}{sandboxed:12.2f}{sandboxed / host:8.3f}")
    print(json.dumps({
        "record": record.name, "repeats": args.repeats, "sandbox_mode": sandbox.mode,
        "host_time_to_target_s": round(ttt["host"], 3), "sandboxed_time_to_target_s": round(ttt["sandboxed"], 3),
        "sandboxed_vs_host_time_to_target_ratio": round(ttt["sandboxed"] / ttt["host"], 4),
        "host_wall_s": round(wall["host"], 3), "sandboxed_wall_s": round(wall["sandboxed"], 3),
        "sandboxed_vs_host_wall_ratio": round(wall["sandboxed"] / wall["host"], 4),
        "steps_to_target": {side: steps[side] for side in steps},
    }))


if __name__ == "__main__":
    main()
