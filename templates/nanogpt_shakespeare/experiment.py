"""A small byte-level GPT on Shakespeare's plays: the AI-Scientist template's experiment.

Usage: `python experiment.py --out_dir=run_i`. Trains one model per seed, evaluates validation
loss (nats per byte) on fixed held-out batches, and writes
  run_i/final_info.json  {"shakespeare_bytes": {"means": {...}, "stderrs": {...}}}
  run_i/curves.json      per seed: [step, train_loss, val_loss] at each evaluation
Data: train.bin and val.bin (raw bytes) in the folder named by $SHAKESPEARE_DATA_DIR (never a
path relative to the run folder). $MAX_ITERS, if set, caps the training steps (CI smoke runs).
Hyperparameters are plain `name = value` lines below, for the coder to edit.
"""
import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads stall a shared machine
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

# ---- hyperparameters ----
seeds = [0]  # one model per seed; stderrs are over seeds (0 with one seed)
batch_size = 32
block_size = 64
n_layer = 2
n_head = 4
n_embd = 64
dropout = 0.0
learning_rate = 1e-3
weight_decay = 0.1
warmup_iters = 20
max_iters = 800
eval_every = 100
eval_batches = 8
max_iters = min(max_iters, int(os.environ.get("MAX_ITERS") or max_iters))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))
        return x + self.drop(self.mlp(self.ln2(x)))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(256, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block() for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        for module in self.modules():  # small initial weights: logits start near uniform
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.tok.weight.T  # tied embeddings
        return F.cross_entropy(logits.view(-1, 256), targets.reshape(-1))


def batch(data, gen):
    ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=gen)
    x = torch.stack([data[i:i + block_size] for i in ix])
    y = torch.stack([data[i + 1:i + 1 + block_size] for i in ix])
    return x.long(), y.long()


def lr_at(step):
    if step < warmup_iters:
        return learning_rate * (step + 1) / warmup_iters
    progress = (step - warmup_iters) / max(1, max_iters - warmup_iters)
    return learning_rate * 0.5 * (1 + math.cos(math.pi * progress))


def train(seed, train_data, val_batches):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    curve, started = [], time.time()

    def val_loss():
        model.eval()
        with torch.no_grad():
            loss = sum(model(x, y).item() for x, y in val_batches) / len(val_batches)
        model.train()
        return loss

    for step in range(max_iters):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(*batch(train_data, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % eval_every == 0 or step + 1 == max_iters:
            curve.append([step + 1, loss.item(), val_loss()])
            print(f"seed {seed} step {step + 1}/{max_iters} train {curve[-1][1]:.4f} val {curve[-1][2]:.4f}", flush=True)
    return {"final_val_loss": curve[-1][2], "final_train_loss": curve[-1][1], "train_time_s": time.time() - started,
            "params": sum(p.numel() for p in model.parameters())}, curve


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out_dir", required=True)
    out = Path(parser.parse_args().out_dir)
    data_dir = Path(os.environ["SHAKESPEARE_DATA_DIR"])
    train_data = torch.frombuffer(bytearray((data_dir / "train.bin").read_bytes()), dtype=torch.uint8)
    val_data = torch.frombuffer(bytearray((data_dir / "val.bin").read_bytes()), dtype=torch.uint8)
    val_gen = torch.Generator().manual_seed(1234)  # the same validation batches for every run
    val_batches = [batch(val_data, val_gen) for _ in range(eval_batches)]
    finals, curves = [], {}
    for seed in seeds:
        final, curves[seed] = train(seed, train_data, val_batches)
        finals.append(final)
    means = {k: sum(f[k] for f in finals) / len(finals) for k in finals[0]}
    stderrs = {k: (math.sqrt(sum((f[k] - means[k]) ** 2 for f in finals) / (len(finals) - 1) / len(finals))
                   if len(finals) > 1 else 0.0) for k in finals[0]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "curves.json").write_text(json.dumps(curves))
    (out / "final_info.json").write_text(json.dumps({"shakespeare_bytes": {"means": means, "stderrs": stderrs}}, indent=2))


if __name__ == "__main__":
    main()
