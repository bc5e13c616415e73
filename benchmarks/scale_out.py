"""SIMULATED scale-out: the one driver and ReplicaPools over 1 to 32 replicas that compute nothing.

    python benchmarks/scale_out.py [--problems 2000] [--replicas 1,2,4,8,16,32] [--cohorts 1,2,per-replica]
                                   [--time-scale 1.0] [--profile-driver] [--memory-problems 1000,10000]

Policy and PRM actors return synthetic outputs and sleep for the simulated accelerator's cost
model (benchmarks/simulated_accelerator.py) times `--time-scale` (1: the cost model as written;
below 1 the run is shorter and the driver's own cost weighs `1 / time_scale` times more). Each actor asks for 0.01 CPU, so 32 of each fit
on a `ray.cluster_utils.Cluster` of 4 simulated nodes on this machine. Beam search N=16 (the
real strategy) runs over synthetic problems that complete after `DEPTH` steps, 8 problems per
replica in each of the driver's cohorts (128 sequences: the cost model's saturation batch). Each
`--cohorts` value is a sweep over every replica count: 1 is lockstep; with 2 the driver handles one
cohort's results while the other's calls run, and a replica serves the two cohorts in turn;
`per-replica` is one cohort per replica, each sent whole to its own replica (the driver's
`cohort_affinity`), so no replica waits for another, only for the driver.

Printed: throughput against the ideal (replicas x one replica's), the driver's CPU per request,
how busy its thread is (near 1: the driver is the limit), its peak memory (Ray) and the object
store's peak; how many replicas one driver thread keeps up with; then the driver's memory alone
(in-process fakes, no sleeping) for 1,000 and 10,000 problems. The final line is one JSON object.
"""
import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import re
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# No idle task workers beside the actors: each Ray worker process wakes every 10 ms (its signal
# check), about 7 ms of CPU a second here, and this benchmark runs no tasks.
os.environ.setdefault("RAY_enable_worker_prestart", "0")
os.environ.setdefault("RAY_num_workers_soft_limit", "0")

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from actors.placement import computing_runtime_env  # noqa: E402
from actors.pool import ReplicaPool  # noqa: E402
from actors.wire import PickledBatch  # noqa: E402
from benchmarks.host_cpu import cpu_ticks  # noqa: E402
from benchmarks.simulated_accelerator import CostModel, call_shape  # noqa: E402
from orchestrator.driver import LocalPool, drive  # noqa: E402
from orchestrator.protocols import Generate, GenerateResult, PromptFormat, Sample, Score, ScoreResult  # noqa: E402
from orchestrator.search.base import SearchConfig  # noqa: E402
from orchestrator.search.beam import beam_search  # noqa: E402

DEPTH = 4  # steps of every synthetic solution
STEP_TOKENS = 32  # tokens of every synthetic step (BPE-sized, unlike the tiny world's characters)
QUESTION_TOKENS = 64
PROBLEMS_PER_REPLICA = 8  # x 16 sequences = the cost model's saturation batch
NODES, CPUS_PER_NODE = 4, 16
FORMAT = PromptFormat()
PER_REPLICA = "per-replica"


def unit_hash(*parts) -> float:
    return zlib.crc32(repr(parts).encode()) / 2**32


def step_scores(steps: tuple[str, ...]) -> list[float]:
    """A score per step from a running hash of the steps so far."""
    scores, crc = [], 0
    for step in steps:
        crc = zlib.crc32(step.encode(), crc)
        scores.append(crc / 2**32)
    return scores


class FakePolicy:
    """Synthetic steps; a sample completes at depth DEPTH. Costs the simulated accelerator's time."""

    def __init__(self, model: CostModel, time_scale: float):
        self.model, self.time_scale = model, time_scale

    def generate(self, requests):
        results = []
        for r in requests:
            depth = (r.prompt or "").count(FORMAT.step_delimiter) - 1  # the template ends in one
            done = depth + 1 >= DEPTH
            samples = [Sample(f"answer {int(unit_hash(r.seed, i) * 10)}" if done else f"step {depth} {i}",
                              "eos" if done else "stop", STEP_TOKENS) for i in range(r.n)]
            cached = QUESTION_TOKENS + STEP_TOKENS * (depth - 1) if depth else 0  # affinity keeps the prefix
            results.append(GenerateResult(samples, QUESTION_TOKENS + STEP_TOKENS * depth, STEP_TOKENS * r.n,
                                          cached_prompt_tokens=cached))
        if self.time_scale:
            time.sleep(self.model.generate_seconds(call_shape(results)) * self.time_scale)
        return PickledBatch(results)  # as the real actors return theirs


