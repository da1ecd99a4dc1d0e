"""Evaluation of targeted transfer attacks against held-out (black-box) models, for robustness
evaluation: targeted success rates, perturbation norms, an embedding-level match rate, and a
cheap input-transformation defence to measure an attack against.

Used by the FOA-Attack reproduction (Jia et al., 2025, arXiv 2505.21494), where held-out
classifiers stand in for the paper's black-box multimodal models and "the victim predicts the
target image's class" stands in for its GPT-4o-judged attack success rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, validate_params

__all__ = [
    "InputSmoothingDefence",
    "embedding_match_rate",
    "perturbation_norms",
    "predict",
    "targeted_transfer_success",
]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Arg-max predictions ``(B,)`` of ``model`` on ``x`` in eval mode (mode restored)."""
    was = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]).argmax(-1) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was)


def targeted_transfer_success(
    victims: Sequence[nn.Module], x_adv: torch.Tensor, targets: torch.Tensor | Sequence[torch.Tensor]
) -> torch.Tensor:
    """Fraction of images each victim classifies as the target, ``(V,)``.

    ``targets``: target labels ``(B,)`` shared by all victims, or one ``(B,)`` per victim
    (``(V, B)``), e.g. each victim's own prediction on the target image (as in the reproduction).
    """
    victims = list(victims)
    if not victims:
        raise ValueError("targeted_transfer_success: victims must be a non-empty list of models")
    if isinstance(targets, torch.Tensor):
        tgt = targets
    else:
        tgt = torch.stack([torch.as_tensor(t) for t in targets])
    if tgt.dim() == 1:
        tgt = tgt.expand(len(victims), -1)
    if tgt.shape != (len(victims), x_adv.shape[0]):
        raise ValueError(
            f"targeted_transfer_success: targets must have shape (B,) or (V, B) = ({len(victims)}, {x_adv.shape[0]}),"
            f" got {tuple(tgt.shape)}"
        )
    hits = torch.stack([predict(v, x_adv) == t.to(x_adv.device) for v, t in zip(victims, tgt)])
    return hits.float().mean(1)


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor) -> dict[str, float]:
    """Mean per-image L-inf, L2 and L1 norms of ``x_adv - x`` (pixels in [0, 1]), and the
    mean L2 per pixel (``l2 / sqrt(number of pixels)``, comparable across image sizes)."""
    if x_adv.shape != x.shape:
        raise ValueError(f"perturbation_norms: x_adv and x must have the same shape, got {x_adv.shape}, {x.shape}")
    d = (x_adv - x).detach().flatten(1)
    l2 = d.norm(dim=1)
    return {
        "linf": float(d.abs().amax(1).mean()),
        "l2": float(l2.mean()),
        "l1": float(d.abs().sum(1).mean()),
        "rms": float((l2 / math.sqrt(d.shape[1])).mean()),
    }


@torch.no_grad()
def embedding_match_rate(encoder: nn.Module, x_adv: torch.Tensor, x_t: torch.Tensor, x: torch.Tensor) -> float:
    """Fraction of images whose adversarial embedding is closer (cosine) to the target image's
    embedding than to the source image's. ``encoder(x)`` returns ``(B, d)`` (a tuple's first
    item is used: the global feature of a surrogate)."""

    def emb(z: torch.Tensor) -> torch.Tensor:
        out = encoder(z)
        return out[0] if isinstance(out, (tuple, list)) else out.flatten(1)

    was = encoder.training
    encoder.eval()
    try:
        e_adv, e_t, e_x = emb(x_adv), emb(x_t), emb(x)
    finally:
        encoder.train(was)
    return float((F.cosine_similarity(e_adv, e_t) > F.cosine_similarity(e_adv, e_x)).float().mean())


class InputSmoothingDefence(nn.Module):
    """A cheap input-transformation defence placed in front of a victim: a ``kernel_size`` box
    blur (reflect padding) followed by quantisation to ``bits`` bits per pixel (feature squeezing).
    ``InputSmoothingDefence(3, 3)(x)``; wrap a victim as ``nn.Sequential(defence, victim)``."""

    _parameter_constraints: dict[str, list[Constraint]] = {
        "kernel_size": [Interval(int, 1, math.inf, closed="left")],
        "bits": [Interval(int, 1, 16, closed="both")],
    }

    def __init__(self, kernel_size: int = 3, bits: int = 3) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints, {"kernel_size": kernel_size, "bits": bits}, owner="InputSmoothingDefence"
        )
        if kernel_size % 2 == 0:
            raise ValueError(f"InputSmoothingDefence: kernel_size must be odd, got {kernel_size}")
        self.kernel_size, self.bits = kernel_size, bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        if k > 1:
            x = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="reflect"), k, stride=1)
        levels = 2**self.bits - 1
        return torch.round(x.clamp(0, 1) * levels) / levels
