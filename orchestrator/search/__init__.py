"""Test-time search strategies over the Policy/Scorer protocols.

Every strategy is created as `STRATEGIES[name](question, n, cfg, fmt, seed, extract_answer,
answers_equal)` and is a generator driven by the one driver (orchestrator/driver.py), in
process through `run` and `run_many`.
"""
from orchestrator.search.base import (AGGREGATIONS, SearchConfig, SearchResult, Solution, TreeNode, derive_seed,
                                      run, run_many)
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

TREE_METHODS = ("beam", "dvts", "lookahead")  # one unit per budget; the beam width must divide it

__all__ = ["AGGREGATIONS", "STRATEGIES", "SAMPLING_METHODS", "TREE_METHODS", "SearchConfig", "SearchResult",
           "Solution", "TreeNode", "derive_seed", "run", "run_many"]
