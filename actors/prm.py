"""Process reward model scoring: the in-process `PRMScorer` and `PRMActor`, its Ray actor body.

Scoring is incremental. The KV cache of every scored solution is kept, keyed by its token ids
and bounded in bytes (least recently used out first), together with the step scores read
inside it. A solution that extends one already scored (the next step of a search path) then
runs only its new tokens: its prefix's keys and values enter the forward pass as
`past_key_values`, and the scores of the shared steps are reused, since a causal model's output
at a position depends only on the tokens before it. Requests of one call are batched even
when their cached prefixes differ in length: each row's past is left-padded to the longest and
its new tokens right-padded, with explicit position ids and an attention mask over both.

Each family of `actors.prm_families` decides formatting and read-out; this module knows none.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
from transformers import AutoTokenizer, DynamicCache

from actors.prm_families import Encoding, PRMFamily, family_for
from actors.wire import PickledBatch
from orchestrator.protocols import ScoreRequest, ScoreResult


@dataclass
class PRMConfig:
    model: str  # hub id or local checkpoint folder
    tokenizer: str = ""  # hub id or folder of the tokenizer; "" = the model's
    family: str = ""  # a key of prm_families.FAMILIES; "" = the family that released `model`
    batch_size: int = 8  # sequences per forward pass
    dtype: str = "float32"  # bfloat16 on GPUs
    device: str = "cpu"
    # GiB of KV cache kept for incremental scoring (0 turns it off). A token costs
    # 2 x layers x kv_heads x head_dim x dtype bytes: 128 KiB for Llama-3.1-8B in bfloat16.
    cache_gb: float = 2.0
    num_threads: int = 1  # torch threads on a CPU device


@dataclass
class CachedPrefix:
    """The KV cache of a scored prefix and the step scores read inside it."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [heads, length, dim]
    scores: dict[int, float]  # read-out position -> its value

    @property
    def length(self) -> int:
        return self.kv[0][0].shape[1]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for layer in self.kv for t in layer)


