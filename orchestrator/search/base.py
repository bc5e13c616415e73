"""The contract between search strategies and whoever runs them.

A strategy is a generator: it yields `Generate` or `Score` batches, receives their results in
request order, and finally returns a `SearchResult`. It never calls a model itself, so one
driver can run many problems at once and merge their requests into few model calls:
`run_many` does that in-process; the Ray scheduler mirrors it.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Generator, Sequence, Union

from orchestrator.protocols import (GenerateRequest, GenerateResult, Policy, ScoreRequest,
                                    ScoreResult, Scorer, Usage)

AGGREGATIONS = ("last", "min", "prod", "mean")
COMPLETE = ("eos", "length")  # "stop" means the step ended at the delimiter: more steps follow


@dataclass
class Generate:
    requests: list[GenerateRequest]


@dataclass
class Score:
    requests: list[ScoreRequest]


Strategy = Generator[Union[Generate, Score], Union[list[GenerateResult], list[ScoreResult]],
                     "SearchResult"]
ExtractAnswer = Callable[[str], Union[str, None]]
AnswersEqual = Callable[[str, str], bool]


@dataclass(frozen=True)
class SearchConfig:
    """One budget and its knobs. `n` is the budget N; `beam_width` is M (beam, DVTS, lookahead)."""

    n: int = 4
    beam_width: int = 4
    max_iterations: int = 40
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 256  # per step
    max_solution_tokens: int = 2048  # majority / best-of-N sample whole solutions
    aggregation: str = "last"  # how step scores become one score, in search and in the vote
    lookahead: int = 0  # k greedy steps rolled out to score a candidate (lookahead search)
    filter_duplicates: bool = False

    def __post_init__(self):
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.n < 1 or self.beam_width < 1 or self.max_iterations < 1 or self.lookahead < 0:
            raise ValueError(f"bad search config: {self}")


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
    """Drives many strategies in lockstep: each round, one policy call and one PRM call carry
    the requests of every strategy waiting on them."""
    results: list[SearchResult | None] = [None] * len(strategies)
    waiting: dict[int, Generate | Score] = {}

    def advance(i: int, reply) -> None:
        try:
            waiting[i] = strategies[i].send(reply)
        except StopIteration as stop:
            results[i] = stop.value

    for i in range(len(strategies)):
        advance(i, None)
    while waiting:
        batch, waiting = waiting, {}
        replies = {}
        for kind, model, method in ((Generate, policy, "generate"), (Score, scorer, "score")):
            ids = [i for i, op in batch.items() if isinstance(op, kind)]
            flat = [request for i in ids for request in batch[i].requests]
            answers = getattr(model, method)(flat) if flat else []
            if len(answers) != len(flat):
                raise RuntimeError(f"{kind.__name__}: {len(answers)} results for {len(flat)} requests")
            start = 0
            for i in ids:
                count = len(batch[i].requests)
                replies[i] = answers[start:start + count]
                start += count
        for i in sorted(replies):
            advance(i, replies[i])
    return results


def run(strategy: Strategy, policy: Policy, scorer: Scorer) -> SearchResult:
    """Drives one strategy alone."""
    return run_many([strategy], policy, scorer)[0]
