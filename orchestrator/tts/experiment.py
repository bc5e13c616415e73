"""The test-time-compute sweep (Snell et al. 2024): accuracy vs budget N for every strategy.

Work units, each keyed by its content:
- `oracle` (problem): K whole solutions, for the difficulty bins (pass@1 and mean PRM score);
- `sampling` (problem, N_max): N_max whole solutions scored by the PRM; majority, best-of-N
  and weighted best-of-N at every smaller N come from nested subsamples of them;
- `search` (problem, method, N): one run of beam search, DVTS or lookahead at budget N.
The one driver (orchestrator/driver.py) runs the strategies of many units at once through the
policy and PRM pools.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict

import numpy as np

from actors.launch import launch_policy_pool, launch_prm_pool
from orchestrator.checkpoints import num_parameters, recipe_tag, resolve_policy_path, resolve_prm_path
from orchestrator.config import result_setup
from orchestrator.datasets import load_items
from orchestrator.driver import drive
from orchestrator.experiments import Experiment, Summary
from orchestrator.grading import answers_equal, extract_answer
from orchestrator.models import BUILTIN_PREFIX, placement_keys
from orchestrator.protocols import Generate, PromptFormat, Score
from orchestrator.search import SAMPLING_METHODS, STRATEGIES, TREE_METHODS, derive_seed
from orchestrator.search.aggregate import aggregate
from orchestrator.search.subsample import subsample_outcomes
from orchestrator.stats import bootstrap_mean_interval, two_stage_bootstrap_interval
from orchestrator.tinyworld import PROMPT_FORMAT
from orchestrator.tts import plots
from orchestrator.tts.config import TTSConfig
from orchestrator.tts.stats import Config as SweepPoint
from orchestrator.tts.stats import (compute_optimal, difficulty_levels, efficiency_multiplier, oracle_difficulty,
                                    predicted_difficulty)

VOTE_OF_METHOD = {"majority": "majority", "best_of_n": "naive", "weighted_best_of_n": "weighted"}
# Config fields that never change a unit's result. Everything else is in every unit key.
NOT_IN_UNIT_KEY = (
    *placement_keys("policy"), *placement_keys("prm"),
    "methods", "budgets", "oracle_samples",  # which units exist: a unit holds its own method and N
    "resamples", "dataset.num_problems",  # the summary's subsampling; how many problems
)


def setup(cfg: TTSConfig) -> dict:
    """Everything besides problem, method, N and seed that changes a unit's result."""
    return {**result_setup(cfg, NOT_IN_UNIT_KEY),
            "model_recipe": {"policy": recipe_tag(cfg.policy.path), "prm": recipe_tag(cfg.prm.path)}}


def units(cfg: TTSConfig) -> list[dict]:
    shared = setup(cfg)
    n_max = max(cfg.budgets)
    out = []
    for item in load_items(cfg.dataset):
        base = {"problem": item.id, "seed": cfg.seed, "setup": shared}
        out.append({**base, "kind": "oracle", "n": cfg.oracle_samples})
        if any(m in SAMPLING_METHODS for m in cfg.methods):
            out.append({**base, "kind": "sampling", "n": n_max})
        for method in cfg.methods:
            if method in TREE_METHODS:
                out += [{**base, "kind": "search", "method": method, "n": n} for n in cfg.budgets]
    return out


def prompt_format(cfg: TTSConfig) -> PromptFormat:
    p = cfg.prompt
    if p.template or p.use_chat:
        return PromptFormat(template=p.template or "{question}", step_delimiter=p.step_delimiter,
                            use_chat=p.use_chat, system_prompt=p.system_prompt)
    if cfg.policy.path.startswith(BUILTIN_PREFIX):
        return PROMPT_FORMAT
    return PromptFormat(step_delimiter=p.step_delimiter, use_chat=True, system_prompt=p.system_prompt)


def stream_seed(unit: dict) -> int:
    """The unit's own random stream, from (seed, problem, kind, method, N): no two units share
    draws, so problems are independent, as every interval that resamples them assumes."""
    return derive_seed(unit["seed"], unit["problem"], unit["kind"], unit.get("method"), unit["n"])


def strategy(unit: dict, question: str, cfg: TTSConfig, fmt: PromptFormat):
    """The strategy generator of one unit; oracle and sampling units sample whole solutions."""
    method = unit.get("method", "weighted_best_of_n")
    return STRATEGIES[method](question, unit["n"], cfg.search, fmt, stream_seed(unit), extract_answer,
                              answers_equal)