class PrefixCache:
    """Cached prefixes keyed by their token ids, least recently used evicted first."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.entries: OrderedDict[tuple[int, ...], CachedPrefix] = OrderedDict()

    def longest(self, enc: Encoding) -> CachedPrefix | None:
        """The longest cached prefix of `enc` ending at a step end."""
        for end in reversed(enc.step_ends):
            key = tuple(enc.ids[:end])
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        return None

    def put(self, ids: Sequence[int], entry: CachedPrefix) -> None:
        key = tuple(ids)
        if entry.nbytes > self.max_bytes or key in self.entries:
            return
        self.entries[key] = entry
        self.bytes += entry.nbytes
        while self.bytes > self.max_bytes:
            self.bytes -= self.entries.popitem(last=False)[1].nbytes


@dataclass
class _Job:
    index: int  # position in the call's requests
    enc: Encoding
    past: CachedPrefix | None
    scores: dict[int, float] = field(init=False)  # read-out position -> value, cached ones first

    def __post_init__(self):
        self.scores = dict(self.past.scores) if self.past else {}

    @property
    def past_len(self) -> int:
        return self.past.length if self.past else 0

    @property
    def new_len(self) -> int:
        return self.enc.step_ends[-1] - self.past_len


class PRMScorer:
    """Scores (question, steps) requests with one PRM; implements the `Scorer` protocol.

    Assumes the backbone's default attention (sdpa or eager: a padded 2D mask with a cache) and
    solutions shorter than any sliding window (4096 tokens for Mistral-7B).

    A step's read-out values are kept by content (`step_values`): the first values computed for
    a prefix ending with that step are the ones every later request with that prefix gets.
    Rows of different batches, and a cached and a fresh prefix, compute the same prefix with
    different float rounding, and solutions sharing a prefix must tie exactly where their
    scores are equal in exact arithmetic (a running minimum reached in the shared part), since a
    search breaks ties by order: otherwise results would depend on how requests were batched.
    """

    STEP_VALUES = 1 << 18  # steps whose values are kept (least recently used out first)

    def __init__(self, family: PRMFamily, backbone: torch.nn.Module, head,
                 batch_size: int = 8, cache_bytes: int = 2 << 30):
        if batch_size < 1 or cache_bytes < 0:
            raise ValueError(f"need batch_size >= 1 and cache_bytes >= 0, got {batch_size}, "
                             f"{cache_bytes}")
        self.family, self.backbone, self.head = family, backbone, head
        self.batch_size = batch_size
        self.cache = PrefixCache(cache_bytes)
        self.step_values: OrderedDict[int, list[float]] = OrderedDict()

    @classmethod
    def from_config(cls, cfg: PRMConfig) -> PRMScorer:
        if cfg.device == "cpu":
            torch.set_num_threads(cfg.num_threads)
        family = family_for(cfg.model, cfg.family)
        backbone, head = family.load(cfg.model, getattr(torch, cfg.dtype), cfg.device)
        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
        return cls(family(tokenizer), backbone, head, cfg.batch_size, int(cfg.cache_gb * 2**30))

    @torch.no_grad()
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        results: list[ScoreResult | None] = [None] * len(requests)
        jobs = []
        for i, req in enumerate(requests):
            if not req.steps:
                results[i] = ScoreResult(step_scores=[])
                continue
            enc = self.family.encode(req.question, req.steps)
            jobs.append(_Job(i, enc, self.cache.longest(enc) if self.cache.max_bytes else None))
        # Longest work first, so a batch holds rows of similar length and pads little.
        jobs.sort(key=lambda j: -j.new_len)
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start:start + self.batch_size]
            seconds = self._forward(batch)
            total = sum(j.new_len for j in batch)
            for j in batch:
                results[j.index] = ScoreResult(
                    step_scores=self.family.step_scores(self._step_values(j)), tokens=j.enc.step_ends[-1],
                    tokens_computed=j.new_len,
                    compute_seconds=seconds * j.new_len / total if total else 0.0)
        return results

    def _step_values(self, job: _Job) -> list[list[float]]:
        """Each step's read-out values: the first ones computed for the same prefix."""
        values = []
        for positions, end in zip(job.enc.readouts, job.enc.step_ends):
            key = hash(tuple(job.enc.ids[:end]))
            if key in self.step_values:
                self.step_values.move_to_end(key)
            else:
                self.step_values[key] = [job.scores[p] for p in positions]
                if len(self.step_values) > self.STEP_VALUES:
                    self.step_values.popitem(last=False)
            values.append(self.step_values[key])
        return values

    def _forward(self, batch: list[_Job]) -> float:
        """Runs the new tokens of every job as one padded batch; returns the seconds it took."""
        rows = [j for j in batch if j.new_len > 0]
        if not rows:
            return 0.0
        t0 = time.perf_counter()
        device = next(self.backbone.parameters()).device
        P, N = max(j.past_len for j in rows), max(j.new_len for j in rows)
        ids = torch.zeros(len(rows), N, dtype=torch.long)
        mask = torch.zeros(len(rows), P + N, dtype=torch.long)
        positions = torch.zeros(len(rows), N, dtype=torch.long)
        for b, j in enumerate(rows):
            ids[b, :j.new_len] = torch.tensor(j.enc.ids[j.past_len:j.enc.step_ends[-1]])
            mask[b, P - j.past_len:P + j.new_len] = 1
            positions[b] = j.past_len + torch.arange(N)
        out = self.backbone(input_ids=ids.to(device), attention_mask=mask.to(device),
                            position_ids=positions.to(device),
                            past_key_values=self._batch_past(rows, P),
                            use_cache=self.cache.max_bytes > 0)
        where = [(b, p) for b, j in enumerate(rows) for step in j.enc.readouts for p in step if p >= j.past_len]
        hidden = out.last_hidden_state[[b for b, _ in where], [p - rows[b].past_len for b, p in where]]
        next_ids = [rows[b].enc.ids[p + 1] if p + 1 < len(rows[b].enc.ids) else -1 for b, p in where]
        values = self.family.read(self.head, hidden, torch.tensor(next_ids, device=device)).tolist()
        for (b, p), v in zip(where, values):
            rows[b].scores[p] = v
        if self.cache.max_bytes:
            layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
            for b, j in enumerate(rows):
                span = slice(P - j.past_len, P + j.new_len)
                kv = [(k[b, :, span].clone(), v[b, :, span].clone()) for k, v in layers]
                self.cache.put(j.enc.ids[:j.enc.step_ends[-1]], CachedPrefix(kv, j.scores))
        return time.perf_counter() - t0

    @staticmethod
    def _batch_past(rows: list[_Job], P: int) -> DynamicCache | None:
        """The rows' cached prefixes left-padded to P tokens, copied: the entries stay intact."""
        if P == 0:
            return None
        template = next(j.past for j in rows if j.past)
        layers = []
        for layer, (k0, v0) in enumerate(template.kv):
            k = k0.new_zeros(len(rows), k0.shape[0], P, k0.shape[2])
            v = v0.new_zeros(len(rows), v0.shape[0], P, v0.shape[2])
            for b, j in enumerate(rows):
                if j.past:
                    k[b, :, P - j.past_len:] = j.past.kv[layer][0]
                    v[b, :, P - j.past_len:] = j.past.kv[layer][1]
            layers.append((k, v))
        return DynamicCache(ddp_cache_data=layers)


class PRMActor:
    """The body of a PRM replica; `actors.pool.ReplicaPool.launch` makes it a Ray actor.

    `overrides` replace config fields per replica, e.g. the device and threads that
    `actors.placement.backend_kwargs(placement, "transformers")` derives from its placement.
    """

    def __init__(self, cfg: PRMConfig, **overrides):
        self.scorer = PRMScorer.from_config(replace(cfg, **overrides))

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return PickledBatch(self.scorer.score(requests))
