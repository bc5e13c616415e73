"""The `ai-scientist` experiment: AI-Scientist's idea -> runs -> notes -> plots loop on a
template, one work unit per idea, many ideas at once over the cluster's trainers.

Flow: `units` lists one unit per idea slot (a seed idea, or a slot the coder fills). `execute`
resolves the ideas (seed ideas are checked and de-duplicated; coder ideas are generated once,
with reflections, and kept in ideas.json), drops the malformed and duplicate ones with their
reason, and drives every idea's loop (loop.py) through the one driver: `Propose` to the coder
(in this process), `Execute` to a TrainerPool whose trainers run each script in the sandbox.
An idea's folder (`ideas/<slot>_<name>/`) holds state.json, notes.txt, report.md, plots/ and
work/ (the sandbox's folder: experiment.py, plot.py, run_0 ... run_N); a killed run resumes
each idea at its next run. `summarize` reports every idea's best run against its baseline.
No LaTeX paper and no automated review are produced, and no web novelty search is made.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import ray

from orchestrator.config import REPO_ROOT, ConfigError, RunConfig, check_choice, result_setup
from orchestrator.driver import LocalPool, drive
from orchestrator.experiments import Experiment, Summary
from orchestrator.protocols import Propose
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.scientist.cluster import TrainerPool
from orchestrator.scientist.coder import ScriptedCoder, Sweep
from orchestrator.scientist.execute import DataSource, RunnerSettings
from orchestrator.scientist.ideas import IdeaError, check_idea, duplicate_of, generate_ideas
from orchestrator.scientist.loop import LoopSettings, idea_loop
from orchestrator.scientist.protocol import Execute
from orchestrator.scientist.state import write_durable
from orchestrator.scientist.template import Template, TemplateError, load_template

# Config fields that never change an idea's result: which slots exist, and placement.
NOT_IN_UNIT_KEY = ("ideas.names", "ideas.num_ideas", "cpus_per_run", "runners")


@dataclass
class IdeasConfig:
    source: str = "seed"  # seed (the template's seed_ideas.json) | coder (generated, with reflections)
    names: list[str] = field(default_factory=list)  # seed ideas to run; empty: the first num_ideas
    num_ideas: int = 2
    reflections: int = 3  # improvement rounds per generated idea
    json_retries: int = 2  # a malformed answer is asked again this often, then the idea is dropped
    duplicate_threshold: float = 0.8  # text similarity (0..1) at which an idea repeats the archive's


@dataclass
class CoderConfig:
    kind: str = "scripted"  # scripted | package.module:ATTR, a factory ATTR(cfg) -> Coder
    sweeps: dict[str, Sweep] = field(default_factory=dict)  # the scripted coder's, per idea name


@dataclass
class ScientistConfig(RunConfig):
    experiment: str = "ai-scientist"
    template: str = "templates/nanogpt_shakespeare"  # relative to the project, or absolute
    ideas: IdeasConfig = field(default_factory=IdeasConfig)
    coder: CoderConfig = field(default_factory=CoderConfig)
    max_runs: int = 5
    max_attempts: int = 4  # for every run
    plot_attempts: int = 3
    run_timeout_s: float = 300.0
    plot_timeout_s: float = 60.0
    stderr_chars: int = 1500  # of a failed attempt's stderr, fed back to the coder
    metric: str = "final_val_loss"  # a key of final_info.json's means
    higher_is_better: bool = False
    data: DataSource = field(default_factory=DataSource)
    run_env: dict[str, str] = field(default_factory=dict)  # more environment for every run (e.g. MAX_ITERS)
    cpus_per_run: float = 1.0
    runners: int = 0  # trainers running scripts at once; 0: the cluster's CPUs / cpus_per_run
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    def validate(self) -> None:
        super().validate()
        self.sandbox.mode = Sandbox(self.sandbox).mode  # auto resolved here: no working sandbox is exit 2
        try:
            template = load_template(template_folder(self))
        except TemplateError as e:
            raise ConfigError("template", self.template, str(e)) from None
        check_choice("ideas.source", self.ideas.source, ("seed", "coder"))
        for key in ("max_runs", "max_attempts", "plot_attempts", "ideas.num_ideas"):
            value = _get(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(key, value, "must be a positive int")
        for key in ("ideas.reflections", "ideas.json_retries"):
            if _get(self, key) < 0:
                raise ConfigError(key, _get(self, key), "must be >= 0")
        for key in ("run_timeout_s", "plot_timeout_s", "cpus_per_run"):
            if _get(self, key) <= 0:
                raise ConfigError(key, _get(self, key), "must be > 0")
        if self.runners < 0:
            raise ConfigError("runners", self.runners, "must be >= 0 (0: one per cpus_per_run of the cluster)")
        if not 0 < self.ideas.duplicate_threshold <= 1:
            raise ConfigError("ideas.duplicate_threshold", self.ideas.duplicate_threshold, "must be in (0, 1]")
        names = [i.get("name") for i in template.seed_ideas if isinstance(i, dict)]
        for name in self.ideas.names:
            if name not in names:
                raise ConfigError("ideas.names", name, "allowed: " + ", ".join(map(str, names)))
        if self.ideas.source == "seed" and not self.ideas.names and self.ideas.num_ideas > len(template.seed_ideas):
            raise ConfigError("ideas.num_ideas", self.ideas.num_ideas,
                              f"the template has {len(template.seed_ideas)} seed ideas")
        if self.coder.kind != "scripted" and ":" not in self.coder.kind:
            raise ConfigError("coder.kind", self.coder.kind, "allowed: scripted, or package.module:ATTR")
        if self.data.path and not Path(self.data.path).expanduser().is_dir():
            raise ConfigError("data.path", self.data.path, "must be an existing folder")


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def template_folder(cfg: ScientistConfig) -> Path:
    path = Path(cfg.template).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def units(cfg: ScientistConfig) -> list[dict]:
    """One unit per idea slot; a seed slot holds its idea as written, a coder slot its number
    (the idea is made in execute). The template's hash is in every key."""
    template = load_template(template_folder(cfg))
    common = {"template_sha256": template.sha256(), "setup": result_setup(cfg, NOT_IN_UNIT_KEY)}
    if cfg.ideas.source == "coder":
        return [{"slot": k, "source": "coder", **common} for k in range(cfg.ideas.num_ideas)]
    chosen = ([i for i in template.seed_ideas if isinstance(i, dict) and i.get("name") in cfg.ideas.names]
              if cfg.ideas.names else template.seed_ideas[:cfg.ideas.num_ideas])
    return [{"slot": k, "source": "seed", "seed_idea": idea, **common} for k, idea in enumerate(chosen)]


