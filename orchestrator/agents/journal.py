"""A rollout's durable journal and the tree rebuilt from it.

One append-only JSONL file per rollout, each event fsynced as it is written:
  rollout      the header: record, scaffold, seed, the root script's sha256
  node         a node is created: id, parent, kind (root|draft|improve|debug), depth, debug_depth
  select       what a step does: iteration, action (draft|improve|debug), the node it branches from
  proposal     a coder's answer for a node (attempt 0, then one per reflection)
  edit         that answer applied (the new script and its sha256) or rejected (why; final when no
               reflection is left)
  integrity    the record's integrity problems of the applied script (empty: none)
  evaluation   the candidate's Evaluation (shared by every node with the same script)
  done         the best node
The tree, the best node and every figure come from these events (`Tree.apply`), in the rollout as
in the report. A resumed rollout re-runs its search over the journal: each event it would write
must equal the one already there (timings aside, `TIMING`), the coder answers and evaluations
recorded are looked up instead of asked for, and writing resumes after the last event. A torn last
line (a kill mid-write) is dropped.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

TIMING = ("t", "wall_s", "started_at", "compute_seconds", "ray_node")  # differ between identical runs


class JournalMismatch(RuntimeError):
    """The resumed rollout would write another event than its journal holds: not the same rollout."""


def read_events(path) -> list[dict]:
    """The complete events of a journal (a last line without its newline is torn, not an event)."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[:data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.decode().splitlines() if line.strip()]


def without_timing(event: dict) -> dict:
    return {k: v for k, v in event.items() if k not in TIMING}


class Journal:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.past = read_events(self.path)
        if self.path.exists():  # cut a torn tail so the next event starts on its own line
            with open(self.path, "r+b") as f:
                data = f.read()
                f.truncate(data.rfind(b"\n") + 1)
        self.cursor = 0
        self._file = open(self.path, "a")

    def write(self, event: dict) -> dict:
        """Append `event` (stamped with its time), or on resume check it against the journal's."""
        event = json.loads(json.dumps({**event, "t": round(time.time(), 3)}))
        if self.cursor < len(self.past):
            recorded = self.past[self.cursor]
            if without_timing(recorded) != without_timing(event):
                raise JournalMismatch(f"{self.path}: event {self.cursor} is {without_timing(recorded)}, "
                                      f"the resumed rollout wrote {without_timing(event)}")
            self.cursor += 1
            return recorded
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.past.append(event)
        self.cursor = len(self.past)
        return event

    def recorded(self, kind: str, **match) -> dict | None:
        """The first journal event of `kind` with these fields (a coder answer or an evaluation
        that a resumed rollout reads back instead of asking again)."""
        return next((e for e in self.past if e["event"] == kind and all(e.get(k) == v for k, v in match.items())),
                    None)

    def close(self) -> None:
        self._file.close()


@dataclass
class Node:
    id: int
    parent: int | None
    kind: str
    depth: int
    debug_depth: int
    children: list[int] = field(default_factory=list)
    script: str | None = None  # None until an edit applies (and for ever when none does)
    sha: str | None = None
    hypothesis: str = ""
    edit_errors: list[str] = field(default_factory=list)
    integrity: list[str] | None = None
    evaluation: dict | None = None
    buggy: bool = False
    reason: str = ""

    @property
    def time_s(self) -> float | None:
        return self.evaluation["time_to_target_s"] if self.evaluation else None

    @property
    def good(self) -> bool:
        return not self.buggy and self.evaluation is not None and self.time_s is not None


class Tree:
    """The nodes of a rollout, as its journal's events make them."""

    def __init__(self):
        self.nodes: dict[int, Node] = {}
        self.header: dict = {}
        self.best: int | None = None

    def apply(self, e: dict) -> None:
        kind = e["event"]
        if kind == "rollout":
            self.header = e
        elif kind == "node":
            self.nodes[e["node"]] = Node(e["node"], e["parent"], e["kind"], e["depth"], e["debug_depth"])
            if e["parent"] is not None:
                self.nodes[e["parent"]].children.append(e["node"])
        elif kind == "proposal":
            self.nodes[e["node"]].hypothesis = e["hypothesis"]
        elif kind == "edit":
            node = self.nodes[e["node"]]
            if e["applied"]:
                node.script, node.sha = e["script"], e["sha"]
            else:
                node.edit_errors.append(e["error"])
                if e["final"]:
                    node.buggy, node.reason = True, f"edit rejected: {e['error']}"
        elif kind == "integrity":
            node = self.nodes[e["node"]]
            node.integrity = e["problems"]
            if e["problems"]:
                node.buggy, node.reason = True, "integrity: " + "; ".join(e["problems"])
        elif kind == "evaluation":
            node = self.nodes[e["node"]]
            node.evaluation = {k: v for k, v in e.items() if k not in ("event", "node", "t")}
            if e["status"] != "ok" or e["time_to_target_s"] is None:
                flags = f" ({', '.join(e['flags'])})" if e.get("flags") else ""
                node.buggy, node.reason = True, f"{e['status']}: {e['reason']}{flags}"
        elif kind == "done":
            self.best = e["best"]

    @classmethod
    def from_events(cls, events: list[dict]) -> "Tree":
        tree = cls()
        for e in events:
            tree.apply(e)
        return tree

    def base_script(self, node: Node) -> str:
        """The script a node's edit is applied to: its nearest ancestor's that has one."""
        parent = self.nodes[node.parent]
        while parent.script is None:
            parent = self.nodes[parent.parent]
        return parent.script

    def stats(self) -> dict:
        """Figures of the finished rollout: nodes besides the root, how many ran, buggy fraction."""
        nodes = [n for n in self.nodes.values() if n.kind != "root"]
        ran = {n.sha for n in nodes if n.evaluation is not None}
        best = self.nodes.get(self.best) if self.best is not None else None
        return {"nodes": len(nodes), "candidates_evaluated": len(ran),
                "buggy": sum(n.buggy for n in nodes), "buggy_fraction": sum(n.buggy for n in nodes) / len(nodes) if nodes else 0.0,
                "best_node": self.best, "best_time_s": best.time_s if best else None,
                "best_is_root": best is not None and best.kind == "root",
                "root_time_s": self.nodes[0].time_s if 0 in self.nodes else None}
