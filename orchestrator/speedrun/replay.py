"""Replay a ladder of records on a Ray cluster: k repeats each, interleaved, each run in its own
placement group, failed runs retried whole (never restarted in place), then summarized.

The driver must have called ray.init(). Runs execute one at a time by default, which is what
honest timing on one machine needs; on a cluster, max_concurrent > 1 keeps that many placement
groups busy at once. `orchestrator.speedrun.experiment` is the experiment built on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import ray

from orchestrator.sandbox import SandboxConfig
from orchestrator.speedrun.job import StopRules
from orchestrator.speedrun.launch import RecordRun, record_placement_group
from orchestrator.speedrun.records import Record
from orchestrator.speedrun.stats import consecutive_speedups, summarize_positive, val_loss_acceptance

# A timed run stops at its first validation at or below the target (only the time to it counts);
# a full run goes to its scheduled end, for the acceptance test on final validation losses.
MODES = ("timed", "full")


def replay(runs: list[tuple[str, int, int, str]], records: dict[str, Record], log_dir,
           env: dict[str, str] | None = None, timeout_s: float | None = None, retries: int = 0,
           max_concurrent: int = 1, on_progress=None, poll_s: float = 5.0,
           sandbox: SandboxConfig | None = None) -> Iterator[tuple[tuple, dict]]:
    """Runs `(record name, repeat, seed, mode)` in the given (interleaved) order and yields
    `((name, repeat, seed, mode), result)` as each run ends: the trainer's result plus repeat,
    seed, mode and attempt. Every run goes through `sandbox` (None: unconfined). A failed run is retried whole up to `retries` times; only its last attempt is
    yielded. `on_progress(run, points)` gets the validation points of runs still going, every
    `poll_s` seconds, for live curves."""
    queue = [(run, 0) for run in runs]
    in_flight: list[tuple[RecordRun, object, tuple, int, int]] = []  # run, pg, key, attempt, points seen

    while queue or in_flight:
        if queue and len(in_flight) < max_concurrent:
            (name, rep, seed, mode), attempt = queue.pop(0)
            record = records[name]
            pg = record_placement_group(record)
            ray.get(pg.ready())
            full = mode == "full"
            rules = StopRules(target=record.target_val_loss, stop_at_target=not full, timeout_s=timeout_s)
            run_name = f"{name.replace('/', '_')}.{mode}.r{rep}.a{attempt}"
            run_env = {**(env or {}), "SEED": str(seed), "STOP_AT_TARGET": "0" if full else "1"}
            run = RecordRun(record, pg, Path(log_dir), rules, run_env, name=run_name, sandbox=sandbox)
            in_flight.append((run, pg, (name, rep, seed, mode), attempt, 0))
            continue
        done, _ = ray.wait([ref for run, *_ in in_flight for ref in run.refs], num_returns=1, timeout=poll_s)
        if not done:
            if on_progress is not None:
                for i, (run, pg, key, attempt, seen) in enumerate(in_flight):
                    points = run.progress()
                    if len(points) > seen:
                        on_progress(key, points[seen:])
                        in_flight[i] = (run, pg, key, attempt, len(points))
            continue
        i = next(i for i, (run, *_) in enumerate(in_flight) if done[0] in run.refs)
        run, pg, key, attempt, _ = in_flight.pop(i)
        result = {**run.wait(), "repeat": key[1], "seed": key[2], "mode": key[3], "attempt": attempt}
        ray.util.remove_placement_group(pg)
        if result["status"] != "ok" and attempt < retries:
            queue.insert(0, (key, attempt + 1))
        else:
            yield key, result


def seconds_to_target(result: dict, clock: str = "wall") -> float | None:
    """A run's time to target by `clock`: "wall", the script's own train time (the timed region,
    wall clock, as on GPU clusters), or "cpu", the harness's process-CPU seconds of the job up to
    the target line (start-up included; steadier on a shared machine)."""
    if clock == "cpu":
        return result.get("cpu_s_to_target")
    return None if result["time_to_target_ms"] is None else result["time_to_target_ms"] / 1000


def summarize_replay(results: list[dict], records: list[Record], clock: str = "wall") -> dict:
    """Per record (ladder order): time and steps to target over its successful runs of either
    mode (the last attempt of each repeat; log-scale intervals), the acceptance test on the final
    validation losses of its full runs, and speedups of each record over the one before."""
    last = {}
    for r in results:  # a retried repeat counts once, by its last attempt
        last[(r["record"], r.get("mode", "timed"), r["repeat"])] = r
    rows = []
    times = {}
    for record in records:
        runs = [r for (name, _, _), r in sorted(last.items()) if name == record.name]
        ok = [r for r in runs if r["status"] == "ok"]
        times[record.name] = [seconds_to_target(r, clock) for r in ok]
        full = [r["final_val_loss"] for r in runs if r.get("mode") == "full" and r["final_val_loss"] is not None]
        rows.append({
            "record": record.name,
            "runs": len(runs),
            "ok": len(ok),
            "time_to_target_s": summarize_positive(times[record.name]),
            "steps_to_target": summarize_positive([float(r["steps_to_target"]) for r in ok]),
            "acceptance": val_loss_acceptance(full, record.target_val_loss) if full else None,
        })
    return {"records": rows, "speedups": consecutive_speedups(times)}
