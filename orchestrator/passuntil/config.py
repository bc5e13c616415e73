"""The PassUntil sweep's config schema: what `scalerun config passuntil` checks without torch."""
from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.config import ConfigError, RunConfig, check_choice
from orchestrator.datasets import DatasetConfig
from orchestrator.models import ModelConfig
from orchestrator.passuntil.series import SERIES


@dataclass
class PassUntilConfig(RunConfig):
    experiment: str = "passuntil"
    series: str = "default"  # a tiny-world series profile; ignored when `models` is set
    models: list[str] = field(default_factory=list)  # HF checkpoint folders, smallest to largest
    policy: ModelConfig = field(default_factory=ModelConfig)  # backend and placement for every model
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    r: int = 2  # passes to stop at (r >= 2 makes the estimator unbiased)
    cap: int = 1024  # draws at most per instance; then the instance is censored
    first_round: int = 32
    fixed_k: int = 16  # the fixed-K contrast: pass@1 from the first K draws
    # "answer": the final answer is right. "chain": every step equals the reference solution's
    # (arith only): with answers in 1..99 a model that cannot add still guesses right about 1%
    # of the time, a floor that would hide the small models' true pass rates.
    pass_criterion: str = "answer"
    temperature: float = 0.8
    max_tokens: int = 128
    # Every (model, problem) draws from its own random stream. True: each problem's stream is
    # shared by all models (common random numbers, for paired comparisons between models).
    paired_models: bool = False

    def validate(self) -> None:
        super().validate()
        if not self.models:
            check_choice("series", self.series, tuple(SERIES))
        elif len(self.models) < 3:
            raise ConfigError("models", self.models, "need at least 3 models: 2 to fit, 1 to predict")
        for i, path in enumerate(self.models):
            ModelConfig(path=path).validate(f"models[{i}]")
        self.policy.validate("policy")
        self.ray.check_cohorts_cover(self.policy.replicas)
        check_choice("pass_criterion", self.pass_criterion, ("answer", "chain"))
        if self.pass_criterion == "chain" and self.dataset.name != "arith":
            raise ConfigError("pass_criterion", self.pass_criterion,
                              "chain needs reference steps: allowed with dataset.name=arith only")
        if self.r < 1:
            raise ConfigError("r", self.r, "must be >= 1 (>= 2 for an unbiased estimate)")
        if self.cap < self.r:
            raise ConfigError("cap", self.cap, f"must be >= r ({self.r})")
        for key in ("first_round", "fixed_k", "max_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(key, getattr(self, key), "must be a positive int")
        self.dataset.validate("dataset")
