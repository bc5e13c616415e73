"""The contract between search strategies and whoever runs them.

A strategy is a generator: it yields `Generate` or `Score` batches, receives their results in
request order, and finally returns a `SearchResult`. It never calls a model itself, so the one
driver (orchestrator/driver.py) can run many problems at once and merge their requests into
few model calls. Every strategy is `strategy(question, n, cfg, fmt, seed, extract_answer,
answers_equal)` with `cfg` the sweep's `search:` block and `n` the unit's budget N.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Generator, Sequence, Union

from orchestrator.driver import LocalPool, drive
from orchestrator.protocols import (Generate, GenerateRequest, GenerateResult, Policy, Score, ScoreRequest,
                                    ScoreResult, Scorer, Usage)

AGGREGATIONS = ("last", "min", "prod", "mean")  # how step scores become one score (aggregate.py)
COMPLETE = ("eos", "length")  # "stop" means the step ended at the delimiter: more steps follow

Strategy = Generator[Union[Generate, Score], Union[list[GenerateResult], list[ScoreResult]],
                     "SearchResult"]
ExtractAnswer = Callable[[str, bool], Union[str, None]]  # (text, truncated at the token limit)
AnswersEqual = Callable[[str, str], bool]


@dataclass
class SearchConfig:
    """How the strategies search, read as is from a sweep's `search:` block (the budget N is
    each unit's own)."""

    beam_width: int = 4  # M: beam search, DVTS and lookahead expand each kept beam by M
    max_iterations: int = 40
    temperature: float = 0.8
    top_p: float = 1.0
    max_step_tokens: int = 64  # per step (beam search, DVTS, lookahead)
    max_solution_tokens: int = 512  # majority / best-of-N sample whole solutions
    aggregation: str = "last"  # how step scores become one score, in search and in the vote
    lookahead: int = 1  # k greedy steps rolled out to score a candidate (lookahead search only)
    filter_duplicates: bool = False  # beam search: drop open candidates that repeat another's steps

    def problems(self) -> list[tuple[str, object, str]]:
        """(field, value, what is allowed) for every bad value; empty when the config is good."""
        bad = []
        if self.aggregation not in AGGREGATIONS:
            bad.append(("aggregation", self.aggregation, "allowed: " + ", ".join(AGGREGATIONS)))
        for name in ("beam_width", "max_iterations", "max_step_tokens", "max_solution_tokens"):
            if getattr(self, name) < 1:
                bad.append((name, getattr(self, name), "must be a positive int"))
        if self.lookahead < 0:
            bad.append(("lookahead", self.lookahead, "must be >= 0"))
        if not 0 < self.top_p <= 1:
            bad.append(("top_p", self.top_p, "must be in (0, 1]"))
        if self.temperature < 0:
            bad.append(("temperature", self.temperature, "must be >= 0"))
        return bad
@dataclass
class Solution:
    steps: list[str]
    step_scores: list[float]
    finish_reason: str
    answer: str | None
    score: float  # step scores aggregated with the configured aggregation


@dataclass
class TreeNode:
    id: int
    parent: int | None
    step: str
    score: float | None  # PRM score of this step; None for the root (the question)
    finish_reason: str


@dataclass
class SearchResult:
    answer: str | None
    solutions: list[Solution]
    usage: Usage
    iterations: int
    trees: list[list[TreeNode]] = field(default_factory=list)  # DVTS: one node list per subtree

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def derive_seed(seed: int, *path) -> int:
    """A stable seed for one point of the search (e.g. iteration, node), whatever the batching."""
    digest = hashlib.blake2b(repr((seed, *path)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def call_policy(requests: list[GenerateRequest], usage: Usage):
    """Yields one policy batch and books its cost; use as `results = yield from call_policy(...)`."""
    results = yield Generate(requests)
    for result in results:
        usage.add_generation(result)
    return results


def call_scorer(requests: list[ScoreRequest], usage: Usage):
    """Yields one PRM batch and books its cost; use as `results = yield from call_scorer(...)`."""
    results = yield Score(requests)
    for result in results:
        usage.add_score(result)
    return results


def run_many(strategies: Sequence[Strategy], policy: Policy, scorer: Scorer) -> list[SearchResult]:
    """Drives many strategies in lockstep in this process (the one driver over local pools)."""
    results: list[SearchResult | None] = [None] * len(strategies)
    jobs = enumerate(strategies)
    for i, result, _ in drive(jobs, {Generate: LocalPool(policy), Score: LocalPool(scorer)}, len(strategies)):
        results[i] = result
    return results


def run(strategy: Strategy, policy: Policy, scorer: Scorer) -> SearchResult:
    """Drives one strategy alone."""
    return run_many([strategy], policy, scorer)[0]
