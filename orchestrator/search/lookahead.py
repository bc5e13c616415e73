"""Lookahead-k search: beam search whose candidate steps are judged by where they lead.

Each open candidate is rolled out up to k more steps at temperature 0 (stopping early when the
rollout completes) and the PRM scores the candidate plus its rollout; the score at the end of
the rollout becomes the candidate's step score. The rollout is then dropped: the beam keeps only
the candidate step. Per iteration this costs up to N*(k+1) policy samples, all booked in Usage.
"""
from __future__ import annotations

from orchestrator.protocols import PromptFormat
from orchestrator.search.base import AnswersEqual, ExtractAnswer, SearchConfig
from orchestrator.search.beam import beam_search


def lookahead_search(question: str, n: int, cfg: SearchConfig, fmt: PromptFormat, seed: int,
                     extract_answer: ExtractAnswer, answers_equal: AnswersEqual):
    """Beam search with lookahead k = `cfg.lookahead` (at least 1); the rollout is `steps.rollout`."""
    if cfg.lookahead < 1:
        raise ValueError("lookahead search needs cfg.lookahead >= 1")
    return beam_search(question, n, cfg, fmt, seed, extract_answer, answers_equal, lookahead=cfg.lookahead)
