"""The LLM-free coders (the CPU default) behind the `Coder` protocol.

- `ReplayCoder`, the oracle: for record i (named by the task's `Record: <name>` line) it proposes
  the known change to record i+1, as SEARCH/REPLACE blocks from a line diff of the two records
  (the whole file of record i+1 when the current script is no longer record i's).
- `MutateCoder`: seeded changes to module-level numeric settings (`lr = 1e-3`, `a, b = 4, 96`),
  one or two per proposal, each scaled by a factor drawn from `FACTORS`; never a protected name
  (the records' pinned settings and the configured ones).
- `ScriptedCoder`: answers from a function of the request (tests), with `HOSTILE` proposals.
All are stateless: the request says everything, so a resumed rollout gets the same answers.
"""
from __future__ import annotations

import ast
import difflib
import random
import re
from typing import Callable, Sequence

from orchestrator.edits import EditError, apply_edit, search_replace, whole_file
from orchestrator.protocols import Proposal, ProposeRequest

RECORD_LINE = re.compile(r"^Record: (\S+)$", re.M)
FACTORS = (0.5, 0.7, 1.5, 2.0)


def record_of(task: str) -> str | None:
    found = RECORD_LINE.search(task)
    return found.group(1) if found else None


class ReplayCoder:
    def __init__(self, ladder: dict[str, tuple[str, str]]):
        self.ladder = ladder  # record i's name -> (its script, record i+1's script)

    def propose(self, requests: Sequence[ProposeRequest]) -> list[Proposal]:
        return [self._answer(r) for r in requests]

    def _answer(self, request: ProposeRequest) -> Proposal:
        name = record_of(request.task)
        if name not in self.ladder:
            return Proposal(edit="", error=f"replay knows no next record for {name}")
        base, target = self.ladder[name]
        if request.script == target:
            return Proposal(edit="", error="the script already is the next record's: nothing left to replay")
        if request.script != base:
            return Proposal(edit=whole_file(target), hypothesis="replace the script by the next record's")
        return Proposal(edit=diff_blocks(base, target), hypothesis="apply the next record's change")


def diff_blocks(old: str, new: str) -> str:
    """SEARCH/REPLACE blocks turning `old` into `new`: one per hunk of a line diff (3 lines of
    context), or the whole new file where a hunk's SEARCH text would match elsewhere first."""
    a, b = old.split("\n"), new.split("\n")
    blocks = []
    for hunk in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(3):
        (_, i1, _, j1, _), (_, _, i2, _, j2) = hunk[0], hunk[-1]
        blocks.append(search_replace("\n".join(a[i1:i2]), "\n".join(b[j1:j2])))
    edit = "\n".join(blocks)
    try:
        if apply_edit(old, edit)[0] == new:
            return edit
    except EditError:
        pass
    return whole_file(new)


def numeric_settings(script: str) -> list[tuple[str, int, int, int, object]]:
    """(name, line, start column, end column, value) of each number assigned at module level
    to a plain name, tuple assignments included."""
    found = []
    for stmt in ast.parse(script).body:
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            continue
        target, value = stmt.targets[0], stmt.value
        pairs = [(target, value)]
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            pairs = list(zip(target.elts, value.elts))
        for name, v in pairs:
            if (isinstance(name, ast.Name) and isinstance(v, ast.Constant) and type(v.value) in (int, float) and v.value != 0
                    and v.lineno == v.end_lineno):
                found.append((name.id, v.lineno, v.col_offset, v.end_col_offset, v.value))
    return found


class MutateCoder:
    def __init__(self, protected: Sequence[str] = (), max_changes: int = 2):
        self.protected = set(protected)
        self.max_changes = max_changes

    def propose(self, requests: Sequence[ProposeRequest]) -> list[Proposal]:
        return [self._answer(r) for r in requests]

    def _answer(self, request: ProposeRequest) -> Proposal:
        try:
            settings = [s for s in numeric_settings(request.script) if s[0] not in self.protected]
        except SyntaxError as e:
            return Proposal(edit="", error=f"the script does not parse: {e}")
        if not settings:
            return Proposal(edit="", error="no numeric setting that may change")
        rng = random.Random(request.seed)
        chosen = rng.sample(settings, min(len(settings), rng.randint(1, self.max_changes)))
        lines = request.script.split("\n")
        changed: dict[int, str] = {}
        notes = []
        for name, lineno, start, end, value in sorted(chosen, key=lambda s: (s[1], -s[2])):
            factor = rng.choice(FACTORS)
            new = max(1, round(value * factor)) if isinstance(value, int) else float(f"{value * factor:.3g}")
            line = changed.get(lineno, lines[lineno - 1])
            changed[lineno] = line[:start] + repr(new) + line[end:]
            notes.append(f"{name} {value!r} -> {new!r}")
        edit = "\n".join(search_replace(lines[n - 1], text) for n, text in sorted(changed.items()))
        return Proposal(edit=edit, hypothesis="change " + ", ".join(notes))


class ScriptedCoder:
    """Answers `answer(request)`; for tests and for exercising the rollout's failure paths."""

    def __init__(self, answer: Callable[[ProposeRequest], Proposal]):
        self.answer = answer

    def propose(self, requests: Sequence[ProposeRequest]) -> list[Proposal]:
        return [self.answer(r) for r in requests]


def hostile(kind: str, script: str) -> Proposal:
    """A hostile or broken proposal for `script`: malformed (neither edit format), nonapplying (a
    SEARCH text not in the file), pinned (changes a pinned validation setting: an integrity
    violation), fake_target (prints a target line of its own before training), crash."""
    if kind == "malformed":
        return Proposal(edit="make it faster please", hypothesis="no edit at all")
    if kind == "nonapplying":
        return Proposal(edit=search_replace("this line is not in the script", "x = 1"), hypothesis="a stale edit")
    if kind == "pinned":
        return Proposal(edit=search_replace("val_tokens = 8192", "val_tokens = 512"), hypothesis="validate less")
    if kind == "fake_target":
        line = next(line for line in script.split("\n") if line.startswith("torch.set_num_threads"))
        fake = 'print("step:5/5 val_loss:0.0100 train_time:1ms step_avg:0.20ms", flush=True)'
        return Proposal(edit=search_replace(line, f"{line}\n{fake}"), hypothesis="claim the target at once")
    if kind == "crash":
        line = next(line for line in script.split("\n") if line.startswith("torch.set_num_threads"))
        return Proposal(edit=search_replace(line, f"{line}\nraise SystemExit(3)"), hypothesis="exit at once")
    raise ValueError(f"unknown hostile proposal {kind!r}")


HOSTILE = ("malformed", "nonapplying", "pinned", "fake_target", "crash")