def execute(cfg: TTSConfig, pending: list[dict], ctx):
    if not pending:
        return
    items = {item.id: item for item in load_items(cfg.dataset)}
    policy_dir, prm_dir = resolve_policy_path(cfg.policy.path), resolve_prm_path(cfg.prm.path)
    flops_per_token = {"policy": 2 * num_parameters(policy_dir), "prm": 2 * num_parameters(prm_dir)}
    fmt = prompt_format(cfg)
    ctx.log(f"[tts] policy {policy_dir} ({cfg.policy.backend}), PRM {prm_dir}")
    policy_pool = launch_policy_pool(cfg.policy, policy_dir, ctx.run_dir)
    prm_pool = launch_prm_pool(cfg.prm, prm_dir, ctx.run_dir)
    # Cheap search units first, so partial results cover every method early.
    order = sorted(pending, key=lambda u: (u["n"], u["kind"] != "search"))
    jobs = ((u, strategy(u, items[u["problem"]].question, cfg, fmt)) for u in order)
    max_active = ctx.in_flight(8 * cfg.ray.cohorts_per_replica() * (cfg.policy.replicas + cfg.prm.replicas))
    pools = {Generate: policy_pool, Score: prm_pool}
    try:
        for unit, result, wall in drive(jobs, pools, max_active, affinity_key=lambda u: u["problem"],
                                        cohorts=cfg.ray.cohorts, cohort_affinity=cfg.ray.cohort_affinity):
            yield unit, unit_result(unit, result, items[unit["problem"]], cfg, flops_per_token, wall)
    finally:
        policy_pool.shutdown()
        prm_pool.shutdown()


def unit_result(unit: dict, result, item, cfg: TTSConfig, flops_per_token: dict, wall: float) -> dict:
    u = result.usage
    computed_prompt = u.policy_prompt_tokens - u.policy_cached_prompt_tokens
    # Nominal cost: what the method spends with no cache, the same whatever ran before or on
    # resume; budgets are compared by it. Computed: what this run's models actually ran.
    row = {"policy_prompt_tokens": u.policy_prompt_tokens,
           "policy_generated_tokens": u.policy_generated_tokens, "prm_tokens": u.prm_tokens,
           "policy_samples": u.policy_samples,
           "policy_flops": flops_per_token["policy"] * (u.policy_prompt_tokens + u.policy_generated_tokens),
           "prm_flops": flops_per_token["prm"] * u.prm_tokens,
           "computed_policy_prompt_tokens": computed_prompt, "computed_prm_tokens": u.prm_computed_tokens,
           "computed_flops": flops_per_token["policy"] * (computed_prompt + u.policy_generated_tokens)
           + flops_per_token["prm"] * u.prm_computed_tokens,
           "compute_seconds": u.policy_compute_seconds + u.prm_compute_seconds, "wall_seconds": wall,
           "iterations": result.iterations, "level": item.level}
    if unit["kind"] == "search":
        row.update(answer=result.answer, correct=bool(result.answer is not None and answers_equal(result.answer, item.answer)),
                   completions=len(result.solutions),
                   best_solution=cfg.prompt.step_delimiter.join(result.solutions[0].steps) if result.solutions else "")
        if result.trees:
            row["trees"] = [[asdict(node) for node in tree] for tree in result.trees]
        return row
    sols = result.solutions
    row.update(answers=[s.answer for s in sols],
               correct=[bool(s.answer is not None and answers_equal(s.answer, item.answer)) for s in sols],
               step_scores=[s.step_scores for s in sols],
               sample_solution=cfg.prompt.step_delimiter.join(sols[0].steps) if sols else "")
    return row


