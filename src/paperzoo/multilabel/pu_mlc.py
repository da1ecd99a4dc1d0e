"""Training pieces of PU-MLC (Yuan, Zhang & Huang, ICME 2024, "Positive Label Is All You Need for
Multi-Label Classification", arXiv:2306.16016; official code ``TAKELAMAG/PU-MLC``) around its loss
:class:`paperzoo.losses.PUMultiLabelLoss`:

* label utilities for the positive-only protocol: :func:`drop_negatives` (the paper's "positive
  label is all you need": labelled negatives become unknown), :func:`partial_label_mask` (the
  MLC-PL setting of the official code: each label entry kept with probability ``keep_prob``) and
  :func:`hide_positives` (observed positives only, a fraction of the true positives hidden:
  missing objects, i.e. noisy negatives);
* :class:`PUMixupRegularizer`: VPU's MixUp consistency regulariser (the official ``mixup``
  function, ``mix_alpha = 0.3``), which needs a second forward pass of the model; it plugs into
  :func:`paperzoo.engine.fit` through ``compute_loss`` (see :func:`pu_mlc_compute_loss`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from paperzoo._validation import Interval, validate_params
from paperzoo.losses.pu_mlc import PUMultiLabelLoss

__all__ = ["PUMixupRegularizer", "drop_negatives", "hide_positives", "partial_label_mask", "pu_mlc_compute_loss"]

_PARAMS = {
    "keep_prob": [Interval(float, 0, 1, closed="both")],
    "rate": [Interval(float, 0, 1, closed="both")],
    "mix_alpha": [Interval(float, 0, math.inf, closed="neither")],
    "eps": [Interval(float, 0, 1, closed="left")],
}


def _check_ternary(target: torch.Tensor, name: str = "target") -> None:
    if not isinstance(target, torch.Tensor) or target.dim() != 2:
        raise ValueError(f"{name} must be a (B, C) torch.Tensor, got {getattr(target, 'shape', type(target))}")
    if not bool(((target == 1) | (target == 0) | (target == -1)).all()):
        raise ValueError(f"{name} must hold only 1 (positive), 0 (unknown) or -1 (negative)")


def drop_negatives(target: torch.Tensor) -> torch.Tensor:
    """Targets in {1, 0, -1} (positive, unknown, labelled negative) to the multi-hot observed
    positives (int64 {0, 1}) that :class:`~paperzoo.losses.PUMultiLabelLoss` takes: the paper
    discards every negative label, so -1 and 0 both become 0."""
    _check_ternary(target)
    return (target == 1).long()


def partial_label_mask(target: torch.Tensor, keep_prob: float, seed: int) -> torch.Tensor:
    """The MLC-PL setting of the official code: each entry of the full labels ``target`` (B, C)
    in {0, 1} is kept with probability ``keep_prob`` (a seeded mask), otherwise unknown. Returns
    int64 {1, 0, -1}: kept positives 1, kept negatives -1, unknown 0."""
    _check_ternary(target)
    validate_params(_PARAMS, {"keep_prob": float(keep_prob)}, owner="partial_label_mask")
    g = torch.Generator().manual_seed(int(seed))
    keep = torch.rand(target.shape, generator=g) < keep_prob
    full = torch.where(target.cpu() == 1, 1, -1)
    return torch.where(keep, full, 0).long().to(target.device)


def hide_positives(target: np.ndarray | torch.Tensor, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The positive-only protocol with missing positives: of the true multi-hot labels
    ``target`` (N, C), keep each positive with probability ``1 - rate`` and set it to 0
    (unknown) otherwise; every other entry is 0 (unknown) too. Returns int64 (N, C) observed
    positives."""
    t = np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target)
    if t.ndim != 2 or not np.isin(t, (0, 1)).all():
        raise ValueError("target must be a (N, C) multi-hot array of 0s and 1s")
    validate_params(_PARAMS, {"rate": float(rate)}, owner="hide_positives")
    hidden = rng.random(t.shape) < rate
    return np.where((t == 1) & ~hidden, 1, 0).astype(np.int64)


