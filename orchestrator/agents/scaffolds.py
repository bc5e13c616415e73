"""Scaffolds as configs: how many drafts, how wide each step branches, how buggy nodes are debugged,
and which nodes a step may branch from.

The five presets are the Automated LLM Speedrunning Benchmark's (at most 20 nodes and 20
iterations each; Flat one iteration). `selection` picks the node to improve:
  local   the best of {the root, the node the last step branched from, the last step's children}
          (llm-speedrunner: after a failed debug step it falls back to the root)
  global  the best good node of the whole tree (AIDE)
A step debugs with `debug_probability` when a buggy leaf within `max_bug_depth` debug steps
exists (one child of a random such leaf), else it improves (`branching` children).
"""
from __future__ import annotations

from dataclasses import dataclass

SELECTIONS = ("local", "global")


@dataclass
class Scaffold:
    name: str = "tree"
    drafts: int = 1  # children of the root in the first step
    branching: int = 3  # children per improvement step
    iterations: int = 20  # steps, the drafting step included
    max_nodes: int = 20  # nodes besides the root
    debug_probability: float = 0.0
    max_bug_depth: int = 0  # debug steps allowed along one chain of buggy nodes
    selection: str = "local"

    def check(self) -> str | None:
        """Why this scaffold is invalid (None when it is valid)."""
        if self.selection not in SELECTIONS:
            return f"selection must be one of {', '.join(SELECTIONS)}"
        if self.drafts < 1 or self.iterations < 1 or self.max_nodes < 1:
            return "drafts, iterations and max_nodes must be >= 1"
        if self.branching < 0 or self.max_bug_depth < 0:
            return "branching and max_bug_depth must be >= 0"
        if not 0.0 <= self.debug_probability <= 1.0:
            return "debug_probability must be within [0, 1]"
        return None


PRESETS = {
    "flat": Scaffold("flat", drafts=20, branching=0, iterations=1),
    "tree": Scaffold("tree", drafts=1, branching=3),
    "forest": Scaffold("forest", drafts=3, branching=3),
    "aide": Scaffold("aide", drafts=3, branching=1, debug_probability=0.5, max_bug_depth=5),
    "multi_aide": Scaffold("multi_aide", drafts=3, branching=3, debug_probability=0.5, max_bug_depth=5),
}