def loop_settings(cfg: ScientistConfig) -> LoopSettings:
    return LoopSettings(cfg.max_runs, cfg.max_attempts, cfg.plot_attempts, cfg.run_timeout_s, cfg.plot_timeout_s,
                        cfg.stderr_chars, cfg.metric, cfg.higher_is_better)


def make_coder(cfg: ScientistConfig):
    if cfg.coder.kind == "scripted":
        return ScriptedCoder(dict(cfg.coder.sweeps))
    module, attr = cfg.coder.kind.rsplit(":", 1)
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError("coder.kind", cfg.coder.kind, f"cannot load: {e}") from None
    return factory(cfg)


def seed_slots(cfg: ScientistConfig, template: Template) -> list[dict]:
    """Every selected seed idea checked, and de-duplicated against the ones before it."""
    chosen = units(cfg)
    slots, kept = [], []
    for unit in chosen:
        try:
            idea = check_idea(unit["seed_idea"])
        except IdeaError as e:
            slots.append({"idea": None, "reason": f"malformed seed idea: {e}"})
            continue
        why = duplicate_of(idea, kept, cfg.ideas.duplicate_threshold)
        slots.append({"idea": None if why else idea, "reason": f"duplicate: {why}" if why else ""})
        if not why:
            kept.append(idea)
    return slots


def coder_slots(cfg: ScientistConfig, template: Template, coder_pool, run_dir: Path, log) -> list[dict]:
    """The generated ideas, made once and kept in ideas.json (a resumed run reuses them)."""
    path = run_dir / "ideas.json"
    if path.exists():
        return json.loads(path.read_text())
    archive = []
    for seed in template.seed_ideas:
        try:
            archive.append(check_idea(seed))
        except IdeaError:
            continue
    task = f"{template.system}\n\n{template.task_description}"
    job = generate_ideas(task, template.experiment, archive, cfg.ideas.num_ideas, cfg.ideas.reflections,
                         cfg.ideas.json_retries, cfg.ideas.duplicate_threshold, cfg.seed)
    [(_, slots, wall)] = list(drive([("ideas", job)], {Propose: coder_pool}, 1))
    log(f"[ai-scientist] generated {sum(s['idea'] is not None for s in slots)} of {len(slots)} ideas in {wall:.1f} s")
    write_durable(path, json.dumps(slots, indent=1))
    return slots


def idea_folder(run_dir: Path, slot: int, name: str) -> Path:
    return run_dir / "ideas" / f"{slot:02d}_{name}"


