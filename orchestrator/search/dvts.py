"""Diverse verifier tree search (DVTS): N/M independent subtrees, each searched greedily.

Every iteration expands the current node of each open subtree by M candidates (one batch over
all subtrees, so at most N samples) and moves to the best-scoring candidate. When that best
candidate is complete the subtree ends, and its solutions are the completed candidates of that
last expansion (at most M per subtree, so at most N in all). Subtrees still open after
`max_iterations` return nothing: no unfinished candidate is ever a solution. Every subtree's
nodes (parent links, step texts, step scores) are kept in `SearchResult.trees`. The answer is
the weighted best-of-N vote over the solutions with the configured aggregation.
"""
from __future__ import annotations

import itertools

from orchestrator.protocols import PromptFormat, Usage
from orchestrator.search.aggregate import final_answer
from orchestrator.search.base import AnswersEqual, ExtractAnswer, SearchConfig, SearchResult
from orchestrator.search.steps import Node, expand, root, score_nodes


def dvts(question: str, n: int, cfg: SearchConfig, fmt: PromptFormat, seed: int,
         extract_answer: ExtractAnswer, answers_equal: AnswersEqual):
    if n % cfg.beam_width:
        raise ValueError(f"DVTS needs n ({n}) divisible by beam_width ({cfg.beam_width})")
    usage = Usage()
    ids = itertools.count()
    subtrees = n // cfg.beam_width
    current: dict[int, Node] = {t: root(next(ids)) for t in range(subtrees)}  # open subtrees only
    trees = [[current[t].tree_node()] for t in range(subtrees)]
    finished: list[Node] = []
    iterations = 0
    while current and iterations < cfg.max_iterations:
        open_trees = list(current)
        children = yield from expand(question, [current[t] for t in open_trees], cfg.beam_width, cfg, fmt,
                                     seed, usage, ids)
        yield from score_nodes(question, [c for siblings in children for c in siblings], cfg, fmt, seed, usage)
        iterations += 1
        for t, siblings in zip(open_trees, children):
            trees[t].extend(node.tree_node() for node in siblings)
            chosen = max(siblings, key=lambda node: node.score)  # first on ties
            if chosen.complete:
                finished.extend(node for node in siblings if node.complete)
                del current[t]
            else:
                current[t] = chosen
    solutions = [node.solution(fmt, extract_answer) for node in finished]
    return SearchResult(final_answer(solutions, "weighted", answers_equal), solutions, usage, iterations,
                        trees)
