"""Beam search with N beams of width M (Snell et al. 2024), optionally with lookahead.

Iteration 0 samples N first steps; every later one expands each of the (at most N/M) kept
beams by M, so an iteration never samples more than N steps (plus N*k lookahead samples).
New candidates are scored, completed ones leave the pool, and the N/M best open ones (by the
configured aggregation) are kept. The pool belongs to this one problem. The search stops when
N solutions are complete, when no beam is left open, or after `max_iterations`; beams still
open then are dropped. At most N completions are kept (the best by score), and the answer is
the weighted best-of-N vote over them with the same aggregation.
"""
from __future__ import annotations

import itertools

from orchestrator.protocols import PromptFormat, Usage
from orchestrator.search.aggregate import final_answer
from orchestrator.search.base import AnswersEqual, ExtractAnswer, SearchConfig, SearchResult
from orchestrator.search.steps import Node, expand, root, score_nodes


def beam_search(question: str, n: int, cfg: SearchConfig, fmt: PromptFormat, seed: int,
                extract_answer: ExtractAnswer, answers_equal: AnswersEqual, lookahead: int = 0):
    if n % cfg.beam_width:
        raise ValueError(f"beam search needs n ({n}) divisible by beam_width ({cfg.beam_width})")
    usage = Usage()
    ids = itertools.count()
    beams = [root(next(ids))]
    completed: list[Node] = []
    iterations = 0
    while beams and len(completed) < n and iterations < cfg.max_iterations:
        width = n if iterations == 0 else cfg.beam_width
        children = yield from expand(question, beams, width, cfg, fmt, seed, usage, ids)
        candidates = [c for siblings in children for c in siblings]
        if cfg.filter_duplicates:
            candidates = drop_duplicate_open(candidates)
        yield from score_nodes(question, candidates, cfg, fmt, seed, usage, lookahead)
        iterations += 1
        completed = best([*completed, *(c for c in candidates if c.complete)], n)
        beams = best([c for c in candidates if not c.complete], n // cfg.beam_width)
    solutions = [node.solution(fmt, extract_answer) for node in completed]
    return SearchResult(final_answer(solutions, "weighted", answers_equal), solutions, usage, iterations)


def best(nodes: list[Node], count: int) -> list[Node]:
    """The `count` highest-scoring nodes, earlier first on ties."""
    return sorted(nodes, key=lambda node: -node.score)[:count]


def drop_duplicate_open(candidates: list[Node]) -> list[Node]:
    """Open candidates whose steps repeat an earlier candidate's would become identical beams."""
    seen = set()
    kept = []
    for node in candidates:
        if not node.complete:
            if node.steps in seen:
                continue
            seen.add(node.steps)
        kept.append(node)
    return kept
