"""Checkpoints behind model paths: resolving them (the project's own models are built on first
use) and counting their parameters, on the driver."""
from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from orchestrator import tinyworld
from orchestrator.models import BUILTIN_PREFIX, SMOLLM2
from orchestrator.tinyworld.smollm2 import ensure_smollm2


def resolve_policy_path(path: str) -> str:
    """The checkpoint folder for a model path, building the project's own models on first use."""
    if path.startswith(BUILTIN_PREFIX):
        return str(tinyworld.ensure_built(path[len(BUILTIN_PREFIX):]).policy_dir)
    if path == SMOLLM2:
        return str(ensure_smollm2())
    return path


def resolve_prm_path(path: str) -> str:
    if path.startswith(BUILTIN_PREFIX):
        return str(tinyworld.ensure_built(path[len(BUILTIN_PREFIX):]).prm_dir)
    return path


def num_parameters(model_dir: str, non_embedding: bool = False) -> int:
    """Parameters of an HF checkpoint, counted on the meta device (no weights loaded).

    `non_embedding` leaves out the token embeddings (and an untied output head), the N of
    scaling laws.
    """
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


def recipe_tag(path: str) -> str:
    """What a model path stands for in unit keys: the tiny world's recipe folder for
    `tinyworld:<profile>` (a new recipe means new units), else the path itself."""
    if path.startswith(BUILTIN_PREFIX):
        return tinyworld.build_dir(path[len(BUILTIN_PREFIX):]).name
    return path
