"""Replay a ladder of records on a Ray cluster: k repeats each, interleaved, each run in its own
placement group, failed runs retried whole (never restarted in place), then summarized.

The driver must have called ray.init(). Runs execute one at a time by default, which is what
honest timing on one machine needs; on a cluster, max_concurrent > 1 keeps that many placement
groups busy at once.
"""
from __future__ import annotations

from pathlib import Path

import ray

from actors.trainer import RecordRun, record_placement_group
from orchestrator.speedrun.job import StopRules
from orchestrator.speedrun.records import Record
from orchestrator.speedrun.stats import consecutive_speedups, interleaved_order, summarize, val_loss_acceptance


def replay(records: list[Record], repeats: int, log_dir, seeds: list[int] | None = None,
           env: dict[str, str] | None = None, timeout_s: float | None = None, retries: int = 0,
           max_concurrent: int = 1, on_result=None) -> list[dict]:
    """Run every record `repeats` times in interleaved order; returns one result dict per run
    (the trainer's result plus record, repeat, seed, attempt). Repeat r uses seed seeds[r]
    (default r), the same for every record. on_result(result) is called as each run ends."""
    seeds = seeds or list(range(repeats))
    by_name = {r.name: r for r in records}
    queue = [(name, rep, 0) for name, rep in interleaved_order(list(by_name), repeats)]
    in_flight: list[tuple[RecordRun, object, tuple]] = []
    results = []

    def finish_one():
        (done,), _ = ray.wait([ref for run, _, _ in in_flight for ref in run.refs], num_returns=1)
        i = next(i for i, (run, _, _) in enumerate(in_flight) if done in run.refs)
        run, pg, (name, rep, attempt) = in_flight.pop(i)
        result = {**run.wait(), "repeat": rep, "seed": seeds[rep], "attempt": attempt}
        ray.util.remove_placement_group(pg)
        results.append(result)
        if on_result is not None:
            on_result(result)
        if result["status"] != "ok" and attempt < retries:
            queue.insert(0, (name, rep, attempt + 1))

    while queue or in_flight:
        if queue and len(in_flight) < max_concurrent:
            name, rep, attempt = queue.pop(0)
            record = by_name[name]
            pg = record_placement_group(record)
            ray.get(pg.ready())
            run_env = {**(env or {}), "SEED": str(seeds[rep])}
            rules = StopRules(target=record.target_val_loss, timeout_s=timeout_s)
            run_name = f"{name.replace('/', '_')}.r{rep}.a{attempt}"
            in_flight.append((RecordRun(record, pg, Path(log_dir), rules, run_env, name=run_name), pg,
                              (name, rep, attempt)))
        else:
            finish_one()
    return results


def summarize_replay(results: list[dict], records: list[Record]) -> dict:
    """Per record (ladder order): time and steps to target over its successful runs (the last
    attempt of each repeat), the acceptance test on final validation losses, and speedups of each
    record over the one before."""
    last = {}
    for r in results:  # a retried repeat counts once, by its last attempt
        last[(r["record"], r["repeat"])] = r
    rows = []
    times = {}
    for record in records:
        runs = [r for (name, _), r in sorted(last.items()) if name == record.name]
        ok = [r for r in runs if r["status"] == "ok"]
        times[record.name] = [r["time_to_target_ms"] / 1000 for r in ok]
        losses = [r["final_val_loss"] for r in runs if r["final_val_loss"] is not None]
        rows.append({
            "record": record.name,
            "runs": len(runs),
            "ok": len(ok),
            "time_to_target_s": summarize(times[record.name]),
            "steps_to_target": summarize([float(r["steps_to_target"]) for r in ok]),
            "acceptance": val_loss_acceptance(losses, record.target_val_loss) if losses else None,
        })
    return {"records": rows, "speedups": consecutive_speedups(times)}


def markdown_tables(summary: dict) -> str:
    """The time-to-target table and the speedup table, as Markdown."""
    def fmt(x, spec=".1f"):
        return "-" if x is None else format(x, spec)
    lines = ["| record | ok/runs | time to target (s) | 95% CI | steps to target |",
             "| --- | --- | --- | --- | --- |"]
    for row in summary["records"]:
        t, s = row["time_to_target_s"], row["steps_to_target"]
        lines.append(f"| {row['record']} | {row['ok']}/{row['runs']} | {fmt(t['mean'])} ± {fmt(t['std'])} | "
                     f"[{fmt(t['ci_low'])}, {fmt(t['ci_high'])}] | {fmt(s['mean'], '.0f')} ± {fmt(s['std'], '.1f')} |")
    lines += ["", "| from | to | speedup | 95% CI |", "| --- | --- | --- | --- |"]
    for sp in summary["speedups"]:
        lines.append(f"| {sp['from']} | {sp['to']} | {fmt(sp['ratio'], '.2f')}x | "
                     f"[{fmt(sp['ci_low'], '.2f')}, {fmt(sp['ci_high'], '.2f')}] |")
    return "\n".join(lines)
