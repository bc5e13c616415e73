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
    "scale_out": (["benchmarks/scale_out.py", "--problems", "24", "--replicas", "1,2", "--cohorts", "1,2",
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
