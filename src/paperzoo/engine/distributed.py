"""Multi-process data parallel helpers (``torchrun``; gloo on CPU, nccl on CUDA).

The training loop calls these, so a script that uses :func:`paperzoo.engine.fit` runs
unchanged under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment variables.

    Returns ``True`` when running with more than one process. Idempotent; a no-op (returning
    ``False``) when ``WORLD_SIZE`` is unset or 1.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    """True on rank 0 (and when not distributed)."""
    return rank() == 0


def gather_for_metric_loss(loss_fn: torch.nn.Module) -> torch.nn.Module:
    """Make a pytorch-metric-learning loss see the embeddings of every rank.

    Thin wrapper over ``pytorch_metric_learning.utils.distributed.DistributedLossWrapper``:
    returned unchanged when not distributed, or when ``loss_fn`` is not a PML metric loss.
    """
    if world_size() <= 1:
        return loss_fn
    from pytorch_metric_learning.losses import BaseMetricLossFunction
    from pytorch_metric_learning.utils.distributed import DistributedLossWrapper

    if isinstance(loss_fn, BaseMetricLossFunction):
        return DistributedLossWrapper(loss_fn)
    return loss_fn
