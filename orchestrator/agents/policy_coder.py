"""The LLM coder over scalerun's own policy actors: a driver-side pool that answers `Propose` batches
by submitting chat `GenerateRequest`s to a policy pool (`actors.pool.ReplicaPool`) and reading each
sample as a Proposal (coder_prompt.py), without blocking the driver: `submit` returns at once and
`wait` is the policy pool's.

A sample cut at max_tokens is read like any other: without a usable edit it is an edit that does
not apply (the rollout's reflections and buggy nodes handle it); an empty sample is an `error`.
Pure: it knows the policy pool only by its submit/wait/result interface.
"""
from __future__ import annotations

from typing import Sequence

from orchestrator.agents.coder_prompt import messages, proposal
from orchestrator.protocols import GenerateRequest, GenerateResult, Proposal, ProposeRequest


def generate_request(request: ProposeRequest, temperature: float, max_tokens: int) -> GenerateRequest:
    return GenerateRequest(messages=messages(request), n=1, temperature=temperature, max_tokens=max_tokens,
                           seed=request.seed)


def read_generation(result: GenerateResult) -> Proposal:
    return proposal(result.samples[0].text, result.compute_seconds, "policy coder")


class PolicyCoderCall:
    """A submitted Propose batch: the policy pool's call for its generations."""

    def __init__(self, generation):
        self.generation = generation

    def result(self) -> list[Proposal]:
        return [read_generation(r) for r in self.generation.result()]


class PolicyCoderPool:
    def __init__(self, policy_pool, temperature: float, max_tokens: int):
        self.policy_pool = policy_pool
        self.temperature, self.max_tokens = temperature, max_tokens

    def submit(self, method: str, items: Sequence[ProposeRequest], affinity=None) -> PolicyCoderCall:
        if method != "propose":
            raise ValueError(f"the policy coder answers propose, not {method}")
        requests = [generate_request(r, self.temperature, self.max_tokens) for r in items]
        return PolicyCoderCall(self.policy_pool.submit("generate", requests, affinity=affinity))

    def wait(self, calls: Sequence[PolicyCoderCall], num_returns: int | None = None,
             timeout: float | None = None) -> tuple[list[PolicyCoderCall], list[PolicyCoderCall]]:
        """Blocks until `num_returns` (default all) of `calls` are done; returns (done, pending)."""
        done, _ = self.policy_pool.wait([c.generation for c in calls], num_returns, timeout)
        finished = {id(g) for g in done}
        return [c for c in calls if id(c.generation) in finished], [c for c in calls if id(c.generation) not in finished]
