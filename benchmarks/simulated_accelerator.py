"""A SIMULATED accelerator, for benchmarks only: real tiny-world outputs, an accelerator's time.

`SimulatedBackend` answers a call with the real backend's results (remembered by request, so a
request asked again, by the other mode, is not recomputed) and then sleeps for what the call
would cost on one accelerator serving a 1B-parameter model, by `CostModel`. Every figure it
produces is simulated and must be printed as such. It is never a default.

The cost model, for a 1B-parameter model in bfloat16 on one A100-class GPU (2 TB/s HBM,
312 TFLOP/s bfloat16) under an engine with continuous batching:
- `call_latency_s` 5 ms per call: an actor call (1.35 ms measured here for Ray) plus the
  engine's request setup, tokenisation and detokenisation.
- `decode_step_s` 3 ms per decode step, flat in batch size up to `saturation_batch`: a step
  reads all 2 GB of weights (1 ms at full bandwidth; kernels and launches reach about a third
  of it at small batch, i.e. about 330 tokens/s for one sequence).
- `saturation_batch` 128 sequences: a step does 2 FLOP per parameter per sequence on 2 bytes
  per parameter, so it turns compute-bound near 312e12 / 2e12 = 156 sequences; KV-cache reads
  bring that earlier. Past it a step costs `decode_step_s * batch / saturation_batch`.
- `prefill_s_per_token` 20 us: 2 GFLOP per token at 30-40% of peak; a forward never costs
  less than one weight pass (`decode_step_s`).
Both models prefill only what their prefix caches miss. The policy's is the engine's
(vLLM's automatic prefix caching, which the vLLM backend turns on), modelled by `PrefixCache`:
unbounded (64 problems' KV fits many times in the memory a 1B model leaves free), whole
16-token blocks, filled by every prompt and its generated text and found again by later calls.
The PRM is a 1B model on its own accelerator: a call costs the latency plus one prefill of
the tokens it computes (the misses its own cache reports). Token counts are the tiny world's,
which counts characters: a BPE model would see about 4x fewer tokens per step.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Sequence

from orchestrator.protocols import GenerateResult, ScoreResult


@dataclass(frozen=True)
class CostModel:
    call_latency_s: float = 0.005
    decode_step_s: float = 0.003
    saturation_batch: int = 128
    prefill_s_per_token: float = 20e-6

    def forward_seconds(self, tokens: int) -> float:
        return max(self.decode_step_s, tokens * self.prefill_s_per_token) if tokens else 0.0

    def decode_seconds(self, sample_lengths: Sequence[int]) -> float:
        """Continuous batching: step t runs every sample longer than t."""
        seconds, live = 0.0, sorted(sample_lengths)
        for step in range(live[-1] if live else 0):
            while live and live[0] <= step:
                live.pop(0)
            seconds += self.decode_step_s * max(1.0, len(live) / self.saturation_batch)
        return seconds

    def generate_seconds(self, shape: tuple) -> float:
        prefill_tokens, sample_lengths = shape
        return self.call_latency_s + self.forward_seconds(prefill_tokens) + self.decode_seconds(sample_lengths)

    def score_seconds(self, shape: tuple) -> float:
        return self.call_latency_s + self.forward_seconds(shape[0])


def call_shape(results: list) -> tuple:
    """What a call's cost depends on: tokens prefilled and (for generation) each sample's length."""
    if results and isinstance(results[0], GenerateResult):
        return (sum(r.prompt_tokens - r.cached_prompt_tokens for r in results),
                [s.num_tokens for r in results for s in r.samples])
    return (sum(r.tokens_computed for r in results),)


BLOCK_TOKENS = 16  # vLLM's KV-cache block: only whole blocks are cached and found again


class PrefixCache:
    """An unbounded prefix cache of whole blocks, kept as the hashes of the prefixes they end;
    text stands for tokens (the tiny world's tokenizer has one token per character)."""

    def __init__(self, block: int = BLOCK_TOKENS):
        self.block, self.blocks = block, set()

    def hit(self, text: str) -> int:
        """The length of the longest run of leading whole blocks of `text` already filled."""
        end = 0
        while end + self.block <= len(text) and hash(text[:end + self.block]) in self.blocks:
            end += self.block
        return end

    def fill(self, text: str) -> None:
        self.blocks.update(hash(text[:end]) for end in range(self.block, len(text) + 1, self.block))


def prompt_text(request) -> str:
    """A request's prompt as one string that grows at its end as a search goes deeper."""
    if request.prompt is not None:
        return request.prompt
    return "".join(f"<{role}>{content}" for role, content in request.messages)


class SimulatedBackend:
    """`method` of `real` with remembered results and simulated time (`model`); records the
    shapes of the calls as charged. `begin()` starts a run afresh."""

    def __init__(self, real, method: str, model: CostModel, sleep: bool = True):
        self.real, self.method, self.model = real, method, model
        self.memo: dict = {}
        self.misses = 0  # requests computed for real during a simulated (sleeping) run
        self.begin(sleep)

    def begin(self, sleep: bool = True) -> None:
        self.sleep, self.shapes = sleep, []

    def answer(self, requests: Sequence) -> list:
        todo = [r for r in dict.fromkeys(requests) if r not in self.memo]
        if todo:
            self.misses += len(todo) if self.sleep else 0
            self.memo.update(zip(todo, getattr(self.real, self.method)(todo)))
        results = self.charged(requests, [self.memo[r] for r in requests])
        shape = call_shape(results)
        seconds = self.cost(shape)
        self.shapes.append(shape)
        if self.sleep:
            time.sleep(seconds)
        return [dataclasses.replace(r, compute_seconds=seconds / len(requests)) for r in results]

    def charged(self, requests: Sequence, results: list) -> list:
        """The remembered results as this run's call is charged for them."""
        return results

    def cost(self, shape: tuple) -> float:
        return self.model.generate_seconds(shape) if self.method == "generate" else self.model.score_seconds(shape)


class SimulatedPolicy(SimulatedBackend):
    """Prefills only what its `PrefixCache` misses; `uncached_shapes` are its calls with nothing cached."""

    def __init__(self, real, model: CostModel, sleep: bool = True):
        super().__init__(real, "generate", model, sleep)

    def begin(self, sleep: bool = True) -> None:
        super().begin(sleep)
        self.uncached_shapes, self.cache = [], PrefixCache()

    def generate(self, requests) -> list[GenerateResult]:
        return self.answer(requests)

    def charged(self, requests: Sequence, results: list[GenerateResult]) -> list[GenerateResult]:
        """The results with the prompt tokens the cache holds from earlier calls (the last
        prompt token is always computed: it yields the first sample's logits)."""
        self.uncached_shapes.append(call_shape(results))
        texts = [prompt_text(r) for r in requests]
        out = []
        for text, result in zip(texts, results):
            held = round(self.cache.hit(text) * result.prompt_tokens / max(len(text), 1))
            out.append(dataclasses.replace(result, cached_prompt_tokens=max(0, min(held, result.prompt_tokens - 1))))
        for text, result in zip(texts, results):
            self.cache.fill(text)
            for sample in result.samples:
                self.cache.fill(text + sample.text)
        return out


class SimulatedScorer(SimulatedBackend):
    def __init__(self, real, model: CostModel, sleep: bool = True):
        super().__init__(real, "score", model, sleep)

    def score(self, requests) -> list[ScoreResult]:
        return self.answer(requests)


def modelled_seconds(policy_shapes: list[tuple], prm_shapes: list[tuple], model: CostModel) -> float:
    """The simulated busy time of recorded calls under another cost model (no sleeping)."""
    return (sum(model.generate_seconds(s) for s in policy_shapes)
            + sum(model.score_seconds(s) for s in prm_shapes))
