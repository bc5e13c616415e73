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

from orchestrator.config import REPO_ROOT, ConfigError, RunConfig, check_choice, check_path_exists
from orchestrator.experiments import Experiment, Summary
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.speedrun import plots
from orchestrator.speedrun.fsr import fsr_over_runs
from orchestrator.speedrun.records import Record, load_records, sha256_file
from orchestrator.speedrun.replay import replay, seconds_to_target, summarize_replay
from orchestrator.speedrun.stats import interleaved_order


@dataclass
class CandidateConfig:
    script: str | None = None  # a training script to score: FSR between `base` and the next record
    base: str = ""  # the record it starts from (its launch spec and target are used)


@dataclass
class SpeedrunConfig(RunConfig):
    experiment: str = "speedrun"
    records: str = "records/shakespeare"  # a folder of record YAMLs (relative to the project)
    names: list[str] = field(default_factory=list)  # a subset of the ladder; empty = all
    repeats: int = 5  # timed runs per record: enough for a log-scale interval a user can act on
    acceptance_repeats: int = 3  # full-length runs per record, for the acceptance test on final losses
    timeout_s: float = 900
    retries: int = 1  # a failed run is re-run whole (a dead rank breaks its process group)
    max_concurrent: int = 1  # runs at once; 1 for honest timing on one machine
    candidate: CandidateConfig = field(default_factory=CandidateConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)  # every run, records and candidates alike
    clock: str = "wall"  # wall: the script's train time; cpu: the harness's process-CPU seconds to target

    def validate(self) -> None:
        super().validate()
        self.sandbox.mode = Sandbox(self.sandbox).mode  # auto resolved here: no working sandbox is exit 2
        check_choice("clock", self.clock, ("wall", "cpu"))
        if self.acceptance_repeats < 0:
            raise ConfigError("acceptance_repeats", self.acceptance_repeats, "must be >= 0")
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
    """Timed runs first, then full-length ones, each in interleaved rounds; a unit's key holds its
    script's hash (an edited record runs again) and its mode."""
    records = ladder(cfg)
    order = [(name, rep, "timed") for name, rep in interleaved_order(list(records), cfg.repeats)]
    order += [(name, rep, "full") for name, rep in interleaved_order(list(records), cfg.acceptance_repeats)]
    return [{"record": name, "repeat": rep, "mode": mode, "seed": cfg.seed + rep + (1000 if mode == "full" else 0),
             "script_sha256": sha256_file(records[name].script), "target": records[name].target_val_loss,
             "nproc_per_node": records[name].launch.nproc_per_node, "nnodes": records[name].launch.nnodes,
             "timeout_s": cfg.timeout_s, "retries": cfg.retries, "sandbox": dataclasses.asdict(cfg.sandbox)}
            for name, rep, mode in order]


def execute(cfg: SpeedrunConfig, pending: list[dict], ctx):
    records = ladder(cfg)
    by_key = {(u["record"], u["repeat"], u["seed"], u["mode"]): u for u in pending}
    if cfg.sandbox.mode == "off":
        ctx.log("[speedrun] WARNING: sandbox.mode=off: scripts run unconfined on this machine")

    def live(key, points):  # validation curves stream to W&B while a run trains
        run = f"{key[0]}.r{key[1]}"
        for p in points:
            ctx.tracker.log({f"curve/{run}/val_loss": p["val_loss"], f"curve/{run}/train_time_s": p["train_time_ms"] / 1000})

    for key, result in replay(list(by_key), records, ctx.run_dir / "logs", timeout_s=cfg.timeout_s,
                              retries=cfg.retries, max_concurrent=cfg.max_concurrent, on_progress=live,
                              sandbox=cfg.sandbox):
        ctx.log(f"[speedrun] {key[0]} {key[3]} repeat {key[1]}: {result['reason']}, time to target "
                f"{_seconds(result['time_to_target_ms'])} s, steps {result['steps_to_target']}")
        yield by_key[key], {k: v for k, v in result.items() if k != "nodes"}


def _seconds(ms):
    return None if ms is None else round(ms / 1000, 2)


def summarize_fsr(cfg: SpeedrunConfig, records: dict[str, Record], results: list[dict]) -> list[dict]:
    """FSR of the candidate against its base record i and record i+1, all measured in this replay:
    every candidate run counts, a miss as FSR 0, with a bootstrap interval over the runs."""
    if not cfg.candidate.script:
        return []
    names = [n for n in records if not n.startswith("candidate/")]
    base = cfg.candidate.base
    nxt = names[names.index(base) + 1]
    cand = next(n for n in records if n.startswith("candidate/"))

    def times(name, keep_misses=False):
        runs = [r for r in results if r["record"] == name]
        return [seconds_to_target(r, cfg.clock) if r["status"] == "ok" else None for r in runs
                if keep_misses or r["status"] == "ok"]

    score = fsr_over_runs(times(base), times(nxt), times(cand, keep_misses=True), seed=cfg.seed)
    mean = {n: (sum(t) / len(t) if (t := times(n)) else None) for n in (base, nxt, cand)}
    return [{"candidate": cand, "record_i": base, "record_i+1": nxt, "t_i_s": mean[base], "t_i+1_s": mean[nxt],
             "t_candidate_s": mean[cand], "fsr": score["fsr"], "fsr_ci_low": score["ci_low"],
             "fsr_ci_high": score["ci_high"], "candidate_runs": score["runs"], "candidate_misses": score["misses"]}]