class FakeScorer:
    """A score per step from a hash of the steps; only the new step is computed (prefix cache)."""

    def __init__(self, model: CostModel, time_scale: float):
        self.model, self.time_scale = model, time_scale

    def score(self, requests):
        results = [ScoreResult(step_scores(r.steps), tokens=QUESTION_TOKENS + STEP_TOKENS * len(r.steps),
                               tokens_computed=STEP_TOKENS) for r in requests]
        if self.time_scale:
            time.sleep(self.model.score_seconds(call_shape(results)) * self.time_scale)
        return PickledBatch(results)


def answer_of(text: str, truncated: bool = False):
    return text.split()[-1] if text.startswith("answer") else None


def jobs(problems: int):
    cfg = SearchConfig(beam_width=4, max_iterations=DEPTH + 1)
    for p in range(problems):
        yield p, beam_search(f"problem {p}", 16, cfg, FORMAT, p, answer_of, lambda a, b: a == b)


def object_store_mib(address: str) -> float:
    """Plasma bytes in use, cluster-wide, from Ray's memory summary."""
    from ray._private.internal_api import memory_summary

    found = re.search(r"Plasma memory usage (\d+) MiB", memory_summary(address=address, stats_only=True))
    return float(found.group(1)) if found else 0.0


def driver_shape(cohorts: str, replicas: int) -> tuple[int, int, bool]:
    """(units in flight, cohorts, cohort affinity) for a `--cohorts` value at `replicas`."""
    if cohorts == PER_REPLICA:
        return PROBLEMS_PER_REPLICA * replicas, replicas, True
    return PROBLEMS_PER_REPLICA * replicas * int(cohorts), int(cohorts), False


def run(pools, problems: int, max_active: int, cohorts: int, cohort_affinity: bool, profile: bool = False):
    """One sweep through the driver: wall s, driver CPU s (the process, Ray's threads included),
    the driver thread's own CPU s, the machine's busy fraction, cProfile text or None.

    On this one machine every simulated node shares the same cores: a busy fraction near 1 says
    the host (all actors, raylets and the driver together), not the driver alone, is the limit."""
    profiler = cProfile.Profile(time.thread_time) if profile else None  # the driver thread's own CPU, not time descheduled
    wall, cpu, own, ticks = time.monotonic(), time.process_time(), time.thread_time(), cpu_ticks()
    if profiler:
        profiler.enable()
    for _ in drive(jobs(problems), pools, max_active, affinity_key=lambda unit: unit, cohorts=cohorts,
                   cohort_affinity=cohort_affinity):
        pass
    if profiler:
        profiler.disable()
    wall, cpu, own = time.monotonic() - wall, time.process_time() - cpu, time.thread_time() - own
    end = cpu_ticks()
    busy = (end[0] - ticks[0]) / max(end[1] - ticks[1], 1)
    text = None
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        text = out.getvalue()
    return wall, cpu, own, busy, text


def count_requests(problems: int) -> int:
    """Requests one sweep sends, counted in process (the fakes answer at once)."""
    counter = {"n": 0}

    class Counting(LocalPool):
        def submit(self, method, items, affinity=None):
            counter["n"] += len(items)
            return super().submit(method, items, affinity)

    model = CostModel()
    for _ in drive(jobs(problems), {Generate: Counting(FakePolicy(model, 0)), Score: Counting(FakeScorer(model, 0))},
                   256):
        pass
    return counter["n"]


