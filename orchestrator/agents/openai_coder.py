"""A coder over any OpenAI-compatible chat endpoint (the `openai` package): one chat completion per
request, with a timeout and retries on every call. The endpoint, key and model come from the
environment (OPENAI_BASE_URL, OPENAI_API_KEY, SCALERUN_CODER_MODEL), never from a logged config.

The answer is read as `Hypothesis: ...` on its first line and the edit below it (SEARCH/REPLACE
blocks or one fenced whole file, see edits.py). A call that times out, fails or returns garbage
gives a Proposal with `error` set: the node is buggy with that reason and the rollout goes on.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

import openai

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


def parse_answer(text: str) -> tuple[str, str]:
    """(hypothesis, edit) from an answer."""
    first, _, rest = text.strip().partition("\n")
    if first.lower().startswith("hypothesis:"):
        return first.split(":", 1)[1].strip(), rest
    return "", text


class OpenAICoder:
    def __init__(self, base_url: str, api_key: str, model: str, timeout_s: float = 120.0, retries: int = 2,
                 max_tokens: int = 4096, temperature: float = 0.7):
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=retries)
        self.model, self.max_tokens, self.temperature = model, max_tokens, temperature
        self.timeout_s, self.retries = timeout_s, retries

    @classmethod
    def from_environment(cls, timeout_s: float, retries: int, max_tokens: int, temperature: float) -> "OpenAICoder":
        return cls(os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"], os.environ["SCALERUN_CODER_MODEL"],
                   timeout_s, retries, max_tokens, temperature)

    def propose(self, requests: Sequence[ProposeRequest]) -> list[Proposal]:
        return [self._answer(r) for r in requests]

    def _answer(self, request: ProposeRequest) -> Proposal:
        start = time.monotonic()
        try:
            response = self.client.chat.completions.create(
                model=self.model, max_tokens=self.max_tokens, temperature=self.temperature, seed=request.seed,
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt(request)}])
            text = response.choices[0].message.content
        except openai.APITimeoutError:
            return self._failed(f"timed out after {self.timeout_s} s, {self.retries + 1} attempts", start)
        except openai.APIError as e:
            return self._failed(f"{type(e).__name__}: {str(e)[:300]}", start)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:  # a body that is no chat completion
            return self._failed(f"garbage answer ({type(e).__name__}: {str(e)[:200]})", start)
        if not isinstance(text, str) or not text.strip():
            return self._failed("empty answer", start)
        hypothesis, edit = parse_answer(text)
        return Proposal(edit=edit, hypothesis=hypothesis, compute_seconds=time.monotonic() - start)

    def _failed(self, why: str, start: float) -> Proposal:
        return Proposal(edit="", error=f"coder endpoint: {why}", compute_seconds=time.monotonic() - start)
