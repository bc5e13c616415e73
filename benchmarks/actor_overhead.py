"""What the Ray actors cost: the same batch through the actor pool, through the backend called
in-process, and through the backend in a plain second process (the control: no Ray), side by
side in one run (timings on a shared machine swing, ratios much less).

    python benchmarks/actor_overhead.py [--backend transformers|vllm] [--model DIR] [--rounds 40]

Default model: the tiny world's "test" policy (built and cached on first use). Prints one
line per measurement and ends with ONE JSON line carrying `actor_vs_direct_tokens_per_s_ratio`
(target >= 0.95), the control's ratios (`subprocess_vs_direct_...`, `actor_vs_subprocess_...`),
the backend's own speed on each side (tokens per second inside `generate`) and, from the PRM
part, `prm_incremental_vs_naive_tokens_ratio`.
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


def serve_backend(conn, backend: str, model: str, kwargs: dict) -> None:
    """A plain Python process (no Ray) answering batches over a pipe: the control side."""
    import torch

    from actors.policy import make_backend

    torch.set_num_threads(1)
    engine = make_backend(backend, model, **kwargs)
    conn.send("ready")
    while (batch := conn.recv()) is not None:
        conn.send(engine.generate(batch))


def actor_vs_direct(backend: str, model: str, num_requests: int, max_tokens: int, rounds: int) -> dict:
    """Generated tokens/s of one replica through `ReplicaPool`, of the same backend in-process,
    and of the same backend in a plain second process (a pipe, no Ray): what Ray costs is the
    actor against that control, and the control against in-process is what moving the work to
    another process costs on this machine."""
    import multiprocessing

    from host_cpu import cpu_ticks  # this folder is on sys.path

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
    spawn = multiprocessing.get_context("spawn")
    conn, child_conn = spawn.Pipe()
    control = spawn.Process(target=serve_backend, args=(child_conn, backend, model, kwargs))
    control.start()
    assert conn.recv() == "ready"

    def through_pipe(batch):
        conn.send(batch)
        return conn.recv()

    try:
        runs = {"direct": direct.generate, "subprocess": through_pipe,
                "actor": lambda batch: pool.call(Generate.method, batch)}
        names = list(runs)
        for run in runs.values():
            run(requests[:4])  # warm up
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        tokens: dict[str, list[int]] = {name: [] for name in runs}
        compute: dict[str, list[float]] = {name: [] for name in runs}  # inside the backend
        busy: dict[str, int] = {name: 0 for name in runs}  # machine CPU ticks during the side's calls
        outputs = {}
        # Sides take turns call by call, the order rotating every round: a busy spell from
        # another process on the machine hits all of them about equally.
        for k in range(rounds):
            for name in names[k % len(names):] + names[:k % len(names)]:
                start, ticks = time.perf_counter(), cpu_ticks()[0]
                outputs[name] = runs[name](requests)
                seconds[name].append(time.perf_counter() - start)
                busy[name] += cpu_ticks()[0] - ticks
                tokens[name].append(sum(r.generated_tokens for r in outputs[name]))
                compute[name].append(sum(r.compute_seconds for r in outputs[name]))
            if (k + 1) % 10 == 0:
                print(f"policy rounds {k + 1}/{rounds}: " + ", ".join(
                    f"{name} {sum(tokens[name]) / sum(seconds[name]):.0f} tokens/s" for name in names), flush=True)
        same = all([r.samples for r in outputs[name]] == [r.samples for r in outputs["direct"]] for name in names)
        print(f"policy samples identical on every side: {same}")
    finally:
        conn.send(None)
        control.join(timeout=60)
        pool.shutdown()
        if backend == "vllm":
            direct.shutdown()
    rate = {name: sum(tokens[name]) / sum(seconds[name]) for name in runs}
    backend_rate = {name: sum(tokens[name]) / sum(compute[name]) for name in runs}
    overheads = [s - c for s, c in zip(seconds["actor"], compute["actor"])]
    return {"backend": backend, "num_requests": num_requests, "rounds": rounds,
            "direct_tokens_per_s": round(rate["direct"], 1), "actor_tokens_per_s": round(rate["actor"], 1),
            "subprocess_tokens_per_s": round(rate["subprocess"], 1),
            "samples_identical": same, "actor_overhead_ms_per_call": round(1000 * statistics.median(overheads), 2),
            "actor_time_outside_backend_fraction": round(1 - sum(compute["actor"]) / sum(seconds["actor"]), 4),
            "actor_vs_direct_tokens_per_s_ratio": round(rate["actor"] / rate["direct"], 3),
            "actor_vs_direct_median_round_ratio": round(statistics.median(
                (t_a / s_a) / (t_d / s_d) for t_a, s_a, t_d, s_d in zip(
                    tokens["actor"], seconds["actor"], tokens["direct"], seconds["direct"])), 3),
            "subprocess_vs_direct_tokens_per_s_ratio": round(rate["subprocess"] / rate["direct"], 3),
            "actor_vs_subprocess_tokens_per_s_ratio": round(rate["actor"] / rate["subprocess"], 3),
            "backend_speed_in_actor_vs_direct": round(backend_rate["actor"] / backend_rate["direct"], 3),
            "backend_speed_in_subprocess_vs_direct": round(backend_rate["subprocess"] / backend_rate["direct"], 3),
            # cores the whole machine kept busy during each side's calls: above 1, other processes
            # (Ray's daemons, the driver's threads) ran beside the one computing
            "machine_cores_busy": {name: round(busy[name] / os.sysconf("SC_CLK_TCK") / sum(seconds[name]), 3)
                                   for name in runs}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("transformers", "vllm"), default="transformers")
    parser.add_argument("--model", default="", help="policy checkpoint folder (default: tiny world 'test')")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=40, help="calls of the whole batch on each side")
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
        summary = actor_vs_direct(args.backend, args.model, args.requests, args.max_tokens, args.rounds)
        summary.update(prm_incremental_vs_naive(num_steps=10))
    finally:
        ray.shutdown()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
