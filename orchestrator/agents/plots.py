"""A rollout's tree as a picture: nodes placed by depth (rows) and leaf order (columns), coloured
by status, labelled with their time to target (or why they are buggy)."""
from __future__ import annotations

from pathlib import Path

from orchestrator.agents.journal import Node, Tree
from orchestrator.plots import plt, save

COLOURS = {"root": "#9e9e9e", "best": "#f5b800", "good": "#4caf50", "failed": "#e53935",
           "rejected": "#fb8c00", "integrity": "#8e24aa"}


def status(tree: Tree, node: Node) -> str:
    if node.id == tree.best:
        return "best"
    if node.kind == "root":
        return "root"
    if not node.buggy:
        return "good"
    if node.reason.startswith("integrity"):
        return "integrity"
    return "rejected" if node.evaluation is None else "failed"


def label(node: Node) -> str:
    if node.good:
        return f"{node.time_s:.1f}s"
    if node.evaluation is not None:
        return node.evaluation["reason"][:12]
    return "integrity" if node.reason.startswith("integrity") else "rejected"


def tree_picture(path: Path, tree: Tree, title: str) -> Path:
    x: dict[int, float] = {}
    leaves = [0]

    def place(node_id: int) -> float:
        children = tree.nodes[node_id].children
        if not children:
            x[node_id] = leaves[0]
            leaves[0] += 1
        else:
            x[node_id] = sum(place(c) for c in children) / len(children)
        return x[node_id]

    place(0)
    depth = max(n.depth for n in tree.nodes.values())
    fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * leaves[0]), 1.2 + 1.1 * (depth + 1)))
    for node in tree.nodes.values():
        if node.parent is not None:
            ax.plot([x[node.parent], x[node.id]], [-tree.nodes[node.parent].depth, -node.depth], color="#bbbbbb",
                    lw=1, zorder=1)
    for node in tree.nodes.values():
        ax.scatter(x[node.id], -node.depth, s=260, color=COLOURS[status(tree, node)], zorder=2,
                   edgecolors="k" if node.kind == "debug" else "none")
        ax.annotate(str(node.id), (x[node.id], -node.depth), ha="center", va="center", fontsize=6, zorder=3)
        ax.annotate(label(node), (x[node.id], -node.depth - 0.32), ha="center", va="top", fontsize=6)
    for name, colour in COLOURS.items():
        ax.scatter([], [], color=colour, label=name)
    ax.legend(fontsize=6, loc="upper right", ncol=3)
    ax.set_title(title, fontsize=8)
    ax.set_xlim(-0.7, leaves[0] - 0.3)
    ax.set_ylim(-depth - 0.9, 0.7)
    ax.axis("off")
    return save(fig, path)
