"""The tiny-world policy: a small Llama trained from scratch on reference solutions.

Raw prompt format (no chat template): "<question>\\n\\n", then the steps, each followed by
"\\n\\n"; the model ends the last step, which holds \\boxed{answer}, with <eos>. This is
`PROMPT_FORMAT`, the protocol's default raw format. Learning arithmetic is a phase
transition, so training evaluates sampled pass@1 on the val split as it goes and keeps the
best checkpoint rather than the last one.
"""
from __future__ import annotations

import copy
import random
import time
from typing import Callable, Sequence

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from orchestrator.grading import grade
from orchestrator.protocols import PromptFormat
from orchestrator.tasks import arith
from orchestrator.tasks.arith import Problem

PROMPT_FORMAT = PromptFormat(template="{question}\n\n", step_delimiter="\n\n")
MAX_NEW_TOKENS = 100  # a level-5 solution is about 80 characters


def llama_config(tokenizer: PreTrainedTokenizerFast, hidden_size: int, layers: int,
                 intermediate_size: int, head_dim: int = 32) -> LlamaConfig:
    heads = hidden_size // head_dim
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=heads, head_dim=head_dim,
                       intermediate_size=intermediate_size, max_position_embeddings=512,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)


def prompt_text(question: str) -> str:
    return PROMPT_FORMAT.template.format(question=question)


def training_batch(tokenizer: PreTrainedTokenizerFast, problems: Sequence[Problem]):
    """Right-padded (input_ids, labels) with the loss on the solution and <eos> only."""
    rows = []
    for problem in problems:
        prompt = tokenizer(prompt_text(problem.question)).input_ids
        solution = tokenizer(problem.reference_solution, add_special_tokens=False).input_ids
        rows.append((prompt + solution + [tokenizer.eos_token_id], len(prompt)))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    for i, (ids, prompt_len) in enumerate(rows):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, prompt_len:len(ids)] = torch.tensor(ids[prompt_len:])
    return input_ids, labels


@torch.no_grad()
def sample(model, tokenizer, prompts: Sequence[str], temperature: float = 0.8, seed: int = 0,
           batch_size: int = 256, max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """One sampled continuation per prompt (text after the prompt, special tokens dropped)."""
    model.eval()
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start:start + batch_size]), return_tensors="pt", padding=True)
        torch.manual_seed(seed + start)
        generated = model.generate(**batch, do_sample=temperature > 0, temperature=temperature or None,
                                   top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                                   pad_token_id=tokenizer.pad_token_id)
        new_tokens = generated[:, batch.input_ids.shape[1]:]
        out += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return out


def pass1(model, tokenizer, problems: Sequence[Problem], samples_per_problem: int, seed: int) -> float:
    prompts = [prompt_text(p.question) for p in problems for _ in range(samples_per_problem)]
    texts = sample(model, tokenizer, prompts, seed=seed)
    golds = [p.answer for p in problems for _ in range(samples_per_problem)]
    return sum(grade(t, g) for t, g in zip(texts, golds)) / len(texts)


def train_policy(tokenizer: PreTrainedTokenizerFast, recipe: dict, log: Callable[[str], None],
                 advance: Callable[[int], None]) -> tuple[LlamaForCausalLM, LlamaForCausalLM | None, list[dict]]:
    """Trains for up to recipe["policy_steps"] AdamW steps; returns (policy, backbone, history).

    The policy is the checkpoint with the best val pass@1 at or below recipe["policy_max_pass1"]
    (a policy with room for search). Without recipe["prm_backbone_pass1"], training stops once
    two evaluations in a row are above that band and the backbone is None. With it, training
    goes on until val pass@1 reaches that level (or the steps run out), and the model at that
    point is the PRM's model (see `prm_model`): a stronger model checking a weaker one's steps, as a
    real PRM is larger than its policy.
    """
    seed = recipe["seed"]
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(tokenizer, recipe["policy_hidden"], recipe["policy_layers"],
                                          recipe["policy_ffn"], head_dim=recipe.get("policy_head_dim", 32)))
    val = arith.problems("val", recipe["val_per_level"], seed=seed)
    steps, lr = recipe["policy_steps"], recipe["policy_lr"]
    backbone_pass1 = recipe.get("prm_backbone_pass1")
    warmup = min(100, steps // 5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / steps)).item())))
    rng = random.Random(seed)
    best, best_pass1, history, started, above_band = None, -1.0, [], time.time(), 0
    for step in range(1, steps + 1):
        model.train()
        level = rng.choice(arith.LEVELS)  # one level per batch: little padding
        batch = arith.sample_problems("train", level, recipe["policy_batch"], rng)
        input_ids, labels = training_batch(tokenizer, batch)
        loss = model(input_ids=input_ids, attention_mask=(input_ids != tokenizer.pad_token_id).long(),
                     labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        advance(1)
        if step % recipe["policy_eval_every"] == 0 or step == steps:
            val_pass1 = pass1(model, tokenizer, val, recipe["val_samples"], seed=seed)
            history.append({"step": step, "loss": round(loss.item(), 4), "val_pass1": val_pass1,
                            "seconds": round(time.time() - started, 1)})
            log(f"policy step {step}/{steps} loss {loss.item():.3f} val pass@1 {val_pass1:.3f}")
            if best_pass1 < val_pass1 <= recipe["policy_max_pass1"]:
                best, best_pass1 = copy.deepcopy(model), val_pass1
            above_band = above_band + 1 if val_pass1 > recipe["policy_max_pass1"] else 0
            if backbone_pass1 is None and above_band == 2:  # past the band for good
                log(f"policy stops at step {step}: val pass@1 above {recipe['policy_max_pass1']} twice")
                break
            if backbone_pass1 is not None and val_pass1 >= backbone_pass1 and best is not None:
                log(f"policy stops at step {step}: val pass@1 {val_pass1:.3f} makes the PRM backbone")
                break
    model.eval()
    return (best if best is not None else model), (model if backbone_pass1 is not None else None), history