def summarize_run(cfg: SpeedrunConfig, rows, ctx) -> Summary:
    records = ladder(cfg)
    results = [r.result for r in rows]
    summary = summarize_replay(results, list(records.values()), cfg.clock)
    time_rows = []
    for row in summary["records"]:
        t, s, acc = row["time_to_target_s"], row["steps_to_target"], row["acceptance"] or {}
        time_rows.append({"record": row["record"], "clock": cfg.clock, "ok": row["ok"], "runs": row["runs"],
                          "time_to_target_s": t["mean"], "std_s": t["std"], "geomean_s": t["geomean"],
                          "ci_low_s": t["ci_low"], "ci_high_s": t["ci_high"], "steps_to_target": s["mean"],
                          "steps_std": s["std"], "acceptance_runs": acc.get("n"),
                          "acceptance_mean_loss": acc.get("mean"), "acceptance_p": acc.get("p_value"),
                          "accepted": acc.get("accepted")})
    speedups = [{"from": sp["from"], "to": sp["to"], "speedup": sp["ratio"], "ci_low": sp["ci_low"],
                 "ci_high": sp["ci_high"]} for sp in summary["speedups"]]
    fsr_rows = summarize_fsr(cfg, records, results)
    run_rows = [{"record": r["record"], "mode": r.get("mode"), "repeat": r["repeat"], "seed": r["seed"],
                 "attempt": r["attempt"], "status": r["status"], "reason": r["reason"],
                 "flags": ", ".join(r.get("flags") or []), "sandbox": r.get("sandbox") or "off",
                 "time_to_target_s": _seconds(r["time_to_target_ms"]), "cpu_s_to_target": r.get("cpu_s_to_target"),
                 "steps_to_target": r["steps_to_target"],
                 "final_val_loss": r["final_val_loss"], "wall_s": round(r["wall_s"], 1),
                 "log": str(Path(r["log_path"]).relative_to(ctx.run_dir))
                 if Path(r["log_path"]).is_relative_to(ctx.run_dir) else r["log_path"]} for r in results]
    figures = {"val_loss_vs_time": plots.curves(ctx.run_dir / "val_loss_vs_time.png", results),
               "speedups": plots.speedups(ctx.run_dir / "speedups.png", speedups)}
    scalars = {f"time_to_target_s/{row['record']}": row["time_to_target_s"] for row in time_rows}
    scalars.update({f"speedup/{sp['to']}": sp["speedup"] for sp in speedups})
    scalars["sandbox"] = cfg.sandbox.mode
    if fsr_rows:
        scalars.update(fsr=fsr_rows[0]["fsr"], fsr_ci_low=fsr_rows[0]["fsr_ci_low"],
                       fsr_ci_high=fsr_rows[0]["fsr_ci_high"])
    notes = (f"{cfg.repeats} timed and {cfg.acceptance_repeats} full-length runs per record, each kind in interleaved "
             "rounds (cancels drift), every run in the sandbox (mode "
             f"`{cfg.sandbox.mode}`) after the record's integrity check. Times (clock `{cfg.clock}`) are "
             + ("the script's train time (wall clock, stopped during evaluation)" if cfg.clock == "wall" else
                "the harness's process-CPU seconds of the job (start-up included)")
             + " to the first validation at or below the target, from runs of either kind; their intervals are 95% Student-t on log times (around the geometric mean). Speedup "
             "intervals use the delta method on the log ratio. The acceptance test is modded-nanogpt's, on the "
             "final validation losses of the full-length runs only: one-sided, mean below the target at "
             "p < 0.01. FSR = (t_i - t')/(t_i - t_i+1) per candidate run, a miss scoring 0, averaged over the "
             "candidate's runs, with a bootstrap interval over the runs of all three.")
    tables = {"time_to_target": time_rows, "speedups": speedups, "runs": run_rows}
    if fsr_rows:
        tables["fsr"] = fsr_rows
    return Summary(title=f"Speedrun replay: {cfg.preset}", scalars=scalars, tables=tables, figures=figures,
                   notes=notes)


EXPERIMENT = Experiment("speedrun", SpeedrunConfig, units, execute, summarize_run)
