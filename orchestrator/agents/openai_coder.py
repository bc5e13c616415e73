"""A coder over any OpenAI-compatible chat endpoint (the `openai` package): one chat completion per
request, with a timeout and retries on every call. The endpoint, key and model come from the
environment (OPENAI_BASE_URL, OPENAI_API_KEY, SCALERUN_CODER_MODEL), never from a logged config,
or from a server the experiment started (actors/openai_server.py).

The prompt and the reading of the answer are coder_prompt.py's. A call that times out, fails or
returns garbage gives a Proposal with `error` set: the node is buggy with that reason and the
rollout goes on.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

import openai

from orchestrator.agents.coder_prompt import messages, proposal
from orchestrator.protocols import Proposal, ProposeRequest


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
                messages=[{"role": role, "content": content} for role, content in messages(request)])
            text = response.choices[0].message.content
        except openai.APITimeoutError:
            return self._failed(f"timed out after {self.timeout_s} s, {self.retries + 1} attempts", start)
        except openai.APIError as e:
            return self._failed(f"{type(e).__name__}: {str(e)[:300]}", start)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:  # a body that is no chat completion
            return self._failed(f"garbage answer ({type(e).__name__}: {str(e)[:200]})", start)
        return proposal(text, time.monotonic() - start, "coder endpoint")

    def _failed(self, why: str, start: float) -> Proposal:
        return Proposal(edit="", error=f"coder endpoint: {why}", compute_seconds=time.monotonic() - start)
