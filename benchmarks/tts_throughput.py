"""Beam search N=16 on 64 problems: batched across problems vs one problem at a time
(search-and-learn's mode), and wall time vs backend compute inside it.

    python benchmarks/tts_throughput.py [--profile default|test] [--problems 64] [--n 16] [--backend vllm]
                                        [--simulated | --inprocess [--device auto|cpu|cuda]] [key=value ...]

Trailing key=value pairs override the `tts` config, e.g. `policy.num_gpus=1` on a GPU machine.

Default: through the actor pools on a local Ray cluster. Both modes run in one process, one
after the other, each on freshly launched pools warmed up on other problems (so neither finds
the other's work in the PRM's prefix cache). Beside the wall times it reports what does not
depend on the machine: the calls the driver issues, the requests per call and the rounds per
problem step (benchmarks/batching.py).

`--inprocess`: no Ray (only torch and transformers needed): the one driver over `LocalPool`s
of the transformers backend and the PRM scorer in this process, fresh per mode, on `--device`
(auto: cuda when there is one). benchmarks/gpu_check.sh runs this on a bare GPU machine.

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

import torch  # noqa: E402

from actors.policy import TransformersBackend  # noqa: E402
from actors.prm import PRMConfig, PRMScorer  # noqa: E402
from benchmarks.batching import CountingPool, batching_figures, counted  # noqa: E402
from benchmarks.simulated_accelerator import (BLOCK_TOKENS, CostModel, SimulatedPolicy, SimulatedScorer,  # noqa: E402
                                              modelled_seconds)
from orchestrator.checkpoints import resolve_policy_path, resolve_prm_path  # noqa: E402
from orchestrator.config import ConfigError, build_config, read_preset  # noqa: E402
from orchestrator.datasets import load_items  # noqa: E402
from orchestrator.driver import LocalPool, drive  # noqa: E402
from orchestrator.grading import answers_equal, extract_answer  # noqa: E402
from orchestrator.protocols import Generate, Score  # noqa: E402
from orchestrator.search import STRATEGIES, derive_seed  # noqa: E402
from orchestrator.tinyworld import PROMPT_FORMAT  # noqa: E402
from orchestrator.tts.config import TTSConfig  # noqa: E402


def tts_config(profile: str, problems: int, n: int, backend: str, overrides) -> TTSConfig:
    """The `tts` preset for beam search at N on the tiny world; exits with the bad key's line."""
    try:
        return build_config(TTSConfig, read_preset("tts", [
            f"policy.path=tinyworld:{profile}", f"prm.path=tinyworld:{profile}", f"policy.backend={backend}",
            f"dataset.num_problems={problems + 4}", f"budgets=[{n}]", "methods=[beam]",
            "policy.batch_size=1024", "prm.batch_size=256", *overrides]))
    except ConfigError as error:
        sys.exit(str(error))


def sweep(cfg, items, pools, max_active):
    """Beam search on `items` through `pools` (policy, PRM); wall s, results by problem, driver
    stats, batching figures. Each problem's search has its own seed, the same in every mode."""
    n = cfg.budgets[0]
    stats, steps = {}, Counter()
    counting = {"Generate": CountingPool(pools[0]), "Score": CountingPool(pools[1])}
    started = time.monotonic()
    jobs = ((it.id, counted(STRATEGIES["beam"](it.question, n, cfg.search, PROMPT_FORMAT, derive_seed(cfg.seed, it.id, "beam", n),
                                               extract_answer, answers_equal), steps))
            for it in items)
    results = {problem: r for problem, r, _ in drive(jobs, {Generate: counting["Generate"], Score: counting["Score"]},
                                                     max_active, affinity_key=lambda problem: problem, stats=stats)}
    return time.monotonic() - started, results, stats, batching_figures(counting, steps, stats["rounds"])


def answers(results: dict) -> dict:
    return {problem: r.answer for problem, r in results.items()}


def generated_tokens(results: dict) -> int:
    return sum(r.usage.policy_generated_tokens for r in results.values())


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
               ("prefill free", {"prefill_s_per_token": 0.0})]
NO_POLICY_CACHE = "no policy prefix cache"  # every prompt token prefilled, every call


def cached_fraction(charged: list[tuple], uncached: list[tuple]) -> float:
    """The share of the prompt tokens of a run's policy calls that its prefix cache held."""
    total = sum(shape[0] for shape in uncached)
    return 1 - sum(shape[0] for shape in charged) / total if total else 0.0


