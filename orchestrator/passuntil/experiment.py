"""PassUntil evaluation of a model series and the task scaling law (Hu et al. 2023).

Work units are (model, problem): sample until `r` passes or `cap` draws (see sampling.py).
Per model the driver keeps many problems in flight, so rounds of different problems share
policy calls. The summary estimates every instance's pass rate (censored ones as bounds),
each model's PassUntil (PU), fits Eq. (3) on all models but the largest and predicts it, and
contrasts PU with a plain fixed-K pass@1 from the first K draws of the same instances.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from actors.launch import launch_policy_pool
from orchestrator.checkpoints import num_parameters
from orchestrator.config import content_hash, result_setup
from orchestrator.datasets import load_items
from orchestrator.driver import drive
from orchestrator.experiments import Experiment, Summary
from orchestrator.grading import grade
from orchestrator.models import placement_keys
from orchestrator.passuntil import plots
from orchestrator.passuntil.config import PassUntilConfig
from orchestrator.passuntil.estimators import PassUntilRule, estimate_arrays
from orchestrator.passuntil.fit import NoTaskLine, fit_instance_law, fit_task_law
from orchestrator.passuntil.sampling import pass_until
from orchestrator.passuntil.series import SERIES, build_series, recipe
from orchestrator.protocols import Generate
from orchestrator.search import derive_seed
from orchestrator.stats import bootstrap_mean_interval
from orchestrator.tasks import arith
from orchestrator.tinyworld import PROMPT_FORMAT

# Config fields that never change a unit's result. Everything else is in every unit key.
NOT_IN_UNIT_KEY = (
    *placement_keys("policy"),
    "policy.path", "policy.family",  # not read: the models are the series' or `models`
    "series", "models",  # which models exist: a unit names its own model
    "dataset.num_problems",  # how many problems
)


def _models(cfg: PassUntilConfig) -> list[dict]:
    """name, checkpoint and N of every model, smallest first (the series is built on first use)."""
    if cfg.models:
        found = [{"name": f"m{i}", "path": p, "params": num_parameters(p, non_embedding=True)}
                 for i, p in enumerate(cfg.models)]
    else:
        found = [{"name": m.name, "path": str(m.path), "params": m.non_embedding_params}
                 for m in build_series(cfg.series)]
    return sorted(found, key=lambda m: m["params"])


def stream_seed(cfg: PassUntilConfig, unit: dict) -> int:
    """The unit's random stream: from (seed, model, problem), or (seed, problem) when paired."""
    return derive_seed(unit["seed"], unit["problem"], *(() if cfg.paired_models else (unit["model"],)))


def _rule(cfg: PassUntilConfig) -> PassUntilRule:
    return PassUntilRule(r=cfg.r, cap=cfg.cap, first_round=cfg.first_round)


def units(cfg: PassUntilConfig) -> list[dict]:
    setup = result_setup(cfg, NOT_IN_UNIT_KEY)
    models = [{"model": f"w{w}", "recipe": content_hash(recipe(cfg.series, w))} for w in SERIES[cfg.series]["widths"]] \
        if not cfg.models else [{"model": p} for p in cfg.models]
    return [{**m, "problem": item.id, "seed": cfg.seed, "setup": setup}
            for m in models for item in load_items(cfg.dataset)]


def execute(cfg: PassUntilConfig, pending: list[dict], ctx):
    if not pending:
        return
    items = {item.id: item for item in load_items(cfg.dataset)}
    models = {m["name"]: m for m in _models(cfg)}
    by_model = defaultdict(list)
    for unit in pending:
        by_model[unit["model"] if not cfg.models else f"m{cfg.models.index(unit['model'])}"].append(unit)
    rule = _rule(cfg)
    for name, model_units in by_model.items():
        model = models[name]
        ctx.log(f"[passuntil] {name}: N={model['params']:,} non-embedding parameters, {len(model_units)} instances")
        pool = launch_policy_pool(cfg.policy, model["path"], ctx.run_dir)
        jobs = ((u, pass_until(PROMPT_FORMAT.template.format(question=items[u["problem"]].question), rule,
                               stream_seed(cfg, u), _passes(cfg, items[u["problem"]]), cfg.fixed_k, cfg.temperature,
                               max_tokens=cfg.max_tokens))
                for u in model_units)
        try:
            for unit, result, wall in drive(jobs, {Generate: pool}, ctx.in_flight(64 * cfg.ray.cohorts_per_replica()),
                                            affinity_key=lambda u: u["problem"], cohorts=cfg.ray.cohorts,
                                            cohort_affinity=cfg.ray.cohort_affinity):
                yield unit, {**result, "params": model["params"], "level": items[unit["problem"]].level,
                             "wall_seconds": wall}
        finally:
            pool.shutdown()


def _passes(cfg: PassUntilConfig, item):
    """`passes(text, truncated)`: whether a sampled solution counts as a pass, per `pass_criterion`.
    A truncated solution passes `answer` only with a boxed answer (its last number is usually an
    intermediate one); `chain` compares every step, so a cut-off chain never matches."""
    if cfg.pass_criterion == "chain":
        return lambda text, truncated: arith.solution_matches(item.reference_steps, text)
    return lambda text, truncated: grade(text, item.answer, truncated)


