"""Sampling-based methods: majority vote, vanilla best-of-N and weighted best-of-N.

All three sample N whole solutions in one request (stopping at the step delimiter is turned
off), split each at the delimiter into steps and score them all in one PRM call, so one run
at N_max carries everything `subsample` needs to report every method at every smaller N.
Majority does not use the scores; its PRM cost is booked apart in Usage (prm_tokens).
"""
from __future__ import annotations

from orchestrator.protocols import PromptFormat, ScoreRequest, Usage
from orchestrator.search.aggregate import aggregate, final_answer
from orchestrator.search.base import (AnswersEqual, ExtractAnswer, SearchConfig, SearchResult, Solution,
                                      call_policy, call_scorer, derive_seed)


def sampling(question: str, n: int, cfg: SearchConfig, fmt: PromptFormat, seed: int,
             extract_answer: ExtractAnswer, answers_equal: AnswersEqual, vote: str):
    usage = Usage()
    request = fmt.request(question, (), n=n, temperature=cfg.temperature, top_p=cfg.top_p,
                          max_tokens=cfg.max_solution_tokens, stop=(), seed=derive_seed(seed, "sample"))
    [result] = yield from call_policy([request], usage)
    steps = [[s for s in sample.text.split(fmt.step_delimiter) if s.strip()] for sample in result.samples]
    scored = [i for i, st in enumerate(steps) if st]
    scores = yield from call_scorer([ScoreRequest(question, tuple(steps[i])) for i in scored], usage)
    step_scores = {i: list(r.step_scores) for i, r in zip(scored, scores)}
    solutions = []
    for i, sample in enumerate(result.samples):
        own = step_scores.get(i, [])
        truncated = sample.finish_reason == "length"  # only a boxed answer of a cut-off solution votes
        solutions.append(Solution(steps[i], own, sample.finish_reason, extract_answer(sample.text, truncated),
                                  aggregate(own, cfg.aggregation)))
    return SearchResult(final_answer(solutions, vote, answers_equal), solutions, usage, iterations=1)


def majority(question, n, cfg, fmt, seed, extract_answer, answers_equal):
    return sampling(question, n, cfg, fmt, seed, extract_answer, answers_equal, vote="majority")


def best_of_n(question, n, cfg, fmt, seed, extract_answer, answers_equal):
    """Vanilla best-of-N: the single highest-scoring solution."""
    return sampling(question, n, cfg, fmt, seed, extract_answer, answers_equal, vote="naive")


def weighted_best_of_n(question, n, cfg, fmt, seed, extract_answer, answers_equal):
    """Equivalent answers pool their scores; the largest sum wins."""
    return sampling(question, n, cfg, fmt, seed, extract_answer, answers_equal, vote="weighted")
