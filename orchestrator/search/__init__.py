"""Test-time search strategies over the Policy/Scorer protocols.

Every strategy is created as `STRATEGIES[name](question, cfg, fmt, seed, extract_answer,
answers_equal)` and is a generator driven by `run`, `run_many` or the Ray scheduler (see base).
"""
from orchestrator.search.base import (Generate, Score, SearchConfig, SearchResult, Solution, TreeNode,
                                      derive_seed, run, run_many)
from orchestrator.search.beam import beam_search
from orchestrator.search.dvts import dvts
from orchestrator.search.lookahead import lookahead_search
from orchestrator.search.sampling import best_of_n, majority, weighted_best_of_n

STRATEGIES = {
    "majority": majority,
    "best_of_n": best_of_n,
    "weighted_best_of_n": weighted_best_of_n,
    "beam": beam_search,
    "dvts": dvts,
    "lookahead": lookahead_search,
}
SAMPLING_METHODS = ("majority", "best_of_n", "weighted_best_of_n")  # run once at N_max, subsampled

__all__ = ["STRATEGIES", "SAMPLING_METHODS", "Generate", "Score", "SearchConfig", "SearchResult",
           "Solution", "TreeNode", "derive_seed", "run", "run_many"]