def summarize(cfg: PassUntilConfig, rows, ctx) -> Summary:
    rule = _rule(cfg)
    by_model = defaultdict(dict)
    for row in rows:
        by_model[row.unit["model"]][row.unit["problem"]] = row.result
    names = sorted(by_model, key=lambda m: next(iter(by_model[m].values()))["params"])
    problems = list(by_model[names[0]])
    params = [next(iter(by_model[m].values()))["params"] for m in names]
    passes = np.array([[by_model[m][p]["passes"] for p in problems] for m in names])
    samples = np.array([[by_model[m][p]["samples"] for p in problems] for m in names])
    estimates = [estimate_arrays(passes[i], samples[i], rule) for i in range(len(names))]
    p_hat = np.array([e["p_hat"] for e in estimates])

    model_rows, censored_rows = [], []
    for i, m in enumerate(names):
        fixed = np.array([by_model[m][p]["fixed_k_passes"] / by_model[m][p]["fixed_k"] for p in problems])
        model_rows.append({"model": m, "params": params[i], **_task_row(estimates[i], cfg.seed),
                           "fixed_k_pass1": float(fixed.mean()), "fixed_k_zero": bool(fixed.sum() == 0),
                           "samples_drawn": int(sum(by_model[m][p]["drawn"] for p in problems))})
        for j, p in enumerate(problems):
            if estimates[i]["censored"][j]:
                censored_rows.append({"model": m, "problem": p, "passes": int(passes[i, j]),
                                      "samples": int(samples[i, j]),
                                      "upper_bound": float(estimates[i]["high"][j])})
    try:
        task_fit = fit_task_law(params, p_hat, held_out=-1, seed=cfg.seed)
        instance_fit = fit_instance_law(params, passes, samples, p_hat, held_out=-1, seed=cfg.seed)
        no_fit = ""
    except NoTaskLine as e:  # the measurements still stand; only the prediction is missing
        task_fit = instance_fit = None
        no_fit = f"no fit: {e}"
    prediction_rows = []
    for label, fit in (("task-level fit (Eq. 3)", task_fit), ("instance-level fit", instance_fit)):
        if fit is not None:
            pred = fit.prediction
            prediction_rows.append({"fit": label, "model": names[-1], "params": params[-1],
                                    "predicted_pu": pred.predicted, "predicted_low": pred.predicted_ci[0],
                                    "predicted_high": pred.predicted_ci[1], "measured_pu": pred.measured,
                                    "measured_low": pred.measured_ci[0], "measured_high": pred.measured_ci[1],
                                    "relative_deviation": pred.relative_deviation})
    figures = {
        "scaling_law": plots.scaling_law(ctx.run_dir / "scaling_law.png", model_rows, task_fit),
        "fixed_k_vs_passuntil": plots.fixed_vs_passuntil(ctx.run_dir / "fixed_k_vs_passuntil.png", model_rows,
                                                        cfg.fixed_k),
    }
    scalars = {"fit_slope": task_fit and task_fit.slope, "fit_intercept": task_fit and task_fit.intercept,
               "fit_slope_low": task_fit and task_fit.slope_ci[0],
               "fit_slope_high": task_fit and task_fit.slope_ci[1],
               # models with PU 0 or 1 have no log(-log PU): off the task-level line (not the instance fit)
               "fit_left_out": no_fit or ", ".join(names[i] for i in task_fit.excluded) or "none",
               "heldout_model": names[-1], "heldout_predicted_pu": task_fit and task_fit.prediction.predicted,
               "heldout_measured_pu": float(p_hat[-1].mean()),
               "heldout_relative_deviation": task_fit and task_fit.prediction.relative_deviation,
               "censored_instances": len(censored_rows)}
    passing = {"answer": "a right final answer", "chain": "every step equal to the reference solution's"}
    notes = (f"{len(problems)} problems x {len(names)} models; sampling until r={cfg.r} passes or cap={cfg.cap} "
             f"draws (temperature {cfg.temperature}); a pass is {passing[cfg.pass_criterion]}. Instance pass rates are the unbiased (r-1)/(K-1) "
             "estimates; censored instances are upper bounds, listed below, never zeros. PU is the mean over "
             "instances with a bootstrap interval; pu_bound puts every censored instance at its upper bound. "
             "The law log(-log PU) = log c - alpha log N (Eq. 3 of Hu et al. 2023, N = non-embedding "
             "parameters) is fitted on every model but the largest, which it predicts. "
             f"Fixed-K reads pass@1 from the first {cfg.fixed_k} draws of the same instances."
             + (f" {no_fit[0].upper()}{no_fit[1:]}: nothing is predicted; the measurements above stand." if no_fit else ""))
    return Summary(title=f"PassUntil: {cfg.preset}", scalars=scalars,
                   tables={"models": model_rows, "prediction": prediction_rows, "censored": censored_rows},
                   figures=figures, notes=notes)


def _task_row(est: dict, seed: int) -> dict:
    """A model's PU: the mean of its instances' estimates, bootstrap interval over instances;
    and pu_bound, the PU with every censored instance at its upper bound, which is what a model
    whose instances never passed can be said to stay under (its PU reads 0)."""
    pu, low, high = bootstrap_mean_interval(est["p_hat"], seed=seed)
    bound = float(np.where(est["censored"], est["high"], est["p_hat"]).mean())
    return {"pu": pu, "pu_low": low, "pu_high": high, "censored": int(est["censored"].sum()), "pu_bound": bound}


EXPERIMENT = Experiment("passuntil", PassUntilConfig, units, execute, summarize)
