"""One research-agent rollout as a pure generator: it yields `Propose` batches (a coder answers)
and `Evaluate` batches (trainers answer), writes every step to its journal, and returns its tree.

Step 0 evaluates the root (record i's script, as the baseline) and drafts `scaffold.drafts`
children of it. Each later step either debugs (with `debug_probability`, when a buggy leaf
within `max_bug_depth` debug steps exists: one child of a random such leaf) or improves the
best node that `selection` allows (`branching` children; see scaffolds.py), until `iterations`
steps or `max_nodes` nodes. The random choices come from one `random.Random(seed)`, and every
coder request carries a seed derived from (seed, node, attempt): the same seed and the same coder
answers give the same tree and the same journal.

A node's edit is applied to the script it branches from; one that does not apply is sent back
to the coder with the reason, up to `reflections` times, then the node is buggy and never run.
An applied script is checked against the record's integrity rules (`check`) before anything
runs: a violation is a buggy node, never run. The others are evaluated, once per distinct
script (by its sha256, within the rollout and, on resume, from the journal); a node is buggy if
its run did not reach the target cleanly (crashed, missed, flagged, ...).
"""
from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass
from typing import Callable

from orchestrator.edits import EditError, apply_edit
from orchestrator.agents.journal import Journal, Node, Tree
from orchestrator.agents.protocol import Evaluate, EvaluateRequest
from orchestrator.agents.scaffolds import Scaffold
from orchestrator.protocols import Propose, Proposal, ProposeRequest

STEPS = {
    "draft": "Step: draft. Propose one change to the record's script that makes it reach the target sooner.",
    "improve": "Step: improve. The last node of the history is the one to improve on; propose one more change.",
    "debug": "Step: debug. The last node of the history is buggy (see its error); fix it.",
}
LOG_TAIL_CHARS = 2000  # of a buggy parent's log, in a debug request's history


@dataclass
class Task:
    """What a rollout works on: record i's script, towards record i+1's time."""

    record: str
    next_record: str
    script: str
    text: str  # the task statement the coder gets (it names the record: `Record: <name>`)
    hint: str = ""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def request_seed(seed: int, node: int, attempt: int) -> int:
    return random.Random(f"{seed}/{node}/{attempt}").randrange(2**31)


def best_of(nodes) -> Node | None:
    """The good node with the shortest time to target (the earlier on ties)."""
    good = [n for n in nodes if n.good]
    return min(good, key=lambda n: (n.time_s, n.id)) if good else None


