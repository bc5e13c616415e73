"""The test-time-compute sweep's config: policy, PRM, dataset, prompt, search budgets."""
from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.config import ConfigError, RunConfig, check_choice, check_positive_ints
from orchestrator.models import ModelConfig

METHODS = ("majority", "best_of_n", "weighted_best_of_n", "beam", "dvts", "lookahead")
TREE_METHODS = ("beam", "dvts", "lookahead")  # need the beam width to divide the budget
AGGREGATIONS = ("last", "min", "prod", "mean")


@dataclass
class DatasetConfig:
    name: str = "arith"  # arith | jsonl
    path: str | None = None  # jsonl: a local file with question/answer(/level) fields
    split: str = "test"
    num_problems: int = 100
    question_key: str = "question"
    answer_key: str = "answer"
    level_key: str = "level"


@dataclass
class PromptConfig:
    template: str = ""  # empty: the policy's own format (the tiny world's, or the chat template)
    use_chat: bool = False
    system_prompt: str = ""
    step_delimiter: str = "\n\n"


@dataclass
class SweepConfig:
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    budgets: list[int] = field(default_factory=lambda: [4, 16, 64])
    beam_width: int = 4
    lookahead: int = 1
    max_iterations: int = 40
    temperature: float = 0.8
    top_p: float = 1.0
    max_step_tokens: int = 64
    max_solution_tokens: int = 512
    aggregation: str = "last"
    filter_duplicates: bool = False
    resamples: int = 32  # nested subsamples for majority / best-of-N at smaller budgets


@dataclass
class TTSConfig(RunConfig):
    experiment: str = "tts"
    policy: ModelConfig = field(default_factory=ModelConfig)
    prm: ModelConfig = field(default_factory=lambda: ModelConfig(family="tinyworld"))
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    search: SweepConfig = field(default_factory=SweepConfig)
    oracle_samples: int = 64  # K samples per problem for oracle difficulty bins

    def validate(self) -> None:
        super().validate()
        s = self.search
        if not s.methods:
            raise ConfigError("search.methods", s.methods, "allowed: a non-empty list of " + ", ".join(METHODS))
        for m in s.methods:
            check_choice("search.methods", m, METHODS)
        check_positive_ints("search.budgets", s.budgets)
        check_choice("search.aggregation", s.aggregation, AGGREGATIONS)
        if s.beam_width < 1:
            raise ConfigError("search.beam_width", s.beam_width, "must be a positive int")
        if any(m in TREE_METHODS for m in s.methods):
            for n in s.budgets:
                if n % s.beam_width:
                    raise ConfigError("search.beam_width", s.beam_width,
                                      f"must divide every budget in search.budgets (not {n})")
        if s.lookahead < 0:
            raise ConfigError("search.lookahead", s.lookahead, "must be >= 0")
        if not (0 < s.top_p <= 1):
            raise ConfigError("search.top_p", s.top_p, "must be in (0, 1]")
        if s.temperature < 0:
            raise ConfigError("search.temperature", s.temperature, "must be >= 0")
        if s.resamples < 1:
            raise ConfigError("search.resamples", s.resamples, "must be >= 1")
        check_choice("dataset.name", self.dataset.name, ("arith", "jsonl"))
        if self.dataset.name == "jsonl":
            from orchestrator.config import check_path_exists
            check_path_exists("dataset.path", self.dataset.path)
        if self.dataset.num_problems < 1:
            raise ConfigError("dataset.num_problems", self.dataset.num_problems, "must be a positive int")
        if self.oracle_samples < 1:
            raise ConfigError("oracle_samples", self.oracle_samples, "must be a positive int")
        self.policy.validate("policy")
        self.prm.validate("prm")
        from actors.prm_families import FAMILIES
        if self.prm.family:
            check_choice("prm.family", self.prm.family, tuple(FAMILIES))
