"""Boundary checks shared by the public entry points (losses, metrics, estimators).

Each raises ``ValueError`` (``TypeError`` for wrong dtypes) naming the argument and the
expected shape; code behind the boundary trusts its inputs.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_finite(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_labels(labels: torch.Tensor, n: int, name: str = "labels", num_classes: int | None = None) -> None:
    """``labels`` must be an integer tensor of shape (n,), in [0, num_classes) if given."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if num_classes is not None and n > 0:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}), got values in [{lo}, {hi}]")


def check_logits_target(logits: torch.Tensor, target: torch.Tensor, *, min_classes: int = 2) -> None:
    """Classification-loss boundary: logits (B, C) float, finite, B >= 1; target (B,) in [0, C)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch.Tensor of shape (B, C)")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
    b, c = logits.shape
    if b == 0:
        raise ValueError("empty batch: logits has 0 rows")
    if c < min_classes:
        raise ValueError(f"logits must have at least {min_classes} classes (columns), got {c}")
    check_finite(logits, "logits")
    check_labels(target, b, "target", c)


def check_embeddings_labels(embeddings: torch.Tensor, labels: torch.Tensor | None) -> None:
    """Metric-loss boundary: embeddings (B, D) float, finite, B >= 1; labels (B,) integer."""
    if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
        raise TypeError("embeddings must be a floating-point torch.Tensor of shape (B, D)")
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must have shape (B, D), got {tuple(embeddings.shape)}")
    if embeddings.shape[0] == 0:
        raise ValueError("empty batch: embeddings has 0 rows")
    check_finite(embeddings, "embeddings")
    if labels is not None:
        check_labels(labels, embeddings.shape[0])