class PUMixupRegularizer(nn.Module):
    """VPU's MixUp consistency regulariser as PU-MLC uses it (official ``mixup``, ``mix_alpha``
    0.3).

    With ``h = B // 2`` (B >= 2; a batch of one uses its single row for both halves):

    1. ``x1`` = the first ``h`` inputs, ``x2`` = the last ``h``;
    2. soft targets ``mu = 1`` for observed positives, else ``sigmoid(logits)`` (no temperature;
       NOT detached in the official code: ``detach_targets=False``);
    3. a random permutation ``pi`` of ``x1`` and one ``lam ~ Beta(mix_alpha, mix_alpha)``;
    4. ``x_mix = lam x1[pi] + (1 - lam) x2``, ``mu_mix = lam mu1[pi] + (1 - lam) mu2``;
    5. ``L_reg = sum_c mean_i (log(mu_mix + eps) - log(sigmoid(model(x_mix)) + eps))**2``.

    ``forward(model, inputs, targets, logits, lam=None)``; ``lam`` forces the mixing weight
    (tests). Draws ``pi`` and ``lam`` from torch's global generator (seed it for repeatability).
    """

    def __init__(self, mix_alpha: float = 0.3, detach_targets: bool = False, eps: float = 1e-10) -> None:
        super().__init__()
        validate_params(_PARAMS, {"mix_alpha": float(mix_alpha), "eps": float(eps)}, owner="PUMixupRegularizer")
        if not isinstance(detach_targets, bool):
            raise TypeError(f"PUMixupRegularizer: detach_targets must be a bool, got {detach_targets!r}")
        self.mix_alpha, self.detach_targets, self.eps = float(mix_alpha), detach_targets, float(eps)

    def forward(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        logits: torch.Tensor,
        lam: float | None = None,
    ) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or inputs.shape[0] == 0:
            raise ValueError("inputs must be a non-empty batch (B, ...)")
        if logits.dim() != 2 or logits.shape[0] != inputs.shape[0] or targets.shape != logits.shape:
            raise ValueError(
                f"logits and targets must be (B, C) with B = {inputs.shape[0]} rows, "
                f"got {tuple(logits.shape)} and {tuple(targets.shape)}"
            )
        b = inputs.shape[0]
        h = max(b // 2, 1)
        second = slice(b - h, b) if b >= 2 else slice(0, 1)  # the official x2 starts at ceil(B / 2)
        mu = torch.where(targets == 1, torch.ones_like(logits), torch.sigmoid(logits))
        if self.detach_targets:
            mu = mu.detach()
        if lam is None:
            lam_t = torch.distributions.Beta(self.mix_alpha, self.mix_alpha).sample()
            lam = float(lam_t)
        perm = torch.randperm(h, device=inputs.device)
        x_mix = lam * inputs[:h][perm] + (1.0 - lam) * inputs[second]
        mu_mix = lam * mu[:h][perm] + (1.0 - lam) * mu[second]
        z_mix = model(x_mix)
        log_eps = math.log(self.eps) if self.eps > 0 else -math.inf
        log_mu = (mu_mix + self.eps).log()
        log_p = torch.logaddexp(nn.functional.logsigmoid(z_mix), torch.full_like(z_mix, log_eps))
        return (log_mu - log_p).pow(2).sum(1).mean()

    def extra_repr(self) -> str:
        return f"mix_alpha={self.mix_alpha}, detach_targets={self.detach_targets}, eps={self.eps}"


def pu_mlc_compute_loss(
    loss: PUMultiLabelLoss, regularizer: PUMixupRegularizer | None = None
) -> Callable[[nn.Module, Any], torch.Tensor]:
    """A ``compute_loss(model, batch)`` for :func:`paperzoo.engine.fit`: the PU-MLC loss of a
    batch ``(inputs, observed positives)`` plus, if given, the MixUp regulariser (weight 1, as
    the official training script)."""

    def compute(model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch[0], batch[1]
        logits = model(x)
        total = loss(logits, y)
        if regularizer is not None:
            total = total + regularizer(model, x, y, logits)
        return total

    return compute
