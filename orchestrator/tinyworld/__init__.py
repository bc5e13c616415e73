"""The tiny world: the `arith` task with a policy and a PRM trained here on CPU in minutes.

    world = ensure_built("default")      # TinyWorld(root, policy_dir, prm_dir, meta)
    report("default")                    # the measured report dict (see evaluate.py)

The policy is a plain HF `LlamaForCausalLM` checkpoint using `PROMPT_FORMAT` (raw text, no
chat template); the PRM is one too, a stronger one, read as a generative verifier by
`TinyPRM.score` (see prm_model.py).
"""
from orchestrator.tinyworld.build import PROFILES, TinyWorld, build, build_dir, cache_root, ensure_built, report
from orchestrator.tinyworld.evaluate import format_report
from orchestrator.tinyworld.policy import PROMPT_FORMAT
from orchestrator.tinyworld.prm_model import TinyPRM

__all__ = ["PROFILES", "PROMPT_FORMAT", "TinyPRM", "TinyWorld", "build", "build_dir", "cache_root", "format_report",
           "ensure_built", "report"]