def driver_memory_mib(problems: int) -> float:
    """Peak Python memory of the driver over `problems` problems, in process, nothing slept."""
    model = CostModel()
    pools = {Generate: LocalPool(FakePolicy(model, 0)), Score: LocalPool(FakeScorer(model, 0))}
    gc.collect()
    tracemalloc.start()
    for _ in drive(jobs(problems), pools, 256):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=2000)
    ap.add_argument("--replicas", default="1,2,4,8,16,32")
    ap.add_argument("--cohorts", default="1,2,per-replica", help="the driver's cohorts, one sweep each")
    ap.add_argument("--time-scale", type=float, default=1.0, help="sleep = simulated cost x this")
    ap.add_argument("--profile-driver", action="store_true", help="cProfile the driver at the most replicas")
    ap.add_argument("--memory-problems", default="1000,10000", help="the two sizes of the driver-memory check")
    args = ap.parse_args()
    counts = [int(r) for r in args.replicas.split(",")]
    cohort_counts = args.cohorts.split(",")
    for c in cohort_counts:
        if c != PER_REPLICA and not (c.isdigit() and int(c) > 0):
            ap.error(f"--cohorts: {c!r} is neither a positive number nor {PER_REPLICA}")
    model = CostModel()
    requests = count_requests(args.problems)

    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="scalerun-scale-out-")  # own Ray session files
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": CPUS_PER_NODE, "include_dashboard": False})
    for _ in range(NODES - 1):
        cluster.add_node(num_cpus=CPUS_PER_NODE)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    rows = {}
    try:
        most = max(counts)
        spread = {"num_cpus": 0.01, "scheduling_strategy": "SPREAD", "runtime_env": computing_runtime_env()}  # as the pools
        policies = [ray.remote(FakePolicy).options(**spread).remote(model, args.time_scale) for _ in range(most)]
        scorers = [ray.remote(FakeScorer).options(**spread).remote(model, args.time_scale) for _ in range(most)]
        ray.get([a.__ray_ready__.remote() for a in policies + scorers])
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        peak_store = 0.0
        sampling = threading.Event()

        def sample_store():
            nonlocal peak_store
            while not sampling.wait(2.0):
                peak_store = max(peak_store, object_store_mib(cluster.address))

        sampler = threading.Thread(target=sample_store, daemon=True)
        sampler.start()
        profile_text = None
        print(f"SIMULATED scale-out: beam N=16, {args.problems} synthetic problems x {DEPTH} steps, "
              f"{requests} requests per sweep, {len(nodes)} simulated nodes, sleep = cost model x {args.time_scale}")
        print(f"  {'cohorts':>7s} {'replicas':>8s} {'wall s':>8s} {'problems/s':>11s} {'ideal':>8s} {'efficiency':>10s} "
              f"{'driver CPU ms/req':>18s} {'driver cores':>12s} {'driver thread busy':>18s} {'machine busy':>12s} "
              f"{'driver peak RSS MiB':>20s}")
        for c in cohort_counts:
            rows[c] = {}
            for r in counts:
                pools = {Generate: ReplicaPool(policies[:r]), Score: ReplicaPool(scorers[:r])}
                wall, cpu, own, busy, _ = run(pools, args.problems, *driver_shape(c, r))
                throughput = args.problems / wall
                one = rows[c][counts[0]]["throughput"] / counts[0] if rows[c] else throughput / r
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                rows[c][r] = {"wall_s": wall, "throughput": throughput, "efficiency": throughput / (one * r),
                              "cpu_ms_per_request": 1000 * cpu / requests, "rss_mib": rss,
                              "thread_ms_per_request": 1000 * own / requests, "thread_busy": own / wall,
                              "driver_cores": cpu / wall, "machine_busy": busy}
                print(f"  {c:>7s} {r:8d} {wall:8.2f} {throughput:11.1f} {one * r:8.1f} {throughput / (one * r):10.3f} "
                      f"{1000 * cpu / requests:18.4f} {cpu / wall:12.2f} {own / wall:18.2f} {busy:12.2f} {rss:20.1f}")
        if args.profile_driver:  # one more sweep, not in the table: cProfile slows the driver
            pools = {Generate: ReplicaPool(policies[:most]), Score: ReplicaPool(scorers[:most])}
            best = max(cohort_counts, key=lambda c: rows[c][most]["efficiency"])
            profile_text = run(pools, args.problems, *driver_shape(best, most), profile=True)[4]
        sampling.set()
        peak_store = max(peak_store, object_store_mib(cluster.address))
    finally:
        ray.shutdown()
        cluster.shutdown()
    sizes = [int(n) for n in args.memory_problems.split(",")]
    small, large = driver_memory_mib(sizes[0]), driver_memory_mib(sizes[1])
    print(f"  simulated object-store peak (sampled every 2 s): {peak_store:.1f} MiB")
    print(f"  driver Python memory peak, in process: {small:.2f} MiB for {sizes[0]:,} problems, {large:.2f} MiB for "
          f"{sizes[1]:,} ({large / small:.3f}x; target within 1.2x)")
    if profile_text:
        print(f"  driver profile at {most} replicas (simulated; top by own time):\n{profile_text}")
    best = max(cohort_counts, key=lambda c: rows[c][max(counts)]["efficiency"])
    every = [v for c in cohort_counts for v in rows[c].values()]
    # Requests one replica asks for per second, against what the driver thread handles per second
    # of its CPU (at the most replicas, so under this host's heaviest contention).
    demand = requests / rows[best][counts[0]]["wall_s"] / counts[0]
    capacity = 1000 / rows[best][max(counts)]["thread_ms_per_request"] if rows[best][max(counts)]["thread_ms_per_request"] else 0.0
    print(f"  the driver thread: {rows[best][max(counts)]['thread_ms_per_request']:.4f} ms of CPU per request at "
          f"{max(counts)} replicas ({capacity:,.0f} requests/s); one replica asks {demand:,.0f} requests/s, so one "
          f"driver keeps up with about {capacity / demand:.0f} replicas of this cost model")
    print(json.dumps({"benchmark": "scale_out", "simulated": True, "problems": args.problems, "n": 16,
                      "nodes": NODES, "time_scale": args.time_scale, "requests_per_sweep": requests,
                      "cohorts": best,
                      "scaling_efficiency": {str(r): round(rows[best][r]["efficiency"], 3) for r in counts},
                      "scaling_efficiency_by_cohorts": {str(c): {str(r): round(rows[c][r]["efficiency"], 3)
                                                                 for r in counts} for c in cohort_counts},
                      "scaling_efficiency_target_at_32": 0.9,
                      "throughput_problems_per_s_by_cohorts": {str(c): {str(r): round(rows[c][r]["throughput"], 2)
                                                                        for r in counts} for c in cohort_counts},
                      "driver_cpu_ms_per_request": round(max(v["cpu_ms_per_request"] for v in every), 4),
                      "driver_cpu_ms_target": 1.0,
                      "driver_cpu_ms_per_request_by_replicas": {str(r): round(rows[best][r]["cpu_ms_per_request"], 4)
                                                                for r in counts},
                      "driver_cores_by_replicas": {str(r): round(rows[best][r]["driver_cores"], 2) for r in counts},
                      "machine_busy_by_replicas": {str(r): round(rows[best][r]["machine_busy"], 2) for r in counts},
                      "machine_cpus": os.cpu_count(),
                      "driver_peak_rss_mib": round(max(v["rss_mib"] for v in every), 1),
                      "object_store_peak_mib": peak_store,
                      "driver_memory_problems": sizes, "driver_memory_mib": [round(small, 3), round(large, 3)],
                      "driver_thread_ms_per_request_by_replicas": {str(r): round(rows[best][r]["thread_ms_per_request"], 4)
                                                                   for r in counts},
                      "driver_thread_busy_by_replicas": {str(r): round(rows[best][r]["thread_busy"], 2) for r in counts},
                      "requests_per_s_per_replica": round(demand, 1),
                      "driver_keeps_up_with_replicas": round(capacity / demand, 1),
                      "driver_memory_growth_1k_to_10k": round(large / small, 3), "driver_memory_growth_target": 1.2}))


if __name__ == "__main__":
    main()
