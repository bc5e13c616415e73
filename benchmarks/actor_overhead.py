"""What the Ray actors cost: the same batch through the actor pool and through the backend called
in-process, side by side in one run (timings on a shared machine swing, ratios much less).

    python benchmarks/actor_overhead.py [--backend transformers|vllm] [--model DIR]

Default model: the tiny world's "test" policy (built and cached on first use). Prints one
line per measurement and ends with ONE JSON line carrying `actor_vs_direct_tokens_per_s_ratio`
(target >= 0.95) and, from the PRM part, `prm_incremental_vs_naive_tokens_ratio`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def policy_requests(num_requests: int, max_tokens: int):
    """Whole solutions (no step stop) of tiny-world problems, one seed per request."""
    from orchestrator.tasks import arith
    from orchestrator.tinyworld.policy import PROMPT_FORMAT

    problems = arith.problems("train", num_requests, seed=0)[:num_requests]
    return [PROMPT_FORMAT.request(p.question, [], stop=(), seed=i, max_tokens=max_tokens, temperature=0.8)
            for i, p in enumerate(problems)]


def actor_vs_direct(backend: str, model: str, num_requests: int, max_tokens: int, pairs: int) -> dict:
    """Generated tokens/s of one replica through `ReplicaPool` vs the same backend in-process."""
    from actors.placement import ModelPlacement, backend_kwargs
    from actors.policy import PolicyActor, make_backend
    from actors.pool import ReplicaPool
    from orchestrator.protocols import Generate

    requests = policy_requests(num_requests, max_tokens)
    placement = ModelPlacement(num_replicas=1, num_cpus=1)
    kwargs = backend_kwargs(placement, backend)
    if backend == "vllm":
        kwargs.update(enforce_eager=True, max_model_len=512)
    direct = make_backend(backend, model, **kwargs)
    pool = ReplicaPool.launch(PolicyActor, placement, backend, model, **kwargs)
    try:
        runs = {"direct": direct.generate, "actor": lambda batch: pool.call(Generate.method, batch)}
        for run in runs.values():
            run(requests[:4])  # warm up
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        tokens: dict[str, list[int]] = {name: [] for name in runs}
        overheads = []  # seconds per call spent outside the backend: Ray, pickling, routing
        outputs = {}
        # Calls alternate one by one, the order flipping every pair: a busy spell from another
        # process on the machine hits both sides about equally.
        for pair in range(pairs):
            for name in (("direct", "actor") if pair % 2 == 0 else ("actor", "direct")):
                start = time.perf_counter()
                outputs[name] = runs[name](requests)
                seconds[name].append(time.perf_counter() - start)
                tokens[name].append(sum(r.generated_tokens for r in outputs[name]))
                if name == "actor":
                    overheads.append(seconds[name][-1] - sum(r.compute_seconds for r in outputs[name]))
            if (pair + 1) % 10 == 0:
                print(f"policy pairs {pair + 1}/{pairs}: direct {sum(tokens['direct']) / sum(seconds['direct']):.0f} "
                      f"tokens/s, actor {sum(tokens['actor']) / sum(seconds['actor']):.0f} tokens/s", flush=True)
        same = [r.samples for r in outputs["direct"]] == [r.samples for r in outputs["actor"]]
        print(f"policy samples identical through the actor: {same}")
    finally:
        pool.shutdown()
        if backend == "vllm":
            direct.shutdown()
    rate = {name: sum(tokens[name]) / sum(seconds[name]) for name in runs}
    return {"backend": backend, "num_requests": num_requests, "pairs": pairs,
            "direct_tokens_per_s": round(rate["direct"], 1), "actor_tokens_per_s": round(rate["actor"], 1),
            "samples_identical": same, "actor_overhead_ms_per_call": round(1000 * statistics.median(overheads), 2),
            "actor_vs_direct_tokens_per_s_ratio": round(rate["actor"] / rate["direct"], 3),
            "actor_vs_direct_median_pair_ratio": round(statistics.median(
                (t_a / s_a) / (t_d / s_d) for t_a, s_a, t_d, s_d in zip(
                    tokens["actor"], seconds["actor"], tokens["direct"], seconds["direct"])), 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--model", default="", help="policy checkpoint folder (default: tiny world 'test')")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=60, help="calls of the whole batch on each side")
    args = parser.parse_args()

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    scratch = tempfile.mkdtemp(prefix="/tmp/rp-")
    os.environ.setdefault("VLLM_CACHE_ROOT", os.path.join(scratch, "vllm"))
    import ray
    import torch
    from prm_incremental import prm_incremental_vs_naive  # this folder is on sys.path

    torch.set_num_threads(1)
    if not args.model:
        from orchestrator.tinyworld.build import ensure_built

        args.model = str(ensure_built("test").policy_dir)
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=scratch)
    try:
        summary = actor_vs_direct(args.backend, args.model, args.requests, args.max_tokens, args.pairs)
        summary.update(prm_incremental_vs_naive(num_steps=10))
    finally:
        ray.shutdown()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
