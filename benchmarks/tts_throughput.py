"""Beam search N=16 on 64 problems through the actor pools: batched across problems vs one
problem at a time (search-and-learn's mode), and wall time vs backend compute inside it.

    python benchmarks/tts_throughput.py [--profile default|test] [--problems 64] [--n 16] [--backend vllm] [key=value ...]

Trailing key=value pairs override the `tts` config, e.g. `policy.num_gpus=1` on a GPU machine.

Both modes run in one process, one after the other, each on freshly launched pools warmed up
on other problems (so neither finds the other's work in the PRM's prefix cache).
The final line is one JSON object with the figures and their targets.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from orchestrator import runtime  # noqa: E402
from orchestrator.config import ConfigError, load_config  # noqa: E402
from orchestrator.datasets import load_items  # noqa: E402
from orchestrator.models import launch_policy_pool, launch_prm_pool, resolve_policy_path, resolve_prm_path  # noqa: E402
from orchestrator.scheduler import drive_searches  # noqa: E402
from orchestrator.tts import _strategy, prompt_format  # noqa: E402


def sweep(cfg, items, pools, max_active):
    units = [{"kind": "search", "method": "beam", "n": cfg.search.budgets[0], "problem": it.id, "seed": 0}
             for it in items]
    questions = {it.id: it.question for it in items}
    fmt = prompt_format(cfg)
    stats = {}
    started = time.monotonic()
    answers = {u["problem"]: r.answer for u, r, _ in drive_searches(
        ((u, _strategy(u, questions[u["problem"]], cfg, fmt)) for u in units), *pools, max_active, stats=stats)}
    return time.monotonic() - started, answers, stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="default")
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--backend", choices=("transformers", "vllm"), default="transformers", help="policy backend")
    ap.add_argument("overrides", nargs="*", help="tts config overrides (key=value)")
    args = ap.parse_args()
    try:
        cfg = load_config("tts", [f"policy.path=tinyworld:{args.profile}", f"prm.path=tinyworld:{args.profile}",
                                  f"policy.backend={args.backend}",
                                  f"dataset.num_problems={args.problems + 4}", f"search.budgets=[{args.n}]",
                                  "search.methods=[beam]", "policy.batch_size=1024", "prm.batch_size=256",
                                  *args.overrides])
    except ConfigError as error:
        sys.exit(str(error))
    loaded = load_items(cfg.dataset)
    items, warm_up = loaded[:args.problems], loaded[args.problems:]
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
        sequential_wall, sequential, seq_stats = measure(1)
        batched_wall, batched, stats = measure(len(items))
    finally:
        runtime.shutdown()
    assert batched == sequential, "batching changed the search results"
    speedup = sequential_wall / batched_wall
    efficiency = stats["busy_seconds"] / batched_wall
    print(f"beam N={args.n}, {len(items)} problems, tiny world '{args.profile}', policy backend {args.backend}")
    print(f"  batched across problems : {batched_wall:7.2f} s wall, {stats['rounds']} rounds, "
          f"backend busy {stats['busy_seconds']:.2f} s (policy {stats['policy_compute_seconds']:.2f} s, "
          f"PRM {stats['prm_compute_seconds']:.2f} s)")
    print(f"  one problem at a time   : {sequential_wall:7.2f} s wall, {seq_stats['rounds']} rounds, "
          f"backend busy {seq_stats['busy_seconds']:.2f} s (policy {seq_stats['policy_compute_seconds']:.2f} s, "
          f"PRM {seq_stats['prm_compute_seconds']:.2f} s)")
    print(f"  speedup {speedup:.2f}x (target >= 4), compute efficiency {efficiency:.3f} (target >= 0.85)")
    print(json.dumps({"benchmark": "tts_throughput", "profile": args.profile, "backend": args.backend,
                      "problems": len(items), "n": args.n,
                      "batched_wall_s": round(batched_wall, 3), "sequential_wall_s": round(sequential_wall, 3),
                      "batched_vs_sequential_speedup": round(speedup, 3), "speedup_target": 4.0,
                      "compute_efficiency": round(efficiency, 3), "compute_efficiency_target": 0.85,
                      "same_answers": batched == sequential}))


if __name__ == "__main__":
    main()