def execute(cfg: ScientistConfig, pending: list[dict], ctx):
    if not pending:
        return
    template = load_template(template_folder(cfg))
    coder_pool = LocalPool(make_coder(cfg))
    slots = (coder_slots(cfg, template, coder_pool, ctx.run_dir, ctx.log) if cfg.ideas.source == "coder"
             else seed_slots(cfg, template))
    jobs = []
    for unit in pending:
        slot = slots[unit["slot"]]
        if slot["idea"] is None:
            ctx.log(f"[ai-scientist] idea slot {unit['slot']} dropped: {slot['reason']}")
            yield unit, {"status": "dropped", "reason": slot["reason"], "name": (slot.get("proposed") or {}).get("name"),
                         "runs": [], "plots": []}
            continue
        folder = idea_folder(ctx.run_dir, unit["slot"], slot["idea"]["name"])
        jobs.append((unit, idea_loop(slot["idea"], folder, template, loop_settings(cfg), cfg.seed + unit["slot"])))
    if not jobs:
        return
    size = cfg.runners or max(1, int(ray.cluster_resources().get("CPU", 1) // cfg.cpus_per_run))
    size = min(size, len(jobs))
    if cfg.sandbox.mode == "off":
        ctx.log("[ai-scientist] WARNING: sandbox.mode=off: the coder's scripts run unconfined on this machine")
    ctx.log(f"[ai-scientist] {len(jobs)} ideas over {size} trainers (sandbox {cfg.sandbox.mode})")
    runners = TrainerPool(size, RunnerSettings(cfg.sandbox, cfg.data, dict(cfg.run_env), cfg.stderr_chars),
                          cfg.cpus_per_run)
    try:
        for unit, result, wall in drive(jobs, {Propose: coder_pool, Execute: runners}, ctx.in_flight(len(jobs))):
            ctx.log(f"[ai-scientist] {result['name']}: baseline and {len(result['runs']) - 1} runs, best {result['metric']} "
                    f"{result['best']} (baseline {result['baseline']}), {wall:.0f} s")
            yield unit, {**result, "folder": str(Path(result["folder"]).relative_to(ctx.run_dir)), "wall_s": wall}
    finally:
        runners.shutdown()


def summarize(cfg: ScientistConfig, rows, ctx) -> Summary:
    ideas, runs = [], []
    for row in rows:
        r = row.result
        ideas.append({"slot": row.unit["slot"], "idea": r.get("name"), "status": r["status"], "reason": r["reason"],
                      f"baseline_{cfg.metric}": r.get("baseline"), "best_run": r.get("best_run"),
                      f"best_{cfg.metric}": r.get("best"), "improvement": r.get("improvement"),
                      "runs": len(r["runs"]) - 1 if r["runs"] else 0, "plots": len(r["plots"]),
                      "report": f"{r['folder']}/report.md" if r.get("folder") else ""})
        runs += [{"idea": r.get("name"), **{k: v for k, v in run.items() if k != "results"}} for run in r["runs"]]
    scalars = {f"best/{i['idea']}": i[f"best_{cfg.metric}"] for i in ideas if i["status"] == "done"}
    scalars.update(ideas=len(ideas), ideas_done=sum(i["status"] == "done" for i in ideas),
                   ideas_dropped=sum(i["status"] == "dropped" for i in ideas), sandbox=cfg.sandbox.mode)
    notes = (f"Each idea ran a baseline (run_0, the template as shipped) and up to {cfg.max_runs} runs of "
             f"{cfg.max_attempts} attempts each, edited by the `{cfg.coder.kind}` coder, every run sandboxed "
             f"(mode `{cfg.sandbox.mode}`, {cfg.run_timeout_s:g} s per run, {cfg.plot_timeout_s:g} s per plot). "
             f"Improvement is the baseline's {cfg.metric} minus the best run's "
             f"({'reversed: higher is better' if cfg.higher_is_better else 'lower is better'}). Results are read "
             "by the orchestrator from final_info.json through the sandbox-output rules; each idea's report.md "
             "holds its runs table, plots and notes. Duplicate ideas are filtered offline (normalised title, "
             f"text similarity >= {cfg.ideas.duplicate_threshold}); there is no web novelty search. No LaTeX "
             "paper and no automated review are produced (out of scope).")
    return Summary(title=f"AI-Scientist loop: {cfg.preset}", scalars=scalars, tables={"ideas": ideas, "runs": runs},
                   notes=notes)


EXPERIMENT = Experiment("ai-scientist", ScientistConfig, units, execute, summarize)
