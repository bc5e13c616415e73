"""PRM replicas on Ray behind the replica pool: same scores as in-process, incremental per subtree.

Two replicas of a tiny random tiny-world PRM score two 10-step search paths, one step at a
time. Each path's requests carry its question as affinity key, so they return to the replica
holding its cached prefixes, and the tokens computed over the whole search equal the two final
solutions' lengths.
"""
import os
import tempfile
from dataclasses import replace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import ray
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from actors.placement import ModelPlacement, backend_kwargs
from actors.pool import ReplicaPool
from actors.prm import PRMActor, PRMConfig, PRMScorer
from orchestrator.protocols import ScoreRequest, Usage
from orchestrator.tasks.arith import make_problem
from orchestrator.tinyworld.prm_model import Readout, save_prm
from orchestrator.tinyworld.tokenizer import build_tokenizer

PROBLEMS = [make_problem(37, [("+", 5), ("-", 3), ("*", 2)] * 3 + [("-", 1)]),
            make_problem(12, [("*", 3), ("+", 10), ("-", 20)] * 3 + [("+", 4)])]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prm")
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024)
    save_prm(LlamaForCausalLM(config), tokenizer, Readout(scale=1.0, bias=2.0), folder)
    return PRMConfig(model=str(folder), family="tinyworld", batch_size=4)


@pytest.fixture(scope="module")
def pool(checkpoint):
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="/tmp/prm-"))
    placement = ModelPlacement(num_replicas=2, num_cpus=0.5)
    pool = ReplicaPool.launch(PRMActor, placement, checkpoint,
                              **backend_kwargs(placement, "transformers"))
    yield pool
    pool.shutdown()
    ray.shutdown()


def test_pooled_replicas_score_search_paths_incrementally(pool, checkpoint):
    naive = PRMScorer.from_config(replace(checkpoint, cache_gb=0))
    usage, served = Usage(), set()
    for depth in range(1, 11):
        requests = [ScoreRequest(p.question, p.reference_steps[:depth]) for p in PROBLEMS]
        got = pool.call("score", requests, affinity=[p.question for p in PROBLEMS])
        served |= {pool.affinity[p.question] for p in PROBLEMS}
        want = naive.score(requests)
        for g, w in zip(got, want):
            assert len(g.step_scores) == depth
            assert max(abs(a - b) for a, b in zip(g.step_scores, w.step_scores)) < 1e-4
            usage.add_score(g)
    finals = [naive.family.encode(p.question, p.reference_steps).ids for p in PROBLEMS]
    assert usage.prm_computed_tokens == sum(len(ids) for ids in finals)  # each prefix ran once
    assert usage.prm_tokens == sum(naive.family.encode(r.question, r.steps).step_ends[-1]  # nominal: no cache
                                   for depth in range(1, 11)
                                   for r in [ScoreRequest(p.question, p.reference_steps[:depth]) for p in PROBLEMS])
    assert usage.prm_compute_seconds > 0
    assert served == {0, 1}  # the two paths were spread over both replicas
