"""Each benchmark's smallest case runs to its final JSON line, so the benchmarks keep working as
the code under them changes (their figures are measured by running them in full, not here)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SMALLEST = {
    "scale_out": (["benchmarks/scale_out.py", "--problems", "24", "--replicas", "1,2", "--cohorts", "1,2,per-replica",
                   "--time-scale", "0", "--memory-problems", "20,40"],
                  ["scaling_efficiency", "driver_cpu_ms_per_request", "machine_busy_by_replicas",
                   "driver_keeps_up_with_replicas", "driver_memory_growth_1k_to_10k"]),
    "actor_overhead": (["benchmarks/actor_overhead.py", "--requests", "4", "--max-tokens", "8", "--rounds", "3"],
                       ["actor_vs_direct_tokens_per_s_ratio", "actor_vs_subprocess_tokens_per_s_ratio", "samples_identical",
                        "prm_incremental_vs_naive_tokens_ratio"]),
    "tts_throughput_simulated": (["benchmarks/tts_throughput.py", "--simulated", "--profile", "test", "--problems", "4",
                                  "--n", "4"], ["simulated"]),
}


@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_benchmark_smallest_case_ends_with_its_json_line(name, tmp_path):
    argv, keys = SMALLEST[name]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "RAY_TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(key in figures for key in keys), sorted(figures)


def test_the_simulated_prm_charges_the_tokens_it_computes():
    sys.path.insert(0, str(REPO))
    from benchmarks.scale_out import QUESTION_TOKENS, STEP_TOKENS, FakeScorer
    from benchmarks.simulated_accelerator import CostModel, call_shape
    from orchestrator.protocols import ScoreRequest

    model = CostModel()
    results = FakeScorer(model, 0).score([ScoreRequest("q", ("a", "b")), ScoreRequest("q", ("a", "b", "c"))])
    assert [len(r.step_scores) for r in results] == [2, 3] and results[0].step_scores == results[1].step_scores[:2]
    assert [r.tokens for r in results] == [QUESTION_TOKENS + 2 * STEP_TOKENS, QUESTION_TOKENS + 3 * STEP_TOKENS]
    assert call_shape(results) == (2 * STEP_TOKENS,)  # only each request's new step is computed
    assert model.score_seconds(call_shape(results)) > model.call_latency_s


def test_the_simulated_policy_prefills_only_what_its_prefix_cache_misses():
    sys.path.insert(0, str(REPO))
    from benchmarks.simulated_accelerator import BLOCK_TOKENS, CostModel, SimulatedPolicy
    from orchestrator.protocols import GenerateRequest, GenerateResult, Sample

    class OneTokenPerCharacter:
        def generate(self, requests):
            return [GenerateResult([Sample("s" * 30, "stop", 30)], prompt_tokens=len(r.prompt), generated_tokens=30)
                    for r in requests]

    policy = SimulatedPolicy(OneTokenPerCharacter(), CostModel(), sleep=False)
    question, other = "Q" * 40, "R" * 40
    first = policy.generate([GenerateRequest(prompt=question), GenerateRequest(prompt=question, seed=1)])
    assert [r.cached_prompt_tokens for r in first] == [0, 0]  # blocks one call fills serve later calls only
    deeper = question + "s" * 30 + "|"  # the next step's prompt: the question, the sampled step, a delimiter
    second = policy.generate([GenerateRequest(prompt=deeper), GenerateRequest(prompt=other)])
    assert [r.cached_prompt_tokens for r in second] == [(70 // BLOCK_TOKENS) * BLOCK_TOKENS, 0]  # whole blocks only
    assert [s[0] for s in policy.shapes] == [80, 71 - 64 + 40]
    assert [s[0] for s in policy.uncached_shapes] == [80, 111]  # the same calls with nothing cached
    policy.begin()
    assert policy.generate([GenerateRequest(prompt=deeper)])[0].cached_prompt_tokens == 0
