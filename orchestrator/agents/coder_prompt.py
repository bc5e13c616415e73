"""What an LLM coder is asked and how its answer is read, for every LLM coder (an OpenAI-compatible
endpoint, scalerun's own policy actors). Pure: no client, no model.

The answer is read as `Hypothesis: ...` on its first line and the edit below it (SEARCH/REPLACE
blocks or one fenced whole file, see edits.py); an empty answer is a Proposal with `error`.
"""
from __future__ import annotations

from orchestrator.edits import FORMAT
from orchestrator.protocols import Proposal, ProposeRequest

SYSTEM = ("You are a research engineer speeding up a neural network training script. Answer with one line "
          "`Hypothesis: <what you change and why it should reach the target sooner>`, then the edit, as "
          f"{FORMAT}.")


def prompt(request: ProposeRequest) -> str:
    parts = [request.task]
    if request.hint:
        parts.append(f"Hint:\n{request.hint}")
    if request.history:
        parts.append("History of this branch:\n" + "\n".join(request.history))
    parts.append(f"The current script:\n```python\n{request.script}```")
    return "\n\n".join(parts)


def messages(request: ProposeRequest) -> tuple[tuple[str, str], ...]:
    """The chat a coder model gets: ((role, content), ...)."""
    return ("system", SYSTEM), ("user", prompt(request))


def parse_answer(text: str) -> tuple[str, str]:
    """(hypothesis, edit) from an answer."""
    first, _, rest = text.strip().partition("\n")
    if first.lower().startswith("hypothesis:"):
        return first.split(":", 1)[1].strip(), rest
    return "", text


def proposal(text, compute_seconds: float, source: str) -> Proposal:
    """The Proposal an answer makes; `source` names the coder in the error of an empty one."""
    if not isinstance(text, str) or not text.strip():
        return Proposal(edit="", error=f"{source}: empty answer", compute_seconds=compute_seconds)
    hypothesis, edit = parse_answer(text)
    return Proposal(edit=edit, hypothesis=hypothesis, compute_seconds=compute_seconds)
