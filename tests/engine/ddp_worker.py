"""Run by tests/engine/test_distributed.py under torchrun: two ranks train a metric-learning
model with the project's loop; each writes what it saw."""

import json
import os
import sys

import torch
from pytorch_metric_learning.losses import ContrastiveLoss
from torch.utils.data import TensorDataset

from paperzoo.engine import (
    TrainConfig,
    fit,
    gather_for_metric_loss,
    init_distributed,
    make_loader,
    rank,
    seed_everything,
    world_size,
)
from paperzoo.models import MLP

out = sys.argv[1]
init_distributed()
g = torch.Generator().manual_seed(0)
x = torch.randn(64, 6, generator=g)
y = torch.arange(64) % 4
seed_everything(0)
model = MLP(6, (16,), 8)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
loader = make_loader(TensorDataset(x, y), 8, seed=0)
seen = sum(int(b[0].shape[0]) for b in loader)
hist = fit(
    model, ContrastiveLoss(), loader, opt, TrainConfig(epochs=2, seed=1, progress=False, checkpoint_dir=f"{out}/ckpt")
)
params = torch.cat([p.detach().flatten() for p in model.parameters()])
with open(f"{out}/rank{rank()}.json", "w") as f:
    json.dump(
        {
            "world_size": world_size(),
            "wrapped": type(gather_for_metric_loss(ContrastiveLoss())).__name__,
            "seen": seen,
            "steps": hist.steps,
            "params": params.tolist(),
        },
        f,
    )
torch.distributed.barrier()
torch.distributed.destroy_process_group()
# End without running interpreter teardown: torch 2.13's gloo threads sometimes abort a rank
# there ("terminate called without an active exception", SIGABRT) after all work is done.
sys.stdout.flush()
os._exit(0)