def simulated(cfg, items, profile: str):
    """Both modes on the simulated accelerator; the real tiny-world backends compute each output once."""
    model = CostModel()
    policy = SimulatedPolicy(TransformersBackend(resolve_policy_path(cfg.policy.path), max_batch_size=cfg.policy.batch_size,
                                                 num_threads=1), model, sleep=False)
    prm = SimulatedScorer(PRMScorer.from_config(PRMConfig(model=resolve_prm_path(cfg.prm.path), family=cfg.prm.family,
                                                          batch_size=cfg.prm.batch_size)), model, sleep=False)
    pools = (LocalPool(policy), LocalPool(prm))
    fill_wall = sweep(cfg, items, pools, len(items))[0]  # real compute, remembered: not timed below
    runs = {}
    for mode, max_active in (("sequential", 1), ("batched", len(items))):
        policy.begin()
        prm.begin()
        runs[mode] = (*sweep(cfg, items, pools, max_active), policy.shapes, prm.shapes, policy.uncached_shapes)
    (seq_wall, sequential, _, seq_fig, seq_p, seq_s, seq_u), (wall, batched, _, fig, p, s, u) = runs["sequential"], runs["batched"]
    speedup = seq_wall / wall
    print(f"SIMULATED accelerator (1B-parameter policy and PRM, cost model in benchmarks/simulated_accelerator.py): "
          f"beam N={cfg.budgets[0]}, {len(items)} problems, tiny world '{profile}' outputs (computed once in {fill_wall:.1f} s)")
    print(f"  simulated batched across problems : {wall:7.2f} s wall\n{batching_lines(fig)}")
    print(f"  simulated one problem at a time   : {seq_wall:7.2f} s wall\n{batching_lines(seq_fig)}")
    held = {mode: cached_fraction(policy_shapes, uncached) for mode, policy_shapes, uncached in
            (("batched", p, u), ("sequential", seq_p, seq_u))}
    print(f"  the policy's prefix cache held {held['batched']:.1%} of the prompt tokens batched, "
          f"{held['sequential']:.1%} one problem at a time (whole {BLOCK_TOKENS}-token blocks, unbounded)")
    print(f"  simulated speedup {speedup:.2f}x (target >= 4); requests computed for real while simulating: "
          f"{policy.misses + prm.misses}")
    print("  simulated speedup by cost-model parameter (modelled from the recorded calls, no sleeping):")
    print(f"    {'simulated cost model':28s} {'batched s':>10s} {'sequential s':>13s} {'speedup':>8s}")
    table = {}
    rows = [(name, dataclasses.replace(model, **change), p, seq_p) for name, change in SENSITIVITY]
    for name, m, batched_policy, sequential_policy in rows + [(NO_POLICY_CACHE, model, u, seq_u)]:
        b, q = modelled_seconds(batched_policy, s, m), modelled_seconds(sequential_policy, seq_s, m)
        table[name] = round(q / b, 2)
        print(f"    {name:28s} {b:10.2f} {q:13.2f} {q / b:8.2f}")
    same = answers(batched) == answers(sequential)
    assert same, "batching changed the search results"
    return {"simulated_batched_wall_s": round(wall, 3), "simulated_sequential_wall_s": round(seq_wall, 3),
            "simulated_batched_vs_sequential_speedup": round(speedup, 3), "speedup_target": 4.0,
            "simulated_cost_model": dataclasses.asdict(model), "simulated_speedup_by_parameter": table,
            "simulated_real_misses": policy.misses + prm.misses,
            "simulated_policy_prompt_tokens_cached": {mode: round(f, 3) for mode, f in held.items()},
            "requests_per_call_batched": mean_requests_per_call(fig),
            "requests_per_call_sequential": mean_requests_per_call(seq_fig),
            "batching_batched": fig, "batching_sequential": seq_fig, "same_answers": same}


def auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def inprocess(cfg, items, warm_up, device: str, dtype: str, policy_dir: str | None = None, prm_dir: str | None = None,
              wrap_policy=lambda backend: backend) -> dict:
    """Both modes through the one driver over LocalPools in this process, no Ray: a fresh policy
    backend and PRM scorer per mode (so the PRM's prefix cache carries nothing from one mode to
    the other), each warmed up on other problems (CUDA start-up and kernel selection untimed)."""
    policy_dir = policy_dir or resolve_policy_path(cfg.policy.path)
    prm_dir = prm_dir or resolve_prm_path(cfg.prm.path)
    runs = {}
    for mode, max_active in (("sequential", 1), ("batched", len(items))):
        policy = TransformersBackend(policy_dir, device=device, dtype=dtype, max_batch_size=cfg.policy.batch_size,
                                     num_threads=1)
        prm = PRMScorer.from_config(PRMConfig(model=prm_dir, family=cfg.prm.family, batch_size=cfg.prm.batch_size,
                                              dtype=dtype, device=device))
        pools = (LocalPool(wrap_policy(policy)), LocalPool(prm))
        sweep(cfg, warm_up, pools, len(warm_up))
        runs[mode] = sweep(cfg, items, pools, max_active)
        del policy, prm, pools
        if device == "cuda":
            torch.cuda.empty_cache()
    return side_by_side(runs["batched"], runs["sequential"], serial=True)


