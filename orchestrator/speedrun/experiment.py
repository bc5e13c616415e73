"""Speedrun replays: re-run a ladder of records k times each, interleaved, and report time to
target with intervals, the acceptance test, speedups between consecutive records, and the
fraction of speedup recovered (FSR) of a candidate script measured in the same replay.

Work units are (record, repeat, seed); a unit's key includes the script's hash, so an edited
record is re-run while a finished run of an unchanged one is never repeated on resume.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config import REPO_ROOT, ConfigError, RunConfig, check_path_exists
from orchestrator.experiments import Experiment, Summary
from orchestrator.speedrun import plots
from orchestrator.speedrun.fsr import fsr
from orchestrator.speedrun.records import Record, load_records, sha256_file
from orchestrator.speedrun.replay import replay, summarize_replay
from orchestrator.speedrun.stats import interleaved_order, summarize


@dataclass
class CandidateConfig:
    script: str | None = None  # a training script to score: FSR between `base` and the next record
    base: str = ""  # the record it starts from (its launch spec and target are used)


@dataclass
class SpeedrunConfig(RunConfig):
    experiment: str = "speedrun"
    records: str = "records/shakespeare"  # a folder of record YAMLs (relative to the project)
    names: list[str] = field(default_factory=list)  # a subset of the ladder; empty = all
    repeats: int = 2
    timeout_s: float = 900
    retries: int = 1  # a failed run is re-run whole (a dead rank breaks its process group)
    max_concurrent: int = 1  # runs at once; 1 for honest timing on one machine
    candidate: CandidateConfig = field(default_factory=CandidateConfig)

    def validate(self) -> None:
        super().validate()
        check_path_exists("records", str(records_folder(self)))
        if self.repeats < 1:
            raise ConfigError("repeats", self.repeats, "must be a positive int")
        if self.max_concurrent < 1:
            raise ConfigError("max_concurrent", self.max_concurrent, "must be a positive int")
        if self.retries < 0:
            raise ConfigError("retries", self.retries, "must be >= 0")
        ladder = [r.name for r in load_records(records_folder(self))]
        for name in self.names:
            if name not in ladder:
                raise ConfigError("names", name, "allowed: " + ", ".join(ladder))
        if self.candidate.script:
            check_path_exists("candidate.script", self.candidate.script)
            chosen = self.names or ladder
            if self.candidate.base not in chosen[:-1]:
                raise ConfigError("candidate.base", self.candidate.base,
                                  "allowed: a record with a next record in the ladder: " + ", ".join(chosen[:-1]))


def records_folder(cfg: SpeedrunConfig) -> Path:
    path = Path(cfg.records).expanduser()
    return path if path.is_absolute() or path.exists() else REPO_ROOT / path


def ladder(cfg: SpeedrunConfig) -> dict[str, Record]:
    """The records to replay, in ladder order, with the candidate (if any) after its base."""
    records = [r for r in load_records(records_folder(cfg)) if not cfg.names or r.name in cfg.names]
    out = {}
    for record in records:
        out[record.name] = record
        if cfg.candidate.script and record.name == cfg.candidate.base:
            script = Path(cfg.candidate.script).resolve()
            out[f"candidate/{script.stem}"] = dataclasses.replace(record, name=f"candidate/{script.stem}",
                                                                  script=script, description="FSR candidate")
    return out


def units(cfg: SpeedrunConfig) -> list[dict]:
    records = ladder(cfg)
    return [{"record": name, "repeat": rep, "seed": cfg.seed + rep, "script_sha256": sha256_file(records[name].script),
             "target": records[name].target_val_loss, "nproc_per_node": records[name].launch.nproc_per_node,
             "nnodes": records[name].launch.nnodes}
            for name, rep in interleaved_order(list(records), cfg.repeats)]


def execute(cfg: SpeedrunConfig, pending: list[dict], ctx):
    records = ladder(cfg)
    by_key = {(u["record"], u["repeat"], u["seed"]): u for u in pending}

    def live(key, points):  # validation curves stream to W&B while a run trains
        run = f"{key[0]}.r{key[1]}"
        for p in points:
            ctx.tracker.log({f"curve/{run}/val_loss": p["val_loss"], f"curve/{run}/train_time_s": p["train_time_ms"] / 1000})

    for key, result in replay(list(by_key), records, ctx.run_dir / "logs", timeout_s=cfg.timeout_s,
                              retries=cfg.retries, max_concurrent=cfg.max_concurrent, on_progress=live):
        ctx.log(f"[speedrun] {key[0]} repeat {key[1]}: {result['reason']}, time to target "
                f"{_seconds(result['time_to_target_ms'])} s, steps {result['steps_to_target']}")
        yield by_key[key], {k: v for k, v in result.items() if k != "nodes"}


def _seconds(ms):
    return None if ms is None else round(ms / 1000, 2)


def summarize_fsr(cfg: SpeedrunConfig, records: dict[str, Record], times: dict[str, list[float]]) -> list[dict]:
    """FSR of the candidate against its base record i and record i+1, mean times of this replay."""
    if not cfg.candidate.script:
        return []
    names = [n for n in records if not n.startswith("candidate/")]
    base = cfg.candidate.base
    nxt = names[names.index(base) + 1]
    cand = next(n for n in records if n.startswith("candidate/"))
    mean = {n: summarize(times[n])["mean"] if times.get(n) else None for n in (base, nxt, cand)}
    return [{"candidate": cand, "record_i": base, "record_i+1": nxt, "t_i_s": mean[base], "t_i+1_s": mean[nxt],
             "t_candidate_s": mean[cand],
             "fsr": fsr(mean[base], mean[nxt], mean[cand]) if mean[base] and mean[nxt] else 0.0}]


def summarize_run(cfg: SpeedrunConfig, rows, ctx) -> Summary:
    records = ladder(cfg)
    results = [r.result for r in rows]
    summary = summarize_replay(results, list(records.values()))
    time_rows = []
    for row in summary["records"]:
        t, s, acc = row["time_to_target_s"], row["steps_to_target"], row["acceptance"] or {}
        time_rows.append({"record": row["record"], "ok": row["ok"], "runs": row["runs"],
                          "time_to_target_s": t["mean"], "std_s": t["std"], "ci_low_s": t["ci_low"],
                          "ci_high_s": t["ci_high"], "steps_to_target": s["mean"], "steps_std": s["std"],
                          "acceptance_p": acc.get("p_value"), "accepted": acc.get("accepted")})
    speedups = [{"from": sp["from"], "to": sp["to"], "speedup": sp["ratio"], "ci_low": sp["ci_low"],
                 "ci_high": sp["ci_high"]} for sp in summary["speedups"]]
    times = {row["record"]: [r["time_to_target_ms"] / 1000 for r in results
                             if r["record"] == row["record"] and r["status"] == "ok"] for row in summary["records"]}
    fsr_rows = summarize_fsr(cfg, records, times)
    run_rows = [{"record": r["record"], "repeat": r["repeat"], "seed": r["seed"], "attempt": r["attempt"],
                 "status": r["status"], "reason": r["reason"], "time_to_target_s": _seconds(r["time_to_target_ms"]),
                 "steps_to_target": r["steps_to_target"], "final_val_loss": r["final_val_loss"],
                 "wall_s": round(r["wall_s"], 1), "log": str(Path(r["log_path"]).relative_to(ctx.run_dir))
                 if Path(r["log_path"]).is_relative_to(ctx.run_dir) else r["log_path"]} for r in results]
    figures = {"val_loss_vs_time": plots.curves(ctx.run_dir / "val_loss_vs_time.png", results),
               "speedups": plots.speedups(ctx.run_dir / "speedups.png", speedups)}
    scalars = {f"time_to_target_s/{row['record']}": row["time_to_target_s"] for row in time_rows}
    scalars.update({f"speedup/{sp['to']}": sp["speedup"] for sp in speedups})
    if fsr_rows:
        scalars["fsr"] = fsr_rows[0]["fsr"]
    notes = (f"{cfg.repeats} repeats per record in interleaved order (cancels drift); times are train time to the "
             "first validation at or below the target (the clock stops during evaluation). Intervals are 95% "
             "Student-t; speedup intervals use the delta method on the log ratio. The acceptance test is "
             "one-sided: mean final validation loss below the target (p < 0.01). FSR = (t_i - t')/(t_i - t_i+1), "
             "0 when the candidate misses the target or the record gap is not positive.")
    tables = {"time_to_target": time_rows, "speedups": speedups, "runs": run_rows}
    if fsr_rows:
        tables["fsr"] = fsr_rows
    return Summary(title=f"Speedrun replay: {cfg.preset}", scalars=scalars, tables=tables, figures=figures,
                   notes=notes)


EXPERIMENT = Experiment("speedrun", SpeedrunConfig, units, execute, summarize_run)
