"""Scoring a transition's rollouts: each distinct best script re-run, trusted (the harness runs it
in the sandbox after the integrity check), `repeats` times interleaved with records i and i+1 on
the same machines, and FSR with a bootstrap interval from those runs (a run that misses the target,
or whose printed times the harness's clock contradicts, scores 0 for that run)."""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from orchestrator.sandbox import SandboxConfig
from orchestrator.speedrun.fsr import fsr_over_runs
from orchestrator.speedrun.records import Record
from orchestrator.speedrun.replay import replay, seconds_to_target
from orchestrator.speedrun.stats import interleaved_order, summarize_positive


def similarity(script: str, reference: str) -> float:
    """difflib's ratio over lines: 1.0 for the same script."""
    return difflib.SequenceMatcher(None, script.splitlines(), reference.splitlines(), autojunk=False).ratio()


def time_text(value: float | None) -> str:
    """A time to target for a log line or a title: `37.79 s`, or `none` where the target was missed."""
    return "none" if value is None else f"{value:.2f} s"


def candidate_name(sha: str) -> str:
    return f"candidate/{sha[:12]}"


def score_transition(base: Record, nxt: Record, scripts: dict[str, Path], repeats: int, seed: int, log_dir,
                     timeout_s: float, sandbox: SandboxConfig, clock: str, log=print, concurrent: int = 1) -> dict:
    """`scripts`: sha -> the candidate's file; `concurrent` runs at once. Returns the re-run times of records i and i+1 and,
    per candidate sha, its FSR, interval, misses and flags."""
    records = {base.name: base, nxt.name: nxt}
    for sha, path in scripts.items():  # a candidate runs with record i's launch spec and target
        records[candidate_name(sha)] = dataclasses.replace(base, name=candidate_name(sha), script=Path(path),
                                                           description="agent's best script")
    order = [(name, rep, seed + rep, "timed") for name, rep in interleaved_order(list(records), repeats)]
    runs = []
    for (name, rep, _, _), result in replay(order, records, log_dir, timeout_s=timeout_s, max_concurrent=concurrent,
                                            sandbox=sandbox):
        t = seconds_to_target(result, clock) if result["status"] == "ok" else None
        log(f"[agents] trusted re-run {name} #{rep}: {result['reason']}, {time_text(t)}")
        runs.append({"record": name, "repeat": rep, "status": result["status"], "reason": result["reason"],
                     "flags": list(result.get("flags") or []), "time_to_target_s": t})

    def times(name, keep_misses=False):
        return [r["time_to_target_s"] for r in runs if r["record"] == name
                and (keep_misses or r["time_to_target_s"] is not None)]

    t_i, t_next = times(base.name), times(nxt.name)
    candidates = {}
    for sha in scripts:
        name = candidate_name(sha)
        score = fsr_over_runs(t_i, t_next, times(name, keep_misses=True), seed=seed)
        flags = sorted({f for r in runs if r["record"] == name for f in r["flags"]})
        candidates[sha] = {**score, "flags": flags, "time_to_target_s": summarize_positive(times(name))["mean"]}
    return {"record_i": base.name, "record_i+1": nxt.name, "t_i_s": summarize_positive(t_i)["mean"],
            "t_i+1_s": summarize_positive(t_next)["mean"], "candidates": candidates, "runs": runs}