def side_by_side(batched_run, sequential_run, serial: bool) -> dict:
    """Prints both modes' wall, compute and batching figures; returns them as the JSON's fields.

    Compute efficiency is backend compute over wall: per round the longest call where the pools
    run side by side (actors), the sum of both where they run one after the other (`serial`)."""
    lines, out = [], {}
    for mode, (wall, results, stats, figures) in (("batched", batched_run), ("sequential", sequential_run)):
        compute = stats["compute_seconds"]
        busy = sum(compute.values()) if serial else stats["busy_seconds"]
        label = "batched across problems" if mode == "batched" else "one problem at a time  "
        lines.append(f"  {label} : {wall:7.2f} s wall, {stats['rounds']} rounds, backend busy {busy:.2f} s "
                     f"(policy {compute['Generate']:.2f} s, PRM {compute['Score']:.2f} s), "
                     f"{generated_tokens(results)} tokens generated\n{batching_lines(figures)}")
        out[mode] = {"wall_s": round(wall, 3), "compute_efficiency": round(busy / wall, 3),
                     "generated_tokens": generated_tokens(results), "figures": figures, "answers": answers(results)}
    speedup = out["sequential"]["wall_s"] / out["batched"]["wall_s"]
    b, q = out["batched"], out["sequential"]
    agree = sum(b["answers"][p] == q["answers"][p] for p in b["answers"]) / len(b["answers"])
    print("\n".join(lines))
    print(f"  speedup {speedup:.2f}x (target >= 4), compute efficiency {b['compute_efficiency']:.3f} (target >= 0.85), "
          f"same answer on {agree:.0%} of problems, generated tokens batched/sequential "
          f"{b['generated_tokens'] / max(q['generated_tokens'], 1):.3f}")
    return {"batched_wall_s": b["wall_s"], "sequential_wall_s": q["wall_s"],
            "batched_vs_sequential_speedup": round(speedup, 3), "speedup_target": 4.0,
            "compute_efficiency": b["compute_efficiency"], "compute_efficiency_target": 0.85,
            "requests_per_call_batched": mean_requests_per_call(b["figures"]),
            "requests_per_call_sequential": mean_requests_per_call(q["figures"]),
            "generated_tokens_batched": b["generated_tokens"], "generated_tokens_sequential": q["generated_tokens"],
            "batching_batched": b["figures"], "batching_sequential": q["figures"],
            "same_answers": b["answers"] == q["answers"], "same_answer_fraction": round(agree, 4)}


def through_ray(cfg, items, warm_up) -> dict:
    """Both modes through the actor pools on a local Ray cluster."""
    # Ray only on this path: --inprocess and --simulated run where it is not installed.
    from actors.launch import launch_policy_pool, launch_prm_pool
    from orchestrator import runtime

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
        sequential = measure(1)
        batched = measure(len(items))
    finally:
        runtime.shutdown()
    figures = side_by_side(batched, sequential, serial=False)
    assert figures["same_answers"], "batching changed the search results"
    return figures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="default")
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--backend", choices=("transformers", "vllm"), default="transformers", help="policy backend")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--simulated", action="store_true", help="a SIMULATED accelerator's time (no Ray)")
    mode.add_argument("--inprocess", action="store_true", help="in-process transformers backend and PRM (no Ray)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="--inprocess: where the models run")
    ap.add_argument("overrides", nargs="*", help="tts config overrides (key=value)")
    args = ap.parse_args()
    cfg = tts_config(args.profile, args.problems, args.n, args.backend, args.overrides)
    loaded = load_items(cfg.dataset)
    items, warm_up = loaded[:args.problems], loaded[args.problems:]
    head = {"benchmark": "tts_throughput", "profile": args.profile, "problems": len(items), "n": args.n}
    if args.simulated:
        print(json.dumps({**head, "simulated": True, **simulated(cfg, items, args.profile)}))
        return
    if args.inprocess:
        device = auto_device() if args.device == "auto" else args.device
        print(f"beam N={args.n}, {len(items)} problems, tiny world '{args.profile}', in-process transformers "
              f"backend and PRM on {device} (no Ray)")
        figures = inprocess(cfg, items, warm_up, device, "float32")
        print(json.dumps({**head, "mode": "inprocess", "device": device, "backend": "transformers", **figures}))
        return
    print(f"beam N={args.n}, {len(items)} problems, tiny world '{args.profile}', policy backend {args.backend}")
    figures = through_ray(cfg, items, warm_up)
    print(json.dumps({**head, "mode": "ray", "backend": args.backend, **figures}))


if __name__ == "__main__":
    main()
