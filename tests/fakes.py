"""Deterministic stand-ins for a policy and a PRM, for tests of search code and its drivers.

`ScriptedPolicy` plays a hand-written tree; `SeededPolicy` plays a random but reproducible one
whose samples depend only on each request (as the protocol demands), whatever the batching.
Both count a token per character so that token bookkeeping can be checked exactly.
"""
from __future__ import annotations

import hashlib
import random
from typing import Callable, Sequence

from orchestrator.protocols import GenerateRequest, GenerateResult, Sample, ScoreRequest, ScoreResult


class RecordingPolicy:
    """A policy answering each request with `rows(request)`, (text, finish_reason) pairs; `calls`
    records every batch."""

    calls: list[list[GenerateRequest]]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        self.calls.append(list(requests))
        return [result(request, self.rows(request)) for request in requests]


class ScriptedPolicy(RecordingPolicy):
    """`table[prompt]` lists the (text, finish_reason) samples of that prompt: requests take them
    in turn, so two requests for one prompt get different samples. `greedy[prompt]` answers
    temperature-0 requests."""

    def __init__(self, table: dict[str, list[tuple[str, str]]], greedy: dict[str, tuple[str, str]] | None = None):
        self.table, self.greedy = table, greedy or {}
        self.served = {prompt: 0 for prompt in table}
        self.calls: list[list[GenerateRequest]] = []

    def rows(self, request: GenerateRequest) -> list[tuple[str, str]]:
        if request.temperature == 0:
            return [self.greedy[request.prompt]] * request.n
        start = self.served[request.prompt]
        rows = self.table[request.prompt][start:start + request.n]
        if len(rows) < request.n:
            raise KeyError(f"script has no more samples for {request.prompt!r}")
        self.served[request.prompt] += request.n
        return rows


class SeededPolicy(RecordingPolicy):
    """A random tree of steps "s<k>" ending in an answer step "=<k>" with EOS (or, rarely, a step
    cut at max tokens); samples are a function of (prompt, seed), greedy ones of the prompt."""

    def __init__(self, step_delimiter: str, answers: int = 3):
        self.delimiter, self.answers = step_delimiter, answers
        self.calls: list[list[GenerateRequest]] = []

    def rows(self, request: GenerateRequest) -> list[tuple[str, str]]:
        if request.temperature == 0:
            return [self.sample(request, random.Random(request.prompt))]
        return [self.sample(request, random.Random(f"{request.prompt}|{request.seed}|{i}")) for i in range(request.n)]

    def sample(self, request: GenerateRequest, rng: random.Random) -> tuple[str, str]:
        depth = request.prompt.count(self.delimiter)
        steps = []
        while True:
            if depth >= 2 and rng.random() < 0.35:
                steps.append(f"={rng.randrange(self.answers)}")
                finish = "eos"
            else:
                steps.append(f"s{rng.randrange(4)}")
                finish = "length" if rng.random() < 0.03 else "stop"
            depth += 1
            if finish != "stop" or self.delimiter in request.stop:
                return self.delimiter.join(steps), finish


class RuleScorer:
    """Scores step i by `rule(question, steps[:i + 1])`; one token per character scored."""

    def __init__(self, rule: Callable[[str, tuple[str, ...]], float]):
        self.rule = rule
        self.calls: list[list[ScoreRequest]] = []

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        self.calls.append(list(requests))
        return [ScoreResult([self.rule(r.question, r.steps[:i + 1]) for i in range(len(r.steps))],
                            tokens=len(r.question) + sum(map(len, r.steps)),
                            tokens_computed=len(r.question) + sum(map(len, r.steps)))
                for r in requests]


def hashed_score(question: str, steps: tuple[str, ...]) -> float:
    """A reproducible pseudo-random score in [0, 1) for a partial solution."""
    digest = hashlib.blake2b(repr((question, steps)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") / 2 ** 32


def result(request: GenerateRequest, rows: list[tuple[str, str]]) -> GenerateResult:
    samples = [Sample(text, finish, num_tokens=len(text)) for text, finish in rows]
    return GenerateResult(samples, prompt_tokens=len(request.prompt),
                          generated_tokens=sum(s.num_tokens for s in samples))
