"""Step-by-step machinery shared by beam search, lookahead search and DVTS.

A node is a partial solution: its steps and one PRM score per step. A sample that ends at the
step delimiter ("stop") leaves its node open. One that ends with EOS completes it. One cut at
max_tokens ("length") completes it too, as a truncated solution: continuing it would glue two
halves of a step together, and it answers only with a boxed answer (`extract_answer(text,
truncated=True)`), so an intermediate number never votes. An answer
inside a step that ended at the delimiter does not complete the node: the model says when it is
done. An empty sample adds no step (the usual way a model ends after a final delimiter).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from orchestrator.protocols import PromptFormat, ScoreRequest, Usage
from orchestrator.search.aggregate import aggregate
from orchestrator.search.base import (COMPLETE, ExtractAnswer, SearchConfig, Solution, TreeNode,
                                      call_policy, call_scorer, derive_seed)


@dataclass
class Node:
    id: int
    parent: int | None
    step: str  # the sample that made the node ("" for a root)
    steps: tuple[str, ...]
    step_scores: tuple[float, ...]
    finish_reason: str  # of the sample that made the node; "stop" (open) for a root
    score: float = 0.0  # step scores aggregated

    @property
    def complete(self) -> bool:
        return self.finish_reason in COMPLETE

    def tree_node(self) -> TreeNode:
        score = self.step_scores[-1] if self.parent is not None and self.step_scores else None
        return TreeNode(self.id, self.parent, self.step, score, self.finish_reason)

    def solution(self, fmt: PromptFormat, extract_answer: ExtractAnswer) -> Solution:
        return Solution(list(self.steps), list(self.step_scores), self.finish_reason,
                        extract_answer(fmt.step_delimiter.join(self.steps), self.finish_reason == "length"),
                        self.score)


def expand(question: str, parents: list[Node], width: int, cfg: SearchConfig, fmt: PromptFormat,
           seed: int, usage: Usage, ids: Iterator[int]):
    """Samples `width` next steps of every parent in one batch; returns the children per parent."""
    requests = [fmt.request(question, p.steps, n=width, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_tokens=cfg.max_step_tokens, seed=derive_seed(seed, "expand", p.id))
                for p in parents]
    results = yield from call_policy(requests, usage)
    return [[Node(next(ids), p.id, s.text, p.steps + ((s.text,) if s.text else ()), p.step_scores,
                  s.finish_reason)
             for s in result.samples]
            for p, result in zip(parents, results)]


def rollout(question: str, nodes: list[Node], k: int, cfg: SearchConfig, fmt: PromptFormat, seed: int,
            usage: Usage):
    """The greedy continuation (up to k steps) of every open node; () for complete ones.
    One policy batch per rollout step, over all nodes still rolling."""
    tails: list[tuple[str, ...]] = [() for _ in nodes]
    rolling = [i for i, node in enumerate(nodes) if not node.complete]
    for depth in range(k):
        if not rolling:
            break
        requests = [fmt.request(question, nodes[i].steps + tails[i], n=1, temperature=0.0, top_p=1.0,
                                max_tokens=cfg.max_step_tokens, seed=derive_seed(seed, "lookahead", nodes[i].id, depth))
                    for i in rolling]
        results = yield from call_policy(requests, usage)
        still_rolling = []
        for i, result in zip(rolling, results):
            sample = result.samples[0]
            if sample.text:
                tails[i] += (sample.text,)
            if sample.finish_reason == "stop":
                still_rolling.append(i)
        rolling = still_rolling
    return tails


def score_nodes(question: str, nodes: list[Node], cfg: SearchConfig, fmt: PromptFormat, seed: int,
                usage: Usage, lookahead: int = 0):
    """Gives every new node the PRM score of its new step and its aggregated score.

    With lookahead k, open nodes are first rolled out k greedy steps and the PRM score at the
    end of the rollout becomes the score of the new step. Earlier steps keep the scores that
    chose them.
    """
    tails = yield from rollout(question, nodes, lookahead, cfg, fmt, seed, usage)
    scored = [i for i, node in enumerate(nodes) if node.steps]
    results = yield from call_scorer([ScoreRequest(question, nodes[i].steps + tails[i]) for i in scored], usage)
    for i, result in zip(scored, results):
        node = nodes[i]
        node.step_scores = node.step_scores[:len(node.steps) - 1] + (result.step_scores[-1],)
    for node in nodes:
        node.score = aggregate(node.step_scores, cfg.aggregation)


def root(node_id: int) -> Node:
    return Node(node_id, None, "", (), (), "stop")
