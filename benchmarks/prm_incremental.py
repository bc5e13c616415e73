"""PRM tokens computed over a 10-step search: incremental scoring against rescoring from scratch.

The search grows one solution a step at a time and scores it after every step, `candidates`
next steps at a time (the right one and wrong variants; the right one is kept), as step-level
search does. The same calls run on two scorers over one random tiny-world PRM (token counts do
not depend on the weights): one reusing cached prefixes, one rescoring every prefix.
`prm_incremental_vs_naive()` is also called by benchmarks/actor_overhead.py.

    python benchmarks/prm_incremental.py   # prints one JSON line
"""
from __future__ import annotations

import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from actors.prm import PRMScorer
from actors.prm_families import TinyWorld
from orchestrator.protocols import ScoreRequest
from orchestrator.tasks.arith import make_problem
from orchestrator.tinyworld.prm_model import Readout
from orchestrator.tinyworld.tokenizer import build_tokenizer

OPERATIONS = [("+", 25), ("-", 12), ("*", 2), ("-", 41), ("+", 7), ("*", 3), ("-", 50),
              ("+", 19), ("-", 8), ("*", 2)]


def random_tiny_prm(cache_bytes: int) -> PRMScorer:
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512,
                         num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=1024)
    model = LlamaForCausalLM(config).eval()
    return PRMScorer(TinyWorld(tokenizer), model.model, (model.lm_head, Readout(scale=1.0, bias=0.0)),
                     batch_size=8, cache_bytes=cache_bytes)


def search_calls(num_steps: int, candidates: int) -> list[list[ScoreRequest]]:
    """One scoring call per depth: the path so far extended by each candidate next step."""
    problem = make_problem(37, OPERATIONS[:num_steps])
    calls = []
    for depth, step in enumerate(problem.reference_steps):
        wrong = [step.rsplit("=", 1)[0] + f"= {k}" for k in range(1, candidates)]
        path = problem.reference_steps[:depth]
        calls.append([ScoreRequest(problem.question, path + (s,)) for s in [step] + wrong])
    return calls


def run(scorer: PRMScorer, calls: list[list[ScoreRequest]]) -> tuple[int, float, list[float]]:
    tokens, scores, t0 = 0, [], time.perf_counter()
    for call in calls:
        for result in scorer.score(call):
            tokens += result.tokens_computed
            scores += result.step_scores
    return tokens, time.perf_counter() - t0, scores


def prm_incremental_vs_naive(num_steps: int = 10, candidates: int = 1) -> dict:
    torch.set_num_threads(1)
    calls = search_calls(num_steps, candidates)
    incremental, naive = random_tiny_prm(cache_bytes=1 << 30), random_tiny_prm(cache_bytes=0)
    tokens_inc, seconds_inc, scores_inc = run(incremental, calls)
    tokens_naive, seconds_naive, scores_naive = run(naive, calls)
    final = calls[-1][0]
    final_tokens = len(incremental.family.encode(final.question, final.steps).ids)
    return {
        "prm_search_steps": num_steps,
        "prm_candidates_per_step": candidates,
        "prm_final_solution_tokens": final_tokens,
        "prm_incremental_tokens": tokens_inc,
        "prm_naive_tokens": tokens_naive,
        "prm_incremental_tokens_over_final": tokens_inc / final_tokens,
        "prm_incremental_vs_naive_tokens_ratio": tokens_inc / tokens_naive,
        "prm_incremental_vs_naive_seconds_ratio": seconds_inc / seconds_naive,
        "prm_max_score_difference": max(abs(a - b) for a, b in zip(scores_inc, scores_naive)),
    }


def main():
    beam = prm_incremental_vs_naive(candidates=4)
    result = prm_incremental_vs_naive(candidates=1)
    result["prm_incremental_vs_naive_tokens_ratio_4_candidates"] = beam[
        "prm_incremental_vs_naive_tokens_ratio"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
