"""Batched vs one-problem-at-a-time beam search N=16 on this machine's accelerator, no Ray: the
body of benchmarks/gpu_check.sh (read there how to run it on a lent GPU machine).

Both worlds run through the one driver over in-process backends (`tts_throughput.inprocess`):
1. the tiny world: its `default` build when one is cached, else the `test` profile, trained
   here from scratch in about 30 s (`default` takes about 5 minutes to train, too long for a
   check that must end within 8);
2. a 120M-parameter Llama over the tiny world's tokenizer, SmolLM2-135M's widths and depth
   (RANDOM_LLAMA below), with random weights, as the policy and as the PRM. Random weights
   write random text, so every step is forced to exactly `max_step_tokens` tokens and left
   open (the model has no end-of-sequence token and its requests no stop string): every beam
   runs `max_iterations` steps in both modes, which then do the same work token for token
   and differ only in how it is batched, which is all a throughput figure measures.
On a CPU the sizes shrink (RANDOM_ON_CPU) so the check ends within minutes; it says so.
The last line is one JSON object with both worlds' figures.
"""
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: E402

from benchmarks.tts_throughput import auto_device, inprocess, tts_config  # noqa: E402
from orchestrator.datasets import load_items  # noqa: E402
from orchestrator.tinyworld import build, build_dir  # noqa: E402
from orchestrator.tinyworld.policy import llama_config  # noqa: E402
from orchestrator.tinyworld.prm_model import Readout, save_prm  # noqa: E402

PROBLEMS, N = 64, 16
RANDOM_LLAMA = dict(hidden_size=576, layers=30, intermediate_size=1536, head_dim=64)  # SmolLM2-135M's shape
RANDOM_STEPS = dict(max_step_tokens=32, max_iterations=4)  # forced: every beam, both modes
RANDOM_ON_CPU = dict(problems=4, max_step_tokens=8, max_iterations=2)  # one CPU thread: about 100 tokens/s


class ForcedSteps:
    """A policy backend whose every sample is one open step of exactly max_tokens tokens: no stop
    string is sent, and "length" becomes "stop", so the search neither ends a beam nor cuts one short."""

    def __init__(self, backend):
        self.backend = backend

    def generate(self, requests):
        results = self.backend.generate([dataclasses.replace(r, stop=()) for r in requests])
        for result in results:
            result.samples = [dataclasses.replace(s, finish_reason="stop") for s in result.samples]
        return results


def random_llama(tokenizer_dir: Path, out: Path) -> int:
    """Saves a randomly initialised Llama (RANDOM_LLAMA) without an end-of-sequence token, as a
    tiny-world PRM folder (identity read-out) that also loads as a policy; its parameter count."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(tokenizer, RANDOM_LLAMA["hidden_size"], RANDOM_LLAMA["layers"],
                                          RANDOM_LLAMA["intermediate_size"], RANDOM_LLAMA["head_dim"]))
    model.generation_config.eos_token_id = []  # random weights would end samples at random lengths
    save_prm(model, tokenizer, Readout(scale=1.0, bias=0.0), out)
    return sum(p.numel() for p in model.parameters())


def tiny_world_profile() -> str:
    return "default" if (build_dir("default") / "meta.json").exists() else "test"


def main():
    device = auto_device()
    on_cpu = device == "cpu"
    print(f"gpu_check: device {device}" + (f" ({torch.cuda.get_device_name()})" if not on_cpu else
                                          " (no cuda: the 120M model's sizes shrink, see below)"))
    started = time.monotonic()
    profile = tiny_world_profile()
    world = build(profile)
    build_s = time.monotonic() - started
    print(f"tiny world '{profile}' ready in {build_s:.0f} s"
          + (" (no cached default build: the test profile, trained here)" if profile == "test" else " (cached)"))

    cfg = tts_config(profile, PROBLEMS, N, "transformers", [])
    loaded = load_items(cfg.dataset)
    print(f"\n[1] tiny world '{profile}': beam N={N}, {PROBLEMS} problems, float32 on {device}")
    tiny = inprocess(cfg, loaded[:PROBLEMS], loaded[PROBLEMS:], device, "float32")

    sizes = {"problems": PROBLEMS, **RANDOM_STEPS} if not on_cpu else RANDOM_ON_CPU
    dtype = "float32" if on_cpu else "bfloat16"
    cfg = tts_config(profile, sizes["problems"], N, "transformers",
                     [f"search.max_step_tokens={sizes['max_step_tokens']}",
                      f"search.max_iterations={sizes['max_iterations']}"])
    loaded = load_items(cfg.dataset)
    with tempfile.TemporaryDirectory(prefix="scalerun-gpu-check-") as folder:
        parameters = random_llama(world.policy_dir, Path(folder))
        print(f"\n[2] random {parameters / 1e6:.0f}M-parameter Llama (policy and PRM): beam N={N}, "
              f"{sizes['problems']} problems, {sizes['max_iterations']} forced steps of {sizes['max_step_tokens']} "
              f"tokens per beam, {dtype} on {device}"
              + (f" (shrunk on CPU from {PROBLEMS} problems, {RANDOM_STEPS})" if on_cpu else ""))
        large = inprocess(cfg, loaded[:sizes["problems"]], loaded[sizes["problems"]:], device, dtype,
                          policy_dir=folder, prm_dir=folder, wrap_policy=ForcedSteps)
    wall = time.monotonic() - started
    keep = ("batched_wall_s", "sequential_wall_s", "batched_vs_sequential_speedup", "compute_efficiency",
            "requests_per_call_batched", "requests_per_call_sequential", "generated_tokens_batched",
            "generated_tokens_sequential", "same_answer_fraction")
    print(f"\n{'world':34s} {'batched s':>10s} {'sequential s':>13s} {'speedup':>8s} {'tokens b/s':>11s}")
    for name, f in ((f"tiny world '{profile}'", tiny), (f"random {parameters / 1e6:.0f}M Llama", large)):
        print(f"{name:34s} {f['batched_wall_s']:10.2f} {f['sequential_wall_s']:13.2f} "
              f"{f['batched_vs_sequential_speedup']:8.2f} {f['generated_tokens_batched']:>5d}/{f['generated_tokens_sequential']}")
    print(json.dumps({"benchmark": "gpu_check", "device": device,
                      "device_name": torch.cuda.get_device_name() if not on_cpu else "cpu",
                      "tiny_world_profile": profile, "tiny_world_build_s": round(build_s, 1), "n": N,
                      "tiny_world": {"problems": PROBLEMS, **{k: tiny[k] for k in keep}},
                      "random_llama": {"parameters": parameters, "dtype": dtype, **sizes, "shrunk_for_cpu": on_cpu,
                                       **{k: large[k] for k in keep}},
                      "wall_s": round(wall, 1)}))


if __name__ == "__main__":
    main()
