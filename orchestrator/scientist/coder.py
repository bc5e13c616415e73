"""The LLM-free scripted coder: it sweeps one hyperparameter per idea, so the loop does real
work without a model. Configured per idea name as `{param, values}`: asked for an edit, it
rewrites the first `param = ...` line of experiment.py to the next value after the one in the
script (the first value if the script holds none of them), and answers ALL_COMPLETED when the
sweep is done. Asked for an idea, it proposes the first sweep not in the archive (the history's
"Existing idea <name>:" lines), or repeats the last one (for the duplicate filter); asked to
reflect, it is done; asked to fix plot.py, it has no fix (an empty edit). Stateless: the script
and the task say where it is, so a resumed loop gets the same answers.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Sequence

from orchestrator.protocols import Proposal, ProposeRequest
from orchestrator.edits import search_replace
from orchestrator.scientist.protocol import ALL_COMPLETED, HINT_EXPERIMENT, HINT_IDEA, HINT_REFLECT, IDEA_DONE

IDEA_LINE = re.compile(r"^Idea: (\S+)$", re.M)
ARCHIVE_LINE = re.compile(r"^Existing idea (\S+):")


@dataclass
class Sweep:
    param: str  # a module-level `name = value` line of experiment.py
    values: list[str] = field(default_factory=list)  # the values' source text, in order


class ScriptedCoder:
    def __init__(self, sweeps: dict[str, Sweep]):
        self.sweeps = sweeps

    def propose(self, requests: Sequence[ProposeRequest]) -> list[Proposal]:
        return [self._answer(r) for r in requests]

    def _answer(self, request: ProposeRequest) -> Proposal:
        if request.hint == HINT_IDEA:
            return self._idea(request.history)
        if request.hint == HINT_REFLECT:
            return Proposal(edit=IDEA_DONE)
        if request.hint != HINT_EXPERIMENT:
            return Proposal(edit="", hypothesis="the scripted coder has no fix for this")
        found = IDEA_LINE.search(request.task)
        sweep = self.sweeps.get(found.group(1)) if found else None
        if sweep is None:
            return Proposal(edit=ALL_COMPLETED, hypothesis="no sweep is configured for this idea")
        line = re.search(rf"^{re.escape(sweep.param)} = (.*)$", request.script, re.M)
        if line is None:
            return Proposal(edit="", error=f"experiment.py has no `{sweep.param} = ...` line")
        current = line.group(1).split("#")[0].strip()
        at = sweep.values.index(current) + 1 if current in sweep.values else 0
        if at >= len(sweep.values):
            return Proposal(edit=ALL_COMPLETED, hypothesis=f"swept {sweep.param} over {', '.join(sweep.values)}")
        new = f"{sweep.param} = {sweep.values[at]}"
        return Proposal(edit=search_replace(line.group(0), new),
                        hypothesis=f"set {sweep.param} from {current} to {sweep.values[at]}")

    def _idea(self, history: Sequence[str]) -> Proposal:
        if not self.sweeps:
            return Proposal(edit="", error="the scripted coder has no sweeps to propose")
        known = {m.group(1) for line in history if (m := ARCHIVE_LINE.match(line))}
        name = next((n for n in self.sweeps if n not in known), list(self.sweeps)[-1])
        sweep = self.sweeps[name]
        idea = {"name": name, "title": f"Sweeping {sweep.param}",
                "experiment": f"Set {sweep.param} to each of {', '.join(sweep.values)} and compare with the baseline.",
                "interestingness": 3, "feasibility": 10, "novelty": 1}
        return Proposal(edit=json.dumps(idea))
