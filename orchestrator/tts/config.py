"""The test-time-compute sweep's config: policy, PRM, dataset, prompt, the strategies' `search:`
block, and which methods run at which budgets."""
from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.config import ConfigError, RunConfig, check_choice, check_positive_ints
from orchestrator.datasets import DatasetConfig
from orchestrator.models import PRM_FAMILY_NAMES, ModelConfig
from orchestrator.search import STRATEGIES, TREE_METHODS, SearchConfig

METHODS = tuple(STRATEGIES)


@dataclass
class PromptConfig:
    template: str = ""  # empty: the policy's own format (the tiny world's, or the chat template)
    use_chat: bool = False
    system_prompt: str = ""
    step_delimiter: str = "\n\n"


@dataclass
class TTSConfig(RunConfig):
    experiment: str = "tts"
    policy: ModelConfig = field(default_factory=ModelConfig)
    prm: ModelConfig = field(default_factory=lambda: ModelConfig(family="tinyworld"))
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    budgets: list[int] = field(default_factory=lambda: [4, 16, 64])  # N: generations per problem
    resamples: int = 32  # nested subsamples for majority / best-of-N at budgets below the largest
    oracle_samples: int = 64  # K samples per problem for oracle difficulty bins

    def validate(self) -> None:
        super().validate()
        if not self.methods:
            raise ConfigError("methods", self.methods, "allowed: a non-empty list of " + ", ".join(METHODS))
        for m in self.methods:
            check_choice("methods", m, METHODS)
        check_positive_ints("budgets", self.budgets)
        for name, value, allowed in self.search.problems():
            raise ConfigError(f"search.{name}", value, allowed)
        if any(m in TREE_METHODS for m in self.methods):
            for n in self.budgets:
                if n % self.search.beam_width:
                    raise ConfigError("search.beam_width", self.search.beam_width,
                                      f"must divide every budget in budgets (not {n})")
        if "lookahead" in self.methods and self.search.lookahead < 1:
            raise ConfigError("search.lookahead", self.search.lookahead, "lookahead search needs >= 1")
        if self.resamples < 1:
            raise ConfigError("resamples", self.resamples, "must be >= 1")
        if self.oracle_samples < 1:
            raise ConfigError("oracle_samples", self.oracle_samples, "must be a positive int")
        self.dataset.validate("dataset")
        self.policy.validate("policy")
        self.ray.check_cohorts_cover(self.policy.replicas)
        self.prm.validate("prm")
        if self.prm.family:
            check_choice("prm.family", self.prm.family, PRM_FAMILY_NAMES)

