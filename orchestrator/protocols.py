"""The request/response types and the two protocols every algorithm is written against.

Search strategies and PassUntil sampling yield `Generate` and `Score` batches that a `Policy`
and a `Scorer` answer; research agents yield `Propose` batches that a `Coder` answers. The Ray
actors in `actors/` implement them, and the tests implement them with deterministic fakes.
Nothing here knows about Ray.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, Sequence

FINISH_REASONS = ("stop", "eos", "length")


@dataclass(frozen=True)
class GenerateRequest:
    """One prompt to sample `n` continuations of.

    Exactly one of `prompt` (raw text) or `messages` (chat messages) is set. When the last
    message has role "assistant", the backend continues that turn instead of opening a new
    one: step-by-step search puts the steps so far there.
    `stop` strings end a sample (they are not included in the returned text); the samples
    depend only on `seed`, never on the other requests of the batch.
    """

    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # ((role, content), ...)
    n: int = 1
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("GenerateRequest needs exactly one of prompt or messages")
        if self.n < 1:
            raise ValueError(f"GenerateRequest.n must be >= 1, got {self.n}")


@dataclass
class Sample:
    text: str
    finish_reason: str  # one of FINISH_REASONS
    num_tokens: int


@dataclass
class GenerateResult:
    samples: list[Sample]
    prompt_tokens: int
    generated_tokens: int
    cached_prompt_tokens: int = 0
    compute_seconds: float = 0.0


@dataclass(frozen=True)
class ScoreRequest:
    """A (partial) solution to score: one score per step, the probability it is still on track."""

    question: str
    steps: tuple[str, ...]


@dataclass
class ScoreResult:
    step_scores: list[float]
    tokens: int = 0  # the request's tokens: what a scorer without a cache runs (its nominal cost)
    tokens_computed: int = 0  # tokens the model actually ran (cached prefixes not counted)
    compute_seconds: float = 0.0


@dataclass
class Generate:
    """A strategy's batch of policy requests; answered by a Policy's `generate`."""

    requests: list[GenerateRequest]
    method: ClassVar[str] = "generate"


@dataclass
class Score:
    """A strategy's batch of PRM requests; answered by a Scorer's `score`."""

    requests: list[ScoreRequest]
    method: ClassVar[str] = "score"


@dataclass(frozen=True)
class ProposeRequest:
    """What a coder is asked: change `script` towards `task` (a research agent's edit step).

    `history` holds what the branch learned so far (earlier hypotheses, results, errors such as
    the tail of a crash's stderr); `seed` makes a sampling coder reproducible.
    """

    task: str
    script: str
    hint: str = ""
    history: tuple[str, ...] = ()
    seed: int = 0


@dataclass
class Proposal:
    """A coder's answer: an edit (SEARCH/REPLACE blocks, or a whole file) and why it should help.
    `error` says why no usable answer came (a timeout, garbage); the edit is then empty."""

    edit: str
    hypothesis: str = ""
    error: str | None = None
    compute_seconds: float = 0.0


@dataclass
class Propose:
    """A search's batch of coder requests; answered by a Coder's `propose`."""

    requests: list[ProposeRequest]
    method: ClassVar[str] = "propose"


class Coder(Protocol):
    def propose(self, requests: Sequence[ProposeRequest]) -> list[Proposal]:
        """One proposal per request, in request order."""
        ...


class Policy(Protocol):
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """Runs all requests as one batch; results in request order."""
        ...


class Scorer(Protocol):
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Scores all requests as one batch; results in request order."""
        ...


@dataclass(frozen=True)
class PromptFormat:
    """How a question and the steps so far become a GenerateRequest.

    Raw format: `template.format(question=...)` followed by the steps, each ending in the
    delimiter. Chat format: system + user(question) messages and, once there are steps, an
    assistant message holding them, which the backend continues.
    """

    template: str = "{question}\n\n"
    step_delimiter: str = "\n\n"
    use_chat: bool = False
    system_prompt: str = ""

    def request(self, question: str, steps: Sequence[str], **sampling) -> GenerateRequest:
        prefix = "".join(s + self.step_delimiter for s in steps)
        stop = tuple(sampling.pop("stop", (self.step_delimiter,)))
        if not self.use_chat:
            return GenerateRequest(prompt=self.template.format(question=question) + prefix,
                                   stop=stop, **sampling)
        messages: list[tuple[str, str]] = []
        if self.system_prompt:
            messages.append(("system", self.system_prompt))
        messages.append(("user", question))
        if prefix:
            messages.append(("assistant", prefix))
        return GenerateRequest(messages=tuple(messages), stop=stop, **sampling)


@dataclass
class Usage:
    """Compute spent by one work unit, summed over its calls."""

    policy_prompt_tokens: int = 0
    policy_cached_prompt_tokens: int = 0
    policy_generated_tokens: int = 0
    prm_tokens: int = 0  # nominal: every scored token, whatever a cache saved
    prm_computed_tokens: int = 0  # what the PRM actually ran in this run (depends on its cache)
    policy_compute_seconds: float = 0.0
    prm_compute_seconds: float = 0.0
    policy_samples: int = 0

    def add_generation(self, result: GenerateResult) -> None:
        self.policy_prompt_tokens += result.prompt_tokens
        self.policy_cached_prompt_tokens += result.cached_prompt_tokens
        self.policy_generated_tokens += result.generated_tokens
        self.policy_compute_seconds += result.compute_seconds
        self.policy_samples += len(result.samples)

    def add_score(self, result: ScoreResult) -> None:
        self.prm_tokens += result.tokens
        self.prm_computed_tokens += result.tokens_computed
        self.prm_compute_seconds += result.compute_seconds
