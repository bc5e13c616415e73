"""Beam search N=16 on 64 problems through the actor pools: batched across problems vs one
problem at a time (search-and-learn's mode), and wall time vs backend compute inside it.

    python benchmarks/tts_throughput.py [--profile default|test] [--problems 64] [--n 16] [--backend vllm] [--simulated] [key=value ...]

Trailing key=value pairs override the `tts` config, e.g. `policy.num_gpus=1` on a GPU machine.

Both modes run in one process, one after the other, each on freshly launched pools warmed up
on other problems (so neither finds the other's work in the PRM's prefix cache). Beside the
wall times it reports what does not depend on the machine: the calls the driver issues, the
requests per call and the rounds per problem step (benchmarks/batching.py).

`--simulated`: no Ray; in-process tiny-world backends compute the outputs once, then both
modes replay them on a SIMULATED accelerator serving a 1B-parameter model (sleeping for the
cost model of benchmarks/simulated_accelerator.py), with a table of how the speedup moves with
the model's parameters.
The final line is one JSON object with the figures and their targets.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from orchestrator import runtime  # noqa: E402
from actors.launch import launch_policy_pool, launch_prm_pool  # noqa: E402
from benchmarks.batching import CountingPool, batching_figures, counted  # noqa: E402
from benchmarks.simulated_accelerator import (CostModel, SimulatedPolicy, SimulatedScorer,  # noqa: E402
                                              modelled_seconds)
from orchestrator.checkpoints import resolve_policy_path, resolve_prm_path  # noqa: E402
from orchestrator.config import ConfigError  # noqa: E402
from orchestrator.datasets import load_items  # noqa: E402
from orchestrator.driver import LocalPool, drive  # noqa: E402
from orchestrator.experiments import load_config  # noqa: E402
from orchestrator.protocols import Generate, Score  # noqa: E402
from orchestrator.tts.experiment import prompt_format, strategy  # noqa: E402


def sweep(cfg, items, pools, max_active):
    """Beam search on `items` through `pools` (policy, PRM); wall s, answers, driver stats, batching figures."""
    units = [{"kind": "search", "method": "beam", "n": cfg.budgets[0], "problem": it.id, "seed": 0}
             for it in items]
    questions = {it.id: it.question for it in items}
    fmt = prompt_format(cfg)
    stats, steps = {}, Counter()
    counting = {"Generate": CountingPool(pools[0]), "Score": CountingPool(pools[1])}
    started = time.monotonic()
    jobs = ((u, counted(strategy(u, questions[u["problem"]], cfg, fmt), steps)) for u in units)
    answers = {u["problem"]: r.answer for u, r, _ in drive(jobs, {Generate: counting["Generate"], Score: counting["Score"]},
                                                           max_active, affinity_key=lambda u: u["problem"], stats=stats)}
    return time.monotonic() - started, answers, stats, batching_figures(counting, steps, stats["rounds"])


def mean_requests_per_call(figures: dict) -> float:
    calls = [figures[k]["requests_per_call"] for k in ("Generate", "Score")]
    return round(sum(c["mean"] * c["calls"] for c in calls) / sum(c["calls"] for c in calls), 2)


def batching_lines(figures: dict) -> str:
    lines = []
    for kind in ("Generate", "Score"):
        f = figures[kind]
        r, n = f["requests_per_call"], f["samples_per_call"]
        lines.append(f"      {kind:8s}: {f['driver_calls']:5d} driver calls -> {f['backend_calls']:5d} backend calls, "
                     f"requests/call mean {r['mean']} (min {r['min']}, median {r['median']}, max {r['max']}), "
                     f"samples/call mean {n['mean']}, {f['problem_steps']} problem steps")
    lines.append(f"      {figures['rounds']} rounds, {figures['rounds_per_problem_step']} rounds per problem step")
    return "\n".join(lines)


SENSITIVITY = [("as written", {}), ("saturation batch 32", {"saturation_batch": 32}),
               ("saturation batch 512", {"saturation_batch": 512}), ("decode step 1 ms", {"decode_step_s": 0.001}),
               ("decode step 10 ms", {"decode_step_s": 0.010}), ("call latency 1 ms", {"call_latency_s": 0.001}),
               ("call latency 50 ms", {"call_latency_s": 0.050}), ("prefill 4x dearer", {"prefill_s_per_token": 80e-6}),
               ("prefill free (prefix cache)", {"prefill_s_per_token": 0.0})]


def simulated(cfg, items, profile: str):
    """Both modes on the simulated accelerator; the real tiny-world backends compute each output once."""
    from actors.policy import TransformersBackend
    from actors.prm import PRMConfig, PRMScorer

    model = CostModel()
    policy = SimulatedPolicy(TransformersBackend(resolve_policy_path(cfg.policy.path), max_batch_size=cfg.policy.batch_size,
                                                 num_threads=1), model, sleep=False)
    prm = SimulatedScorer(PRMScorer.from_config(PRMConfig(model=resolve_prm_path(cfg.prm.path), family=cfg.prm.family,
                                                          batch_size=cfg.prm.batch_size)), model, sleep=False)
    pools = (LocalPool(policy), LocalPool(prm))
    fill_wall = sweep(cfg, items, pools, len(items))[0]  # real compute, remembered: not timed below
    runs = {}
    for mode, max_active in (("sequential", 1), ("batched", len(items))):
        policy.shapes, prm.shapes, policy.sleep, prm.sleep = [], [], True, True
        runs[mode] = (*sweep(cfg, items, pools, max_active), policy.shapes, prm.shapes)
    (seq_wall, sequential, _, seq_fig, seq_p, seq_s), (wall, batched, _, fig, p, s) = runs["sequential"], runs["batched"]
    speedup = seq_wall / wall
    print(f"SIMULATED accelerator (1B-parameter policy and PRM, cost model in benchmarks/simulated_accelerator.py): "
          f"beam N={cfg.budgets[0]}, {len(items)} problems, tiny world '{profile}' outputs (computed once in {fill_wall:.1f} s)")
    print(f"  simulated batched across problems : {wall:7.2f} s wall\n{batching_lines(fig)}")
    print(f"  simulated one problem at a time   : {seq_wall:7.2f} s wall\n{batching_lines(seq_fig)}")
    print(f"  simulated speedup {speedup:.2f}x (target >= 4); requests computed for real while simulating: "
          f"{policy.misses + prm.misses}")
    print("  simulated speedup by cost-model parameter (modelled from the recorded calls, no sleeping):")
    print(f"    {'simulated cost model':28s} {'batched s':>10s} {'sequential s':>13s} {'speedup':>8s}")
    table = {}
    for name, change in SENSITIVITY:
        m = dataclasses.replace(model, **change)
        b, q = modelled_seconds(p, s, m), modelled_seconds(seq_p, seq_s, m)
        table[name] = round(q / b, 2)
        print(f"    {name:28s} {b:10.2f} {q:13.2f} {q / b:8.2f}")
    assert batched == sequential, "batching changed the search results"
    return {"simulated_batched_wall_s": round(wall, 3), "simulated_sequential_wall_s": round(seq_wall, 3),
            "simulated_batched_vs_sequential_speedup": round(speedup, 3), "speedup_target": 4.0,
            "simulated_cost_model": dataclasses.asdict(model), "simulated_speedup_by_parameter": table,
            "simulated_real_misses": policy.misses + prm.misses,
            "requests_per_call_batched": mean_requests_per_call(fig),
            "requests_per_call_sequential": mean_requests_per_call(seq_fig),
            "batching_batched": fig, "batching_sequential": seq_fig, "same_answers": batched == sequential}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="default")
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--backend", choices=("transformers", "vllm"), default="transformers", help="policy backend")
    ap.add_argument("--simulated", action="store_true", help="a SIMULATED accelerator's time (no Ray)")
    ap.add_argument("overrides", nargs="*", help="tts config overrides (key=value)")
    args = ap.parse_args()
    try:
        cfg = load_config("tts", [f"policy.path=tinyworld:{args.profile}", f"prm.path=tinyworld:{args.profile}",
                                  f"policy.backend={args.backend}",
                                  f"dataset.num_problems={args.problems + 4}", f"budgets=[{args.n}]",
                                  "methods=[beam]", "policy.batch_size=1024", "prm.batch_size=256",
                                  *args.overrides])
    except ConfigError as error:
        sys.exit(str(error))
    loaded = load_items(cfg.dataset)
    items, warm_up = loaded[:args.problems], loaded[args.problems:]
    if args.simulated:
        figures = simulated(cfg, items, args.profile)
        print(json.dumps({"benchmark": "tts_throughput", "simulated": True, "profile": args.profile,
                          "problems": len(items), "n": args.n, **figures}))
        return
    runtime.connect(cfg.ray)
    run_dir = Path(os.environ.get("SCALERUN_RUNS_DIR", "runs")) / "benchmarks"
    run_dir.mkdir(parents=True, exist_ok=True)

    def measure(max_active: int):
        """Fresh pools per mode: the PRM's prefix cache must not carry one mode's work to the other."""
        pools = (launch_policy_pool(cfg.policy, resolve_policy_path(cfg.policy.path), run_dir),
                 launch_prm_pool(cfg.prm, resolve_prm_path(cfg.prm.path), run_dir))
        try:
            sweep(cfg, warm_up, pools, len(warm_up))  # other problems: nothing measured is cached
            return sweep(cfg, items, pools, max_active)
        finally:
            for pool in pools:
                pool.shutdown()

    try:
        sequential_wall, sequential, seq_stats, seq_figures = measure(1)
        batched_wall, batched, stats, figures = measure(len(items))
    finally:
        runtime.shutdown()
    assert batched == sequential, "batching changed the search results"
    speedup = sequential_wall / batched_wall
    efficiency = stats["busy_seconds"] / batched_wall
    print(f"beam N={args.n}, {len(items)} problems, tiny world '{args.profile}', policy backend {args.backend}")
    print(f"  batched across problems : {batched_wall:7.2f} s wall, {stats['rounds']} rounds, "
          f"backend busy {stats['busy_seconds']:.2f} s (policy {stats['compute_seconds']['Generate']:.2f} s, "
          f"PRM {stats['compute_seconds']['Score']:.2f} s)\n{batching_lines(figures)}")
    print(f"  one problem at a time   : {sequential_wall:7.2f} s wall, {seq_stats['rounds']} rounds, "
          f"backend busy {seq_stats['busy_seconds']:.2f} s (policy {seq_stats['compute_seconds']['Generate']:.2f} s, "
          f"PRM {seq_stats['compute_seconds']['Score']:.2f} s)\n{batching_lines(seq_figures)}")
    print(f"  speedup {speedup:.2f}x (target >= 4), compute efficiency {efficiency:.3f} (target >= 0.85)")
    print(json.dumps({"benchmark": "tts_throughput", "profile": args.profile, "backend": args.backend,
                      "problems": len(items), "n": args.n,
                      "batched_wall_s": round(batched_wall, 3), "sequential_wall_s": round(sequential_wall, 3),
                      "batched_vs_sequential_speedup": round(speedup, 3), "speedup_target": 4.0,
                      "compute_efficiency": round(efficiency, 3), "compute_efficiency_target": 0.85,
                      "requests_per_call_batched": mean_requests_per_call(figures),
                      "requests_per_call_sequential": mean_requests_per_call(seq_figures),
                      "batching_batched": figures, "batching_sequential": seq_figures,
                      "same_answers": batched == sequential}))


if __name__ == "__main__":
    main()
