"""Measuring the tiny world on the test split: policy pass@k, PRM AUROC, best-of-16.

Answers are graded with the shared grader; "chain" metrics count only fully correct chains,
since with answers in 1..99 wrong chains often land on the right answer. PRM quality is
measured against step correctness, and best-of-16 over disjoint groups of 16 samples:
PRM-weighted voting sums each sample's aggregated step scores per answer ("last": the last
step's score, whose label is the whole chain's correctness; "min": the lowest step score,
which also catches a chain whose PRM forgot an early wrong step); prm_best_of16 takes the
single best-scored sample. The headline `weighted_bon16` uses the build's aggregation.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from orchestrator.grading import answers_equal, extract_answer, grade
from orchestrator.search.aggregate import aggregate
from orchestrator.tasks import arith
from orchestrator.tasks.arith import Problem
from orchestrator.tinyworld.prm import Chain

BON_GROUP = 16
AGGREGATIONS = ("last", "min", "prod")


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U); None when one class is missing."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def majority_answer(answers: Sequence[str | None]) -> str | None:
    """Most frequent extracted answer; ties go to the answer seen first."""
    counts = Counter(a for a in answers if a is not None)
    return max(counts, key=lambda a: (counts[a], -answers.index(a))) if counts else None


def weighted_answer(answers: Sequence[str | None], weights: Sequence[float]) -> str | None:
    """Answer with the largest summed PRM weight (PRM-weighted best-of-n)."""
    totals: dict[str, float] = defaultdict(float)
    for answer, weight in zip(answers, weights):
        if answer is not None:
            totals[answer] += weight
    return max(totals, key=totals.get) if totals else None


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def evaluate(problems: Sequence[Problem], chains: dict[str, list[Chain | None]],
             scores: dict[str, list[list[float]]], aggregation: str = "last") -> dict:
    """Report metrics from each test problem's samples (by problem id; None for an output
    with no step) and the PRM's per-step scores of each (empty for None)."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    levels = sorted({p.level for p in problems})
    per_problem = []
    step_scores, step_labels, step_levels = [], [], []
    for problem in problems:
        samples = chains[problem.id]
        answers = [extract_answer(c.text) if c else None for c in samples]
        correct = [c is not None and grade(c.text, problem.answer) for c in samples]
        chain_correct = [c is not None and arith.is_fully_correct(problem, c.steps) for c in samples]
        chain_scores = {how: [aggregate(s, how) for s in scores[problem.id]] for how in AGGREGATIONS}
        groups = [range(g, g + BON_GROUP) for g in range(0, len(samples) - BON_GROUP + 1, BON_GROUP)]

        def group_accuracy(pick) -> float:
            picked = [pick(g) for g in groups]
            return _mean(a is not None and answers_equal(a, problem.answer) for a in picked)

        best = chain_scores[aggregation]
        per_problem.append({
            "level": problem.level,
            "pass1": _mean(correct), "passn": float(any(correct)),
            "chain_pass1": _mean(chain_correct), "chain_passn": float(any(chain_correct)),
            **{f"weighted_bon16_{how}": group_accuracy(
                lambda g, w=w: weighted_answer([answers[i] for i in g], [w[i] for i in g]))
               for how, w in chain_scores.items()},
            "majority16": group_accuracy(lambda g: majority_answer([answers[i] for i in g])),
            "prm_best_of16": group_accuracy(lambda g: answers[max(g, key=lambda i: best[i])]),
        })
        for chain, chain_scores in zip(samples, scores[problem.id]):
            if chain is not None:
                step_scores += chain_scores
                step_labels += [bool(x) for x in chain.labels]
                step_levels += [problem.level] * len(chain.steps)

    def by_level(key: str) -> dict[str, float]:
        return {str(level): round(_mean(p[key] for p in per_problem if p["level"] == level), 4) for level in levels}

    def overall(key: str) -> float:
        return round(_mean(p[key] for p in per_problem), 4)

    n = len(chains[problems[0].id])
    step_levels_arr = np.asarray(step_levels)
    level_auroc = {}
    for level in levels:
        mask = step_levels_arr == level
        value = auroc(np.asarray(step_scores)[mask], np.asarray(step_labels)[mask])
        level_auroc[str(level)] = None if value is None else round(value, 4)
    pooled = auroc(step_scores, step_labels)
    return {
        "test_problems": len(per_problem), "samples_per_problem": n,
        "policy_pass1": overall("pass1"), f"policy_pass{n}": overall("passn"),
        "pass1_by_level": by_level("pass1"), f"pass{n}_by_level": by_level("passn"),
        "chain_pass1": overall("chain_pass1"), f"chain_pass{n}": overall("chain_passn"),
        "chain_pass1_by_level": by_level("chain_pass1"), f"chain_pass{n}_by_level": by_level("chain_passn"),
        "prm_auroc": None if pooled is None else round(pooled, 4), "prm_auroc_by_level": level_auroc,
        "aggregation": aggregation,
        "weighted_bon16": overall(f"weighted_bon16_{aggregation}"), "majority16": overall("majority16"),
        "weighted_bon16_by_level": by_level(f"weighted_bon16_{aggregation}"),
        "majority16_by_level": by_level("majority16"),
        "weighted_bon16_by_aggregation": {how: overall(f"weighted_bon16_{how}") for how in AGGREGATIONS},
        "prm_best_of16": overall("prm_best_of16"),
        "step_positive_rate": round(_mean(step_labels), 4),
    }


def format_report(report: dict) -> str:
    """The report as a short table for `scalerun tinyworld report`."""
    n = report["samples_per_problem"]
    build, train = report["build_seconds"], report["train_seconds"]
    lines = [f"build time {build:.0f} s: training policy and PRM {train:.0f} s, evaluation {build - train:.0f} s "
             f"(cpu {report.get('build_cpu_seconds', 0):.0f} s); "
             f"{report['test_problems']} test problems x {n} samples at T=0.8; "
             f"PRM step scores aggregated by {report['aggregation']!r}",
             f"{'level':>6} {'pass@1':>7} {f'pass@{n}':>8} {'chain@1':>8} {'AUROC':>6} {'wBoN@16':>8} {'maj@16':>7}"]
    for level in report["pass1_by_level"]:
        auc = report["prm_auroc_by_level"][level]
        lines.append(f"{level:>6} {report['pass1_by_level'][level]:>7.3f} {report[f'pass{n}_by_level'][level]:>8.3f} "
                     f"{report['chain_pass1_by_level'][level]:>8.3f} {'-' if auc is None else f'{auc:.3f}':>6} "
                     f"{report['weighted_bon16_by_level'][level]:>8.3f} {report['majority16_by_level'][level]:>7.3f}")
    auc = report["prm_auroc"]
    lines.append(f"{'all':>6} {report['policy_pass1']:>7.3f} {report[f'policy_pass{n}']:>8.3f} "
                 f"{report['chain_pass1']:>8.3f} {'-' if auc is None else f'{auc:.3f}':>6} "
                 f"{report['weighted_bon16']:>8.3f} {report['majority16']:>7.3f}")
    lines.append("weighted best-of-16 by aggregation: " + ", ".join(
        f"{how} {value:.3f}" for how, value in report["weighted_bon16_by_aggregation"].items()))
    lines.append(f"Monte Carlo PRM labels agree with exact step labels on {report['mc_agreement']:.3f} "
                 f"of {report['mc_checked_steps']} steps")
    return "\n".join(lines)
