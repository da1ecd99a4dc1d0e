"""The GCD trainer of SimGCD (Wen, Zhao & Qi, ICCV 2023) on :func:`paperzoo.engine.fit`.

One training step (the official ``train.py``): draw a batch from the weighted labelled /
unlabelled sampler, make two random views of every image, run the model (a backbone followed by
:class:`paperzoo.discovery.heads.DINOHead`, returning ``(z, logits)``) on the stacked views,
compute the :class:`~paperzoo.discovery.losses.SimGCDLoss` terms plus any *extra terms*, back-
propagate the total. SGD (lr 0.1, momentum 0.9, weight decay 5e-5 on weights only: no decay on
biases and 1-d parameters), a cosine learning rate from ``lr`` to ``lr * 1e-3`` that changes once
per epoch, and the last epoch's model for inference (``argmax`` of the cosine logits).

The extension point of later methods: an extra term is a module (or callable)
``term(batch: GCDBatch, epoch: int) -> {name: scalar}``; every scalar it returns is added to the
total (the term applies its own weight) and logged under its name. :class:`GCDObjective` holds
the base loss and the extra terms; :class:`GCDStep` is the ``compute_loss`` that ``fit`` drives
(no copy of the loop). The epoch reaches the loss through the sampler, which ``fit`` tells the
epoch (``set_epoch``), so the teacher schedule survives a resumed run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from paperzoo._validation import Interval, validate_params
from paperzoo.discovery.losses import SimGCDLoss
from paperzoo.engine import TrainConfig, TrainHistory, fit, make_loader

__all__ = [
    "GCDBatch",
    "GCDObjective",
    "GCDStep",
    "LabelledUnlabelledSampler",
    "cosine_per_epoch",
    "gcd_targets",
    "param_groups",
    "predict",
    "train_gcd",
]

View = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class GCDBatch:
    """The outputs of one training step, what every loss term reads.

    Attributes:
        views: the model's input (2B, ...): ``[view 1 of all B; view 2 of all B]``.
        z: projections (2B, D).
        logits: cosine logits (2B, K).
        labels: (B,) labels, -1 for unlabelled images (never read for them).
        mask_lab: (B,) bool, the image is labelled.
        model: the model being trained (terms that read its parameters, e.g. the classifier's
            prototypes), or None when the outputs come from elsewhere.
    """

    views: torch.Tensor
    z: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    mask_lab: torch.Tensor
    model: nn.Module | None = None


class ExtraTerm(Protocol):
    def __call__(self, batch: GCDBatch, epoch: int) -> Mapping[str, torch.Tensor]: ...


class GCDObjective(nn.Module):
    """The SimGCD loss plus extra terms: ``forward(batch, epoch) -> {term: scalar, ..., "total"}``.

    Args:
        base: the base objective (default ``SimGCDLoss()``).
        extra_terms: modules ``term(batch, epoch) -> {name: scalar}``; each scalar is added to
            the total. Names must not repeat a base term or another extra term's.
    """

    def __init__(self, base: SimGCDLoss | None = None, extra_terms: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.base = base if base is not None else SimGCDLoss()
        self.extra_terms = nn.ModuleList(extra_terms)

    def forward(self, batch: GCDBatch, epoch: int) -> dict[str, torch.Tensor]:
        terms = self.base(batch.z, batch.logits, batch.labels, batch.mask_lab, epoch)
        total = terms.pop("total")
        for term in self.extra_terms:
            for name, value in term(batch, epoch).items():
                if name in terms or name == "total":
                    raise ValueError(f"extra term {type(term).__name__} returns {name!r}, a name already in use")
                if value.ndim != 0:
                    raise ValueError(
                        f"extra term {type(term).__name__}: {name!r} must be a scalar, got {tuple(value.shape)}"
                    )
                terms[name] = value
                total = total + value
        terms["total"] = total
        return terms


class LabelledUnlabelledSampler(WeightedRandomSampler):
    """SimGCD's sampler: ``WeightedRandomSampler`` with weight 1 for labelled samples and
    ``n_labelled / n_unlabelled`` for unlabelled ones, ``num_samples = N``, with replacement, so a
    batch is about half labelled in expectation. Each epoch draws from ``seed + epoch``
    (:meth:`set_epoch`, called by :func:`paperzoo.engine.fit`), which makes it reproducible and
    resumable; :attr:`epoch` is the epoch being trained.

    Raises:
        ValueError: no labelled or no unlabelled sample.
    """

    def __init__(self, mask_lab: torch.Tensor | np.ndarray, seed: int = 0) -> None:
        mask = torch.as_tensor(np.asarray(mask_lab), dtype=torch.bool)
        if mask.ndim != 1:
            raise ValueError(f"mask_lab must have shape (N,), got {tuple(mask.shape)}")
        n_lab, n_unlab = int(mask.sum()), int((~mask).sum())
        if n_lab == 0 or n_unlab == 0:
            raise ValueError(
                f"the GCD sampler needs labelled and unlabelled samples, got {n_lab} labelled and {n_unlab} unlabelled"
            )
        weights = torch.where(mask, 1.0, n_lab / n_unlab).double()
        super().__init__(weights, num_samples=mask.numel(), replacement=True)
        self.seed = int(seed)
        self.epoch = 0
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)

    def __iter__(self) -> Iterator[int]:
        self.set_epoch(self.epoch)  # iterating twice in one epoch gives the same order
        return super().__iter__()


class GCDStep:
    """The ``compute_loss(model, batch)`` of :func:`paperzoo.engine.fit` for GCD training.

    ``batch = (x, y)`` with ``y = -1`` for unlabelled samples; runs ``model`` on two views of
    ``x`` made by ``views``, and returns ``objective(GCDBatch, epoch)["total"]``. The epoch is
    read from ``epoch_source.epoch`` (the sampler). With ``log_terms=True``, :attr:`history`
    collects every step's terms as floats (one device sync per step).
    """

    def __init__(self, objective: nn.Module, views: View, epoch_source: Any, *, log_terms: bool = False) -> None:
        self.objective, self.views, self.epoch_source = objective, views, epoch_source
        self.log_terms = log_terms
        self.history: list[dict[str, float]] = []

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch[0], batch[1]
        views = torch.cat([self.views(x), self.views(x)])
        z, logits = model(views)
        out = GCDBatch(views=views, z=z, logits=logits, labels=y, mask_lab=y >= 0, model=model)
        terms = self.objective(out, int(self.epoch_source.epoch))
        if self.log_terms:
            self.history.append({k: float(v.detach()) for k, v in terms.items()})
        return terms["total"]


def gcd_targets(y: np.ndarray | torch.Tensor, labelled_idx: np.ndarray) -> torch.Tensor:
    """Training targets (N,) int64: ``y`` at ``labelled_idx``, -1 elsewhere (no label leaks)."""
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    out = torch.full_like(y_t, -1)
    idx = torch.as_tensor(np.asarray(labelled_idx), dtype=torch.int64)
    out[idx] = y_t[idx]
    return out


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The official ``get_params_groups``: weight decay on trainable weights with more than one
    dimension only (no decay on biases and 1-d parameters)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or p.ndim == 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cosine_per_epoch(
    optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, eta_min_ratio: float = 1e-3
) -> torch.optim.lr_scheduler.LambdaLR:
    """``CosineAnnealingLR(T_max=epochs, eta_min=lr * eta_min_ratio)`` stepped once per epoch, as
    a per-step ``LambdaLR`` (``fit`` steps the scheduler after every optimiser step)."""

    def factor(step: int) -> float:
        e = min(step // steps_per_epoch, epochs)
        return eta_min_ratio + (1 - eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * e / epochs))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


_TRAIN_CONSTRAINTS = {
    "epochs": [Interval(int, 1, math.inf, closed="left")],
    "batch_size": [Interval(int, 2, math.inf, closed="left")],
    "lr": [Interval(float, 0.0, math.inf, closed="neither")],
    "momentum": [Interval(float, 0.0, 1.0, closed="left")],
    "weight_decay": [Interval(float, 0.0, math.inf, closed="left")],
}


def gcd_loader(x: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int) -> DataLoader[Any]:
    """Batches of ``(x, targets)`` drawn by :class:`LabelledUnlabelledSampler`, ``drop_last=True``."""
    if x.shape[0] != targets.shape[0]:
        raise ValueError(f"x and targets must have the same number of rows, got {x.shape[0]} and {targets.shape[0]}")
    if x.shape[0] < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the {x.shape[0]} training samples")
    sampler = LabelledUnlabelledSampler(targets >= 0, seed=seed)
    return make_loader(TensorDataset(x, targets), batch_size, sampler=sampler, drop_last=True)


def train_gcd(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    views: View,
    objective: nn.Module | None = None,
    *,
    epochs: int = 200,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-5,
    seed: int = 0,
    progress: bool = False,
    log_terms: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[TrainHistory, GCDStep]:
    """Train ``model`` (``model(views) -> (z, logits)``) the SimGCD way through :func:`paperzoo.engine.fit`.

    Args:
        model: backbone + :class:`~paperzoo.discovery.heads.DINOHead`.
        x: all training inputs (N, ...): the labelled and the unlabelled set.
        targets: (N,) labels of the labelled samples, -1 for unlabelled ones (:func:`gcd_targets`).
        views: one random view of a batch (:mod:`paperzoo.discovery.views`).
        objective: ``objective(GCDBatch, epoch) -> {..., "total"}``, default ``GCDObjective()``.
        epochs, batch_size, lr, momentum, weight_decay: the optimisation (official: 200, 128,
            0.1, 0.9, 5e-5).
        seed: seeds the loop and the sampler (the caller seeds the model's initialisation).
        log_terms: keep each step's terms in the returned step's ``history``.

    Returns:
        ``(history, step)``: ``fit``'s history and the :class:`GCDStep` that was driven.
    """
    validate_params(
        _TRAIN_CONSTRAINTS,
        {"epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum, "weight_decay": weight_decay},
        owner="train_gcd",
    )
    objective = objective if objective is not None else GCDObjective()
    loader = gcd_loader(x, targets, batch_size, seed)
    opt = torch.optim.SGD(param_groups(model, weight_decay), lr=lr, momentum=momentum)
    sched = cosine_per_epoch(opt, epochs, len(loader))
    step = GCDStep(objective, views, loader.sampler, log_terms=log_terms)
    history = fit(
        model,
        None,
        loader,
        opt,
        TrainConfig(epochs=epochs, seed=seed, progress=progress, desc="gcd", device=device),
        scheduler=sched,
        compute_loss=step,
    )
    return history, step


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``argmax_k`` of the cosine logits of ``model(x) -> (z, logits)``, in eval mode, in chunks."""
    model.eval()
    return torch.cat([model(x[i : i + chunk])[1].argmax(dim=1) for i in range(0, x.shape[0], chunk)])
