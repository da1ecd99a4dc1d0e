"""Explanation losses, the entropy penalty and explanation-accuracy metrics of CT / CCT.

Hong, Park & Pavlic, "Concept-Centric Transformers", WACV 2024 (arXiv:2305.15775), reusing the
explanation loss of the Concept Transformer (Rigotti et al., ICLR 2022). These take the heads'
*attention maps* (:class:`paperzoo.models.concept_transformer.ConceptOutput`), not logits, so
they are plain functions and one small module, not :class:`~paperzoo.losses.base.ClassificationLoss`
subclasses:

* :func:`concept_explanation_loss`: ``C * mean_{b,c} (attn[b, c] - t[b, c] / sum_c t[b, c])^2``
  over the samples that have concept annotations (rows with a NaN target are skipped);
* :func:`spatial_concept_explanation_loss`: the same over the patches that carry an annotation
  (``(B, L, C_s)`` maps; NaN rows = unannotated patches), scaled by ``C_s``;
* :func:`concept_attention_entropy`: the sparsity penalty ``mean(-p log(p + eps))`` over *all*
  entries (a mean, not a per-row sum, as in the authors' code);
* :class:`CCTLoss`: ``L = CE + lambda_expl (L_expl,g + L_expl,s) + lambda_sparse L_sparse``,
  each extra term added only when its weight is positive (with both at 0 the total is exactly the
  cross-entropy);
* metrics: :func:`concept_accuracy` and :func:`spatial_concept_accuracy` (the arg-max of the
  attention is an annotated concept); the explanation error is the explanation loss on test data.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, check_finite, check_logits_target, validate_params

__all__ = [
    "CCTLoss",
    "CCTLossOutput",
    "concept_accuracy",
    "concept_attention_entropy",
    "concept_explanation_loss",
    "spatial_concept_accuracy",
    "spatial_concept_explanation_loss",
]


def _check_attn(attn: torch.Tensor, name: str, ndim: int) -> None:
    shape = "(B, C)" if ndim == 2 else "(B, L, C_s)"
    if not isinstance(attn, torch.Tensor) or not attn.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape {shape}")
    if attn.dim() != ndim:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(attn.shape)}")
    if attn.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")
    check_finite(attn, name)


def _check_targets(targets: torch.Tensor, attn: torch.Tensor, name: str = "targets") -> None:
    if not isinstance(targets, torch.Tensor) or targets.is_complex():
        raise TypeError(f"{name} must be a real torch.Tensor of shape {tuple(attn.shape)}")
    if targets.shape != attn.shape:
        raise ValueError(f"{name} must have the shape of the attention {tuple(attn.shape)}, got {tuple(targets.shape)}")
    t = targets.detach()
    if t.numel() == 0:
        return
    if t.is_floating_point():  # one pass: NaN (a missing annotation) -> 0, infinities kept
        t = torch.nan_to_num(t, nan=0.0, posinf=math.inf, neginf=-math.inf)
    lo, hi = torch.aminmax(t)
    if bool(torch.isinf(hi)) or bool(torch.isinf(lo)):
        raise ValueError(f"{name} contains infinite values (use NaN rows for missing annotations)")
    if bool(lo < 0):
        raise ValueError(f"{name} must be non-negative (concept indicators or weights), got a negative entry")


def _squeeze_global(attn: torch.Tensor) -> torch.Tensor:
    """``(B, 1, C)`` (one query token) -> ``(B, C)``; anything else unchanged."""
    return attn[:, 0] if attn.dim() == 3 and attn.shape[1] == 1 else attn


class _MaskedRowMSE(torch.autograd.Function):
    """``sum over kept rows of (attn - t / norm)^2 / n_kept`` with a hand-written backward
    (``2 (attn - t_hat) / n_kept`` on kept rows, 0 elsewhere): one saved difference instead of
    autograd's chain of masks. First-order only."""

    @staticmethod
    def forward(ctx: Any, attn: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        norm = t.sum(-1, keepdim=True)
        keep = norm > 0  # False for NaN rows (NaN compares False) and for all-zero rows
        diff = torch.addcmul(attn, t, -1.0 / norm)
        diff.masked_fill_(~keep, 0.0)
        n_kept = keep.sum().clamp(min=1).to(attn.dtype)
        flat = diff.reshape(-1)
        ctx.save_for_backward(diff, n_kept)
        return flat.square().sum() / n_kept  # torch.sum: cascade summation, accurate in float32

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        diff, n_kept = ctx.saved_tensors
        return diff * (2.0 * grad / n_kept), None


def _explanation_rows(attn: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``C * mean (attn - t_hat)^2`` over rows with a complete, non-zero annotation (0 if none),
    i.e. the sum of squares over the kept rows divided by their number."""
    return _MaskedRowMSE.apply(attn, targets.to(attn.dtype))


def concept_explanation_loss(attn: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The global explanation loss of the Concept Transformer (``concepts_cost``).

    Args:
        attn: ``(B, C)`` (or ``(B, 1, C)``) attention over the ``C`` global concepts.
        targets: ``(B, C)`` concept annotations, one- or multi-hot (any non-negative weights);
            a row containing NaN (or summing to 0) is an unannotated sample and is skipped.

    Returns:
        ``C * MSE(attn[kept], t_hat[kept])`` with ``t_hat = t / sum_c t``, a scalar; 0 (with a
        gradient path) when no sample is annotated.
    """
    if isinstance(attn, torch.Tensor):
        attn = _squeeze_global(attn)
    _check_attn(attn, "attn", 2)
    if isinstance(targets, torch.Tensor):
        targets = _squeeze_global(targets)
    _check_targets(targets, attn)
    return _explanation_rows(attn, targets)


def spatial_concept_explanation_loss(attn: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The spatial explanation loss (``spatial_concepts_cost``).

    Args:
        attn: ``(B, L, C_s)`` attention of each of the ``L`` patch tokens over ``C_s`` concepts.
        targets: ``(B, L, C_s)``; a patch whose row contains NaN (no annotated part) is skipped.

    Returns:
        ``C_s * MSE`` over the kept patches (rows normalised to sum 1); 0 if none is kept.
    """
    _check_attn(attn, "attn", 3)
    _check_targets(targets, attn)
    c = attn.shape[-1]
    return _explanation_rows(attn.reshape(-1, c), targets.reshape(-1, c))


def concept_attention_entropy(attn: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Sparsity penalty ``mean over all entries of -p log(p + eps)`` (``ent_loss``).

    0 for one-hot attention (up to ``eps``), ``log(C) / C`` for uniform attention over ``C``
    concepts (its maximum for rows that sum to 1).
    """
    validate_params({"eps": [Interval(float, 0, 1, closed="left")]}, {"eps": eps}, owner="concept_attention_entropy")
    if not isinstance(attn, torch.Tensor) or not attn.is_floating_point():
        raise TypeError("attn must be a floating-point torch.Tensor")
    if attn.numel() == 0:
        raise ValueError("empty batch: attn has no entries")
    check_finite(attn, "attn")
    return _MeanEntropy.apply(attn, eps)


class _MeanEntropy(torch.autograd.Function):
    """``mean(-p log(p + eps))`` with a hand-written backward
    (``-(log(p + eps) + p / (p + eps)) / n``). First-order only."""

    @staticmethod
    def forward(ctx: Any, attn: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        shifted = attn + eps
        log = torch.log(shifted)
        ctx.save_for_backward(attn, shifted, log)
        return -(attn * log).sum() / attn.numel()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        attn, shifted, log = ctx.saved_tensors
        return (log + attn / shifted) * (-grad / attn.numel()), None


class CCTLossOutput(NamedTuple):
    """The total CCT loss and its parts (the parts are reported even when their weight is 0)."""

    total: torch.Tensor
    classification: torch.Tensor
    explanation: torch.Tensor
    sparsity: torch.Tensor


class CCTLoss(nn.Module):
    """The training objective of CT / CCT.

    ``L = CE(logits, y) + expl_lambda (L_expl,g + L_expl,s) + sparsity_lambda L_sparse`` where
    the explanation terms use the given annotations (either may be ``None``) and ``L_sparse`` is
    :func:`concept_attention_entropy` of each available attention map, summed. A term whose
    weight is 0 is not added (its value is still returned, detached).

    Args:
        expl_lambda: weight of the explanation losses (1 on CIFAR-100 / CUB in the paper, 5 or
            2 on MNIST).
        sparsity_lambda: weight of the entropy penalty (0.5 on CIFAR-100 / CUB, 0 on MNIST).

    Call:
        ``loss(output, target, concept_targets=None, spatial_targets=None) -> CCTLossOutput``
        with ``output`` a :class:`~paperzoo.models.concept_transformer.ConceptOutput` (or any
        ``(logits, concept_attn, spatial_concept_attn)`` triple).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "expl_lambda": [Interval(float, 0, math.inf, closed="left")],
        "sparsity_lambda": [Interval(float, 0, math.inf, closed="left")],
    }

    def __init__(self, expl_lambda: float = 1.0, sparsity_lambda: float = 0.5) -> None:
        super().__init__()
        params = {"expl_lambda": expl_lambda, "sparsity_lambda": sparsity_lambda}
        validate_params(self._parameter_constraints, params, owner="CCTLoss")
        self.expl_lambda, self.sparsity_lambda = float(expl_lambda), float(sparsity_lambda)

    def forward(
        self,
        output: Any,
        target: torch.Tensor,
        concept_targets: torch.Tensor | None = None,
        spatial_targets: torch.Tensor | None = None,
    ) -> CCTLossOutput:
        logits, concept_attn, spatial_attn = output
        check_logits_target(logits, target)
        ce = F.cross_entropy(logits, target)
        zero = logits.new_zeros(())
        expl = zero
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.expl_lambda > 0):
            if concept_targets is not None:
                if concept_attn is None:
                    raise ValueError("concept_targets given but the head has no global concepts (concept_attn is None)")
                expl = expl + concept_explanation_loss(concept_attn, concept_targets)
            if spatial_targets is not None:
                if spatial_attn is None:
                    raise ValueError(
                        "spatial_targets given but the head has no spatial concepts (spatial_concept_attn is None)"
                    )
                expl = expl + spatial_concept_explanation_loss(spatial_attn, spatial_targets)
        sparse = zero
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.sparsity_lambda > 0):
            for a in (concept_attn, spatial_attn):
                if a is not None:
                    sparse = sparse + concept_attention_entropy(a)
        total = ce
        if self.expl_lambda > 0:
            total = total + self.expl_lambda * expl
        if self.sparsity_lambda > 0:
            total = total + self.sparsity_lambda * sparse
        return CCTLossOutput(total, ce.detach(), expl.detach(), sparse.detach())


# --------------------------------------------------------------------------- metrics
def _hit_rate(attn: torch.Tensor, targets: torch.Tensor) -> float:
    t = targets.to(attn.dtype)
    norm = t.sum(-1)
    keep = ~torch.isnan(norm) & (norm > 0)
    if not bool(keep.any()):
        return float("nan")
    top = attn[keep].argmax(-1)
    return float((t[keep].gather(1, top[:, None])[:, 0] > 0).to(torch.float64).mean())


@torch.no_grad()
def concept_accuracy(attn: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of annotated samples whose most-attended global concept is an annotated one
    (for one-hot targets: the arg-max equals the annotated concept). NaN if none is annotated."""
    if isinstance(attn, torch.Tensor):
        attn = _squeeze_global(attn)
    _check_attn(attn, "attn", 2)
    _check_targets(targets, attn)
    return _hit_rate(attn, targets)


@torch.no_grad()
def spatial_concept_accuracy(attn: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of annotated patches (rows without NaN) whose most-attended spatial concept is
    annotated for that patch. NaN if no patch is annotated."""
    _check_attn(attn, "attn", 3)
    _check_targets(targets, attn)
    c = attn.shape[-1]
    return _hit_rate(attn.reshape(-1, c), targets.reshape(-1, c))