def rollout(task: Task, scaffold: Scaffold, journal: Journal, seed: int, check: Callable[[str], list[str]],
            reflections: int = 5, cutoff: float = 0.0, eval_seed: int = 0):
    """The rollout's generator; returns its Tree. `check(script)` lists integrity problems;
    `cutoff` > 0 stops a candidate once its train time passes cutoff x the root's time to target."""
    tree = Tree()

    def log(event: dict) -> None:
        tree.apply(journal.write(event))

    def evaluate(nodes: list[Node]):
        ready = [n for n in nodes if not n.buggy and n.script is not None]
        results = {n.sha: n.evaluation for n in tree.nodes.values() if n.evaluation is not None}
        for n in ready:
            if n.sha not in results and (recorded := journal.recorded("evaluation", sha=n.sha)) is not None:
                results[n.sha] = {k: v for k, v in recorded.items() if k not in ("event", "node", "t")}
        missing = list(dict.fromkeys(n.sha for n in ready if n.sha not in results))
        if missing:
            scripts = {n.sha: n.script for n in ready}
            root = tree.nodes[0]
            beat = cutoff * root.time_s * 1000 if cutoff and root.good else None
            requests = [EvaluateRequest(scripts[s], s, task.record, eval_seed, beat) for s in missing]
            answers = yield Evaluate(requests)
            results.update({s: {"sha": s, **dataclasses.asdict(a)} for s, a in zip(missing, answers)})
        for n in ready:
            log({"event": "evaluation", "node": n.id, **results[n.sha]})

    def request(node: Node, step: str) -> ProposeRequest:
        return ProposeRequest(task=f"{task.text}\n\n{STEPS[step]}", script=tree.base_script(node), hint=task.hint,
                              history=history(tree, node), seed=request_seed(seed, node.id, len(node.edit_errors)))

    def propose(nodes: list[Node], step: str):
        todo = list(nodes)
        while todo:
            answers = {}
            for n in todo:
                if (e := journal.recorded("proposal", node=n.id, attempt=len(n.edit_errors))) is not None:
                    answers[n.id] = Proposal(edit=e["edit"], hypothesis=e["hypothesis"], error=e["error"])
            ask = [n for n in todo if n.id not in answers]
            if ask:
                got = yield Propose([request(n, step) for n in ask])
                answers.update({n.id: p for n, p in zip(ask, got)})
            retry = []
            for n in todo:
                p, attempt = answers[n.id], len(n.edit_errors)
                log({"event": "proposal", "node": n.id, "attempt": attempt, "edit": p.edit,
                     "hypothesis": p.hypothesis, "error": p.error, "compute_seconds": p.compute_seconds})
                if p.error:
                    log({"event": "edit", "node": n.id, "attempt": attempt, "applied": False,
                         "error": f"coder: {p.error}", "final": True})
                    continue
                try:
                    script, mode = apply_edit(tree.base_script(n), p.edit)
                except EditError as e:
                    final = attempt >= reflections
                    log({"event": "edit", "node": n.id, "attempt": attempt, "applied": False, "error": str(e),
                         "final": final})
                    if not final:
                        retry.append(n)
                    continue
                log({"event": "edit", "node": n.id, "attempt": attempt, "applied": True, "mode": mode,
                     "script": script, "sha": sha256(script)})
            todo = retry

    def add_node(parent: Node, kind: str) -> Node:
        node_id = len(tree.nodes)
        log({"event": "node", "node": node_id, "parent": parent.id, "kind": kind, "depth": parent.depth + 1,
             "debug_depth": parent.debug_depth + 1 if kind == "debug" else 0})
        return tree.nodes[node_id]

    log({"event": "rollout", "record": task.record, "next_record": task.next_record,
         "scaffold": dataclasses.asdict(scaffold), "seed": seed, "root_sha": sha256(task.script),
         "hint_sha": sha256(task.hint), "reflections": reflections, "cutoff": cutoff})
    log({"event": "node", "node": 0, "parent": None, "kind": "root", "depth": 0, "debug_depth": 0})
    log({"event": "edit", "node": 0, "attempt": 0, "applied": True, "mode": "record", "script": task.script,
         "sha": sha256(task.script)})
    log({"event": "integrity", "node": 0, "problems": check(task.script)})
    yield from evaluate([tree.nodes[0]])

    rng = random.Random(seed)
    root = tree.nodes[0]
    branched_from, last_children = root, []
    for iteration in range(scaffold.iterations):
        room = scaffold.max_nodes - (len(tree.nodes) - 1)
        debuggable = [n for n in tree.nodes.values()
                      if n.buggy and not n.children and n.kind != "root" and n.debug_depth < scaffold.max_bug_depth]
        if iteration == 0:
            step, target, count = "draft", root, scaffold.drafts
        elif debuggable and scaffold.debug_probability > 0 and rng.random() < scaffold.debug_probability:
            step, target, count = "debug", rng.choice(debuggable), 1
        else:
            window = tree.nodes.values() if scaffold.selection == "global" else [root, branched_from, *last_children]
            step, target, count = "improve", best_of(window) or root, scaffold.branching
        count = min(count, room)
        if count <= 0:
            break
        log({"event": "select", "iteration": iteration, "action": step, "target": target.id, "count": count})
        children = [add_node(target, step) for _ in range(count)]
        yield from propose(children, step)
        for n in children:
            if n.script is not None and not n.buggy:
                log({"event": "integrity", "node": n.id, "problems": check(n.script)})
        yield from evaluate(children)
        branched_from, last_children = target, children
    best = best_of(tree.nodes.values())
    log({"event": "done", "best": best.id if best else None})
    return tree


def history(tree: Tree, node: Node) -> tuple[str, ...]:
    """What the branch learned: each node from the root to the one this node branches from (its
    hypothesis and result), a debug step's log tail of the buggy node, and this node's edits that
    did not apply."""
    chain, current = [], tree.nodes[node.parent]
    while current is not None:
        chain.append(current)
        current = tree.nodes[current.parent] if current.parent is not None else None
    lines = []
    for n in reversed(chain):
        what = "the record's script" if n.kind == "root" else (n.hypothesis or "(no hypothesis)")
        result = f"reached the target in {n.time_s:.2f} s" if n.good else f"buggy: {n.reason}"
        lines.append(f"node {n.id} ({n.kind}): {what} -> {result}")
    parent = tree.nodes[node.parent]
    if node.kind == "debug" and parent.evaluation and parent.evaluation.get("log_tail"):
        lines.append("log tail of node {}:\n{}".format(parent.id, parent.evaluation["log_tail"][-LOG_TAIL_CHARS:]))
    lines += [f"your edit for this step did not apply: {e}" for e in node.edit_errors]
    return tuple(lines)
