"""The one training loop every reproduction uses.

Seeded, with a progress bar, no early stopping, periodic atomic checkpoints with exact resume
(``weights_only=True`` loading), and multi-process data parallel when started by ``torchrun``
(the model is wrapped in ``DistributedDataParallel``, metric losses gather embeddings across
ranks, and loaders built by :func:`make_loader` shard the data).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from paperzoo.engine.checkpoint import load_checkpoint, save_checkpoint
from paperzoo.engine.distributed import (
    gather_for_metric_loss,
    init_distributed,
    is_main_process,
    world_size,
)
from paperzoo.engine.progress import progress
from paperzoo.engine.seed import seed_everything

ComputeLoss = Callable[[torch.nn.Module, Any], torch.Tensor]

CHECKPOINT_NAME = "last.pt"


@dataclass
class TrainConfig:
    """What :func:`fit` does: ``epochs`` passes over the loader, stopping early only at
    ``max_steps`` optimiser steps if given; a checkpoint every ``checkpoint_every`` steps
    (0: at each epoch end) when ``checkpoint_dir`` is set, resumed from when ``resume``."""

    epochs: int = 1
    max_steps: int | None = None
    seed: int = 0
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 0
    resume: bool = True
    progress: bool = True
    desc: str = "train"
    grad_clip_norm: float | None = None
    device: str | torch.device = "cpu"


@dataclass
class TrainHistory:
    """Per-step training losses (this rank's) and where training stopped."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    epochs_completed: int = 0
    resumed_from_step: int | None = None


class EpochSeededSampler(Sampler[int]):
    """A random permutation per epoch, drawn from ``seed + epoch``: reproducible and
    resumable (the loop calls :meth:`set_epoch`)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(
    dataset: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Sampler[int] | None = None,
) -> DataLoader[Any]:
    """A ``DataLoader`` the loop can resume exactly: per-epoch seeded shuffling, and a
    ``DistributedSampler`` shard per rank under ``torchrun``. A custom ``sampler`` (e.g.
    pytorch-metric-learning's ``MPerClassSampler``) is used as given."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if sampler is None:
        init_distributed()
        if world_size() > 1:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        elif shuffle:
            sampler = EpochSeededSampler(len(dataset), seed)  # type: ignore[arg-type]
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=drop_last)


def _default_compute_loss(loss_fn: torch.nn.Module) -> ComputeLoss:
    def compute(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch[0], batch[1]
        return loss_fn(model(x), y)

    return compute


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def fit(
    model: torch.nn.Module,
    loss_fn: torch.nn.Module | None,
    loader: DataLoader[Any],
    optimizer: torch.optim.Optimizer,
    config: TrainConfig | None = None,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    compute_loss: ComputeLoss | None = None,
) -> TrainHistory:
    """Train ``model`` and return its :class:`TrainHistory`.

    ``compute_loss(model, batch)`` defaults to ``loss_fn(model(x), y)`` for ``batch = (x, y)``;
    pass it for anything else (several views, auxiliary terms). ``scheduler.step()`` runs
    once per optimiser step. The caller seeds model initialisation; the loop re-seeds with
    ``config.seed`` before training (and restores the RNG state on resume).
    """
    cfg = config or TrainConfig()
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {cfg.max_steps}")
    if compute_loss is None:
        if loss_fn is None:
            raise ValueError("give loss_fn or compute_loss")
    device = torch.device(cfg.device)
    model.to(device)
    distributed = init_distributed()
    if loss_fn is not None:
        loss_fn = gather_for_metric_loss(loss_fn)
        if compute_loss is None:
            compute_loss = _default_compute_loss(loss_fn)
    assert compute_loss is not None
    train_model: torch.nn.Module = model
    if distributed and not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        train_model = torch.nn.parallel.DistributedDataParallel(model)

    seed_everything(cfg.seed)
    history = TrainHistory()
    start_epoch, skip = 0, 0
    pending_rng: torch.Tensor | None = None
    ckpt_path = Path(cfg.checkpoint_dir) / CHECKPOINT_NAME if cfg.checkpoint_dir else None
    if ckpt_path is not None and cfg.resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        # restored just before the next step: building a DataLoader iterator draws from it
        pending_rng = state["torch_rng"]
        start_epoch, skip = int(state["epoch"]), int(state["step_in_epoch"])
        history.steps = int(state["step"])
        history.losses = [float(v) for v in state["losses"]]
        history.epochs_completed = start_epoch
        history.resumed_from_step = history.steps

    n_batches = len(loader) if isinstance(loader, Sized) else None
    total = None
    if n_batches is not None:
        total = cfg.epochs * n_batches
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        total = max(total - history.steps, 0)

    def save(epoch: int, step_in_epoch: int) -> None:
        if ckpt_path is None or not is_main_process():
            return
        state: dict[str, Any] = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "step": history.steps,
            "losses": list(history.losses),
        }
        if scheduler is not None:
            state["scheduler"] = scheduler.state_dict()
        save_checkpoint(ckpt_path, state)

    def batches() -> Iterator[tuple[int, int, Any]]:
        for epoch in range(start_epoch, cfg.epochs):
            for holder in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
                if hasattr(holder, "set_epoch"):
                    holder.set_epoch(epoch)  # type: ignore[union-attr]
            for i, batch in enumerate(loader):
                if epoch == start_epoch and i < skip:
                    continue
                yield epoch, i, batch
            history.epochs_completed = epoch + 1

    train_model.train()
    done = cfg.max_steps is not None and history.steps >= cfg.max_steps
    if not done:
        for epoch, i, batch in progress(batches(), desc=cfg.desc, total=total, enabled=cfg.progress):
            if pending_rng is not None:
                torch.set_rng_state(pending_rng)
                pending_rng = None
            batch = _to_device(batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss = compute_loss(train_model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at step {history.steps}")
            loss.backward()
            if cfg.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history.steps += 1
            history.losses.append(float(loss.detach()))
            last_in_epoch = n_batches is not None and i == n_batches - 1
            if last_in_epoch and cfg.checkpoint_every == 0:
                save(epoch + 1, 0)
            elif cfg.checkpoint_every and history.steps % cfg.checkpoint_every == 0:
                save(epoch + 1, 0) if last_in_epoch else save(epoch, i + 1)
            if cfg.max_steps is not None and history.steps >= cfg.max_steps:
                if not last_in_epoch:
                    save(epoch, i + 1)
                break
    model.eval()
    return history