def summarize(cfg: TTSConfig, rows, ctx) -> Summary:
    agg = cfg.search.aggregation
    budgets = sorted(cfg.budgets)
    by_kind = defaultdict(dict)
    for r in rows:
        key = (r.unit["kind"], r.unit.get("method"), r.unit["n"])
        by_kind[key][r.unit["problem"]] = r.result
    oracle = by_kind[("oracle", None, cfg.oracle_samples)]
    problems = list(oracle)  # dataset order
    oracle_level = difficulty_levels(oracle_difficulty([oracle[p]["correct"] for p in problems]))
    final_scores = [[aggregate(s, agg) if s else 0.0 for s in oracle[p]["step_scores"]] for p in problems]
    predicted_level = difficulty_levels(predicted_difficulty(final_scores))

    # Per (method, N): per-problem accuracy (mean over resamples for sampling methods) and cost.
    per_problem: dict[tuple[str, int], np.ndarray] = {}
    intervals: dict[tuple[str, int], tuple[float, float, float]] = {}
    cost: dict[tuple[str, int], dict] = {}
    sampling = by_kind.get(("sampling", None, max(budgets)), {})
    if sampling:
        outcomes = {p: subsample_outcomes(sampling[p]["answers"],
                                          [aggregate(s, agg) if s else 0.0 for s in sampling[p]["step_scores"]],
                                          sampling[p]["correct"], budgets, answers_equal,
                                          num_resamples=cfg.resamples, seed=derive_seed(cfg.seed, p, "subsample"))
                    for p in problems}
        methods = [m for m in cfg.methods if m in SAMPLING_METHODS] + ["pass@n"]
        for m in methods:
            metric = VOTE_OF_METHOD.get(m, "pass")
            for n in budgets:
                draws = [outcomes[p][n][metric] for p in problems]  # problems x resamples
                per_problem[(m, n)] = np.mean(draws, axis=1)
                intervals[(m, n)] = two_stage_bootstrap_interval(draws, seed=cfg.seed)
                scale = n / max(budgets)  # a subsample of n costs n/N_max of the full draw
                cost[(m, n)] = _mean_cost([sampling[p] for p in problems], scale, with_prm=m not in ("majority", "pass@n"))
    for m in [m for m in cfg.methods if m in TREE_METHODS]:
        for n in budgets:
            res = by_kind[("search", m, n)]
            per_problem[(m, n)] = np.array([float(res[p]["correct"]) for p in problems])
            intervals[(m, n)] = bootstrap_mean_interval(per_problem[(m, n)], seed=cfg.seed)
            cost[(m, n)] = _mean_cost([res[p] for p in problems], 1.0, with_prm=True)

    accuracy_rows, level_rows = [], []
    for (m, n), acc in per_problem.items():
        mean, low, high = intervals[(m, n)]
        accuracy_rows.append({"method": m, "n": n, "accuracy": mean, "ci_low": low, "ci_high": high,
                              "problems": len(acc), **cost[(m, n)]})
        for level in range(1, 6):
            mask = oracle_level == level
            if mask.any():
                level_rows.append({"method": m, "n": n, "level": level, "accuracy": float(acc[mask].mean()),
                                   "problems": int(mask.sum())})
    accuracy_rows.sort(key=lambda r: (r["method"], r["n"]))
    searchable = [(m, n) for (m, n) in per_problem if m != "pass@n"]
    curve_rows, multiplier_rows, below_best = [], [], []
    for bins, levels in (("oracle", oracle_level), ("predicted", predicted_level)):
        # Lookahead-k spends N x (k+1) generations: that is its budget on this curve.
        points = [SweepPoint(f"{m}@{n}", n * (cfg.search.lookahead + 1) if m == "lookahead" else n,
                             per_problem[(m, n)]) for (m, n) in searchable]
        curve = compute_optimal(points, levels, budgets, seed=cfg.seed)
        for point in curve:
            curve_rows.append({"bins": bins, "n": int(point.budget), "accuracy": point.accuracy,
                               "ci_low": point.low, "ci_high": point.high,
                               "choices": "; ".join(f"L{c.level}:{c.best}" for c in point.levels)})
            single = max((p for p in points if p.cost <= point.budget), key=lambda p: p.correct.mean())
            if point.accuracy < single.correct.mean():
                below_best.append((f"{bins} bins at N={point.budget:g}: {point.accuracy:.3f} against "
                                   f"{single.name} {single.correct.mean():.3f}, in-sample per-level best "
                                   f"{point.in_sample_accuracy:.3f}",
                                   point.in_sample_accuracy - single.correct.mean()))
        weighted = [p for p in points if p.name.startswith("weighted_best_of_n@")]
        for at in (4, 16):
            if weighted and any(np.isclose(p.budget, at) for p in curve):
                m = efficiency_multiplier(weighted, curve, at, levels, seed=cfg.seed)
                multiplier_rows.append({"bins": bins, "n": at, "multiplier": m.value, "ci_low": m.low,
                                        "ci_high": m.high, "weighted_bon_matches_at_n": m.matched_budget})
    drawn = sampling or oracle  # the first sample of a problem's draw, with its answer and grade
    samples = [{"problem": p, "level": oracle[p]["level"], "method": "sampling" if sampling else "oracle",
                "answer": drawn[p]["answers"][0] if drawn[p]["answers"] else None,
                "correct": bool(drawn[p]["correct"] and drawn[p]["correct"][0]),
                "solution": drawn[p]["sample_solution"]} for p in problems[:10]]
    for m in [m for m in cfg.methods if m in TREE_METHODS]:
        res = by_kind[("search", m, max(budgets))]
        samples += [{"problem": p, "level": res[p]["level"], "method": m, "answer": res[p]["answer"],
                     "correct": res[p]["correct"], "solution": res[p]["best_solution"]} for p in problems[:5]]

    figures = {
        "accuracy_vs_n": plots.accuracy_vs_budget(ctx.run_dir / "accuracy_vs_n.png", accuracy_rows,
                                                  "n", "accuracy vs budget N"),
        "accuracy_vs_flops": plots.accuracy_vs_budget(ctx.run_dir / "accuracy_vs_flops.png", accuracy_rows,
                                                      "flops", "accuracy vs FLOPs per problem"),
        "accuracy_by_level": plots.level_bars(ctx.run_dir / "accuracy_by_level.png", level_rows, max(budgets)),
        "compute_optimal": plots.compute_optimal(ctx.run_dir / "compute_optimal.png", curve_rows, accuracy_rows),
    }
    best = max((r for r in accuracy_rows if r["method"] != "pass@n"), key=lambda r: r["accuracy"])
    scalars = {f"accuracy/{r['method']}@{r['n']}": r["accuracy"] for r in accuracy_rows}
    scalars.update(best_method=f"{best['method']}@{best['n']}", best_accuracy=best["accuracy"],
                   problems=len(problems))
    oracle_pass1 = oracle_difficulty([oracle[p]["correct"] for p in problems])
    notes = (f"{len(problems)} problems; policy `{cfg.policy.path}` ({cfg.policy.backend}), "
             f"PRM `{cfg.prm.path}` ({cfg.prm.family}); aggregation `{agg}`; beam width {cfg.search.beam_width}. "
             f"Oracle pass@1 over {cfg.oracle_samples} samples: {oracle_pass1.mean():.3f}. "
             "Sampling methods at N < N_max are means over "
             f"{cfg.resamples} nested subsamples of one N_max draw. Every interval is a 95% bootstrap "
             "interval over problems (two-stage for the sampling methods: problems, then subsamples within "
             "each); every unit draws from its own random stream. Tokens and FLOPs are nominal: what a "
             "method spends with no cache, the same for a resumed run (each unit's row in results.jsonl "
             "also holds what this run computed). "
             "Levels are oracle difficulty quintiles (1 = easiest, ties to the easier level); the "
             "compute-optimal curve picks, per level and budget, the best method by 2-fold cross-validation "
             "within the level, and its interval redoes that choice in every bootstrap replicate. The "
             "efficiency multiplier is the budget at which weighted best-of-N matches the compute-optimal "
             "accuracy at N, over N (interpolated in log N; inf: not matched within the sweep)."
             + below_best_note(below_best, len(problems) // 10))
    return Summary(title=f"Test-time compute sweep: {cfg.preset}", scalars=scalars,
                   tables={"accuracy": accuracy_rows, "accuracy_by_level": level_rows,
                           "compute_optimal": curve_rows, "efficiency_multiplier": multiplier_rows,
                           "samples": samples},
                   figures=figures, notes=notes)


NO_HEADROOM = 0.01  # an in-sample per-level gain below this: the methods hardly trade places by level


def below_best_note(below_best: list[tuple[str, float]], fold_size: int) -> str:
    """Why the compute-optimal curve lies below the best single method, from its in-sample ceiling."""
    if not below_best:
        return ""
    text = (f" The compute-optimal curve lies below the best single method ({'; '.join(t for t, _ in below_best)}). "
            f"Each level's choice is made on one fold of about {fold_size} problems and scored on the other; "
            "the in-sample figure (each level's best chosen and scored on all its problems) bounds what a "
            "perfect choice could reach.")
    if max(gain for _, gain in below_best) < NO_HEADROOM:
        return text + (f" Here it is within {NO_HEADROOM} of the best single method: the methods hardly trade places "
                       "across difficulty levels, so the held-out choice pays its selection noise for no gain, "
                       "and more problems will not change that. This does not reproduce Snell et al.'s gain "
                       "from choosing the strategy per difficulty level.")
    return text + (" Here a per-level choice has room to gain, but folds this small make it mostly noise: "
                   "sweep more problems (`dataset.num_problems`).")


def _mean_cost(results: list[dict], scale: float, with_prm: bool) -> dict:
    """Mean nominal cost per problem (what runs and resumes agree on), and compute seconds."""
    def mean(key):
        return float(np.mean([r[key] for r in results])) * scale
    return {"policy_tokens": mean("policy_prompt_tokens") + mean("policy_generated_tokens"),
            "policy_generated_tokens": mean("policy_generated_tokens"),
            "prm_tokens": mean("prm_tokens") if with_prm else 0.0,
            "flops": mean("policy_flops") + (mean("prm_flops") if with_prm else 0.0),
            "compute_seconds": mean("compute_seconds")}


EXPERIMENT = Experiment("tts", TTSConfig, units, execute, summarize)
