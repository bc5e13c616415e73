"""PassUntil sampling of one (model, instance) as a strategy generator.

It yields `Generate` batches like a search strategy, so the scheduler batches the rounds of
many instances into few policy calls. Round sizes and the stop come from `PassUntilRule`;
every round has its own seed derived from (seed, draws so far), so a round's samples never
depend on how instances were batched. The first `fixed_k` draws are also kept as an ordinary
fixed-K evaluation of the same instance (they are an unconditional i.i.d. draw).
"""
from __future__ import annotations

from typing import Callable

from orchestrator.passuntil.estimators import PassUntilRule
from orchestrator.protocols import GenerateRequest, Usage
from orchestrator.search.base import call_policy, derive_seed


def pass_until(prompt: str, rule: PassUntilRule, seed: int, grade: Callable[[str, bool], bool],
               fixed_k: int, temperature: float = 0.8, top_p: float = 1.0, max_tokens: int = 256):
    """Generator returning {passes, samples, fixed_k_passes, fixed_k, rounds, usage}.

    `grade(text, truncated)` judges one sample; truncated is True when it was cut at max_tokens."""
    usage = Usage()
    passes = samples = drawn = rounds = fixed_passes = 0
    fixed_k = min(fixed_k, rule.cap)
    while not rule.done(passes, samples):
        count = max(rule.next_round(passes, samples), fixed_k - drawn)
        request = GenerateRequest(prompt=prompt, n=count, temperature=temperature, top_p=top_p,
                                  max_tokens=max_tokens, seed=derive_seed(seed, "passuntil", drawn))
        (result,) = yield from call_policy([request], usage)
        outcomes = [grade(s.text, s.finish_reason == "length") for s in result.samples]
        fixed_passes += sum(outcomes[:max(0, fixed_k - drawn)])
        passes, samples = rule.record(passes, samples, outcomes)
        drawn += count
        rounds += 1
    return {"passes": passes, "samples": samples, "fixed_k_passes": fixed_passes, "fixed_k": fixed_k,
            "rounds": rounds, "drawn": drawn, "policy_generated_tokens": usage.policy_generated_tokens,
            "policy_prompt_tokens": usage.policy_prompt_tokens,
            "compute_seconds": usage.policy_compute_seconds}
