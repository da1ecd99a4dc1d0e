"""MadaCos, the coarse objective of CFCD (Zhu, Gao, Ke, Qiao & Sun, "Coarse-to-Fine: Learning Compact
Discriminative Representation for Single-Stage Image Retrieval", ICCV 2023, arXiv:2308.04008).

MadaCos is a cosine softmax (CosFace form: margin subtracted from the target cosine) whose scale ``s`` and margin
``m`` are recomputed, without gradient, for every mini-batch from the median target cosine, following the
official ``MadaCosLayerFunction`` of ``bassyess/CFCD``:

1. ``t_i = cos[i, y_i]``; ``c_med = median_i t_i`` (``torch.median``: the lower median for even B) at row ``i*``;
2. ``s = max(ln(K (1 - rho) / rho) / (1 - c_med), min_scale)`` with ``K = 9 999 999`` and ``min_scale = 32``;
3. ``B* = sum_{j != y_{i*}} exp(s cos[i*, j])`` (the median sample's non-target mass);
4. ``m = c_med - ln(B* rho / (1 - rho)) / s``, set to 0 when negative or in eval mode;
5. ``z = s cos - s m onehot(y)``; loss = cross-entropy(z, y).

The margin makes the median sample's target probability exactly ``rho`` whenever ``m > 0``; ``s`` is the scale at
which that sample's target odds would reach ``K`` if its target cosine were 1. As training raises ``c_med``, both
grow without a schedule. ``s`` and ``m`` are constants for the backward pass, so ``dL/dcos = s (softmax(z) -
onehot(y)) / B``. ``ln B*`` is computed as a log-sum-exp (``exp(s cos)`` overflows float32 once ``s > 88``).

:class:`MadaCosLoss` subclasses pytorch-metric-learning's ``CosFaceLoss`` (class weights ``W`` of shape
``(embedding_size, num_classes)``, PML miners' weights, reducers and weight regularisers work as there) and replaces
only the fixed ``(s, m)`` by the adaptive ones; like every PML classification loss it does not take ``ref_emb``.
It exposes the last batch's ``scale``, ``margin`` and ``median_cos`` for logging. Median and ``B*`` are taken
over the local batch (the official code gathers them over GPUs; identical on one device).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import CosFaceLoss
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from paperzoo._validation import (
    REDUCTIONS,
    Constraint,
    Interval,
    Options,
    check_embeddings_labels,
    check_finite,
    check_labels,
    validate_params,
)
from paperzoo.losses.base import reduce_loss

__all__ = ["MADACOS_K", "MadaCosLoss", "madacos_logits", "madacos_loss"]

MADACOS_K = 9_999_999
"""The official code's target odds ``K`` of a sample whose target cosine is 1."""

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "rho": [Interval(float, 0, 1, closed="neither")],
    "min_scale": [Interval(float, 0, math.inf, closed="left")],
    "K": [Interval(float, 1, math.inf, closed="neither")],
    "reduction": [Options(REDUCTIONS)],
}
"""Scalar parameters of the functions of this module (see :func:`paperzoo._validation.validate_params`)."""


def _check_cos_labels(cos: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(cos, torch.Tensor) or not cos.is_floating_point():
        raise TypeError("cos must be a floating-point torch.Tensor of shape (B, C)")
    if cos.dim() != 2:
        raise ValueError(f"cos must have shape (B, C), got {tuple(cos.shape)}")
    if cos.shape[0] == 0:
        raise ValueError("empty batch: cos has 0 rows")
    if cos.shape[1] < 2:
        raise ValueError(f"cos needs at least 2 classes (columns), got {cos.shape[1]}")
    check_finite(cos, "cos")
    check_labels(labels, cos.shape[0])
    if int(labels.min()) < 0 or int(labels.max()) >= cos.shape[1]:
        raise ValueError(
            f"labels must lie in [0, {cos.shape[1]}) (the columns of cos), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )


def _scale_margin(
    cos: torch.Tensor, labels: torch.Tensor, rho: float, training: bool, min_scale: float, K: float
) -> tuple[float, float, float]:
    """``(s, m, c_med)`` of a batch (no gradient; float64 scalars). Reads only the target cosines and the
    median sample's row, so no (B, C) temporaries."""
    with torch.no_grad():
        target = cos.detach().gather(1, labels[:, None]).squeeze(1)
        c_med, i_star = torch.median(target, dim=0)
        c_med_f = float(c_med)
        s = max(math.log(K * (1.0 - rho) / rho) / max(1.0 - c_med_f, 1e-12), min_scale)
        if not training:
            return s, 0.0, c_med_f
        row = s * cos.detach()[i_star].double()
        row[labels[i_star]] = -math.inf
        log_b = float(torch.logsumexp(row, dim=0))
        m = c_med_f - (log_b + math.log(rho / (1.0 - rho))) / s
        return s, max(m, 0.0), c_med_f


def _logits(cos: torch.Tensor, labels: torch.Tensor, s: float, m: float) -> torch.Tensor:
    """``s cos - s m onehot(labels)`` without a (B, C) one-hot."""
    z = cos * s
    if m == 0.0:
        return z
    rows = torch.arange(cos.shape[0], device=cos.device)
    return z.index_put((rows, labels), z.new_full((cos.shape[0],), -s * m), accumulate=True)


class _MadaCosCEFunction(torch.autograd.Function):
    """Per-sample cross-entropy of ``s cos - s m onehot(y)`` with ``s, m`` constants, as the official
    ``MadaCosLayerFunction``: one (B, C) buffer for the log-probabilities, saved for the closed-form backward
    ``dL_i/dcos_i = s (softmax(z_i) - onehot(y_i))``."""

    @staticmethod
    def forward(ctx: Any, cos: torch.Tensor, labels: torch.Tensor, s: float, m: float) -> torch.Tensor:  # type: ignore[override]
        rows = torch.arange(cos.shape[0], device=cos.device)
        z = cos * s
        if m != 0.0:
            z[rows, labels] -= s * m
        z = z.log_softmax(dim=1)
        ctx.save_for_backward(z, labels)
        ctx.s = s
        return -z[rows, labels]

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        logp, labels = ctx.saved_tensors
        grad = logp.exp()
        grad[torch.arange(grad.shape[0], device=grad.device), labels] -= 1.0
        return grad.mul_((grad_out * ctx.s)[:, None]), None, None, None


def madacos_logits(
    cos: torch.Tensor,
    labels: torch.Tensor,
    rho: float = 0.02,
    training: bool = True,
    *,
    min_scale: float = 32.0,
    K: float = MADACOS_K,
) -> tuple[torch.Tensor, float, float]:
    """MadaCos logits ``z = s cos - s m onehot(y)`` and the batch's ``(s, m)`` (module docstring, steps 1-5).

    Args:
        cos: (B, C) cosines between normalised embeddings and class weights.
        labels: (B,) integer class ids in ``[0, C)``.
        rho: target probability of the median sample (``ALPHA`` in the configs: 0.02).
        training: ``False`` gives ``m = 0`` (eval mode of the official layer).
        min_scale: floor of ``s`` (32).
        K: target odds at cosine 1 (9 999 999).

    Returns:
        ``(logits (B, C), s, m)``; ``s`` and ``m`` are Python floats (constants for autograd).
    """
    _check_cos_labels(cos, labels)
    validate_params(_PARAMETER_CONSTRAINTS, {"rho": rho, "min_scale": min_scale, "K": K}, owner="madacos_logits")
    s, m, _ = _scale_margin(cos, labels, float(rho), training, float(min_scale), float(K))
    return _logits(cos, labels, s, m), s, m


def madacos_loss(
    cos: torch.Tensor,
    labels: torch.Tensor,
    rho: float = 0.02,
    training: bool = True,
    *,
    min_scale: float = 32.0,
    K: float = MADACOS_K,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of :func:`madacos_logits` (reduction "mean" as the official code, "sum" or "none")."""
    validate_params(_PARAMETER_CONSTRAINTS, {"reduction": reduction}, owner="madacos_loss")
    _check_cos_labels(cos, labels)
    validate_params(_PARAMETER_CONSTRAINTS, {"rho": rho, "min_scale": min_scale, "K": K}, owner="madacos_loss")
    s, m, _ = _scale_margin(cos, labels, float(rho), training, float(min_scale), float(K))
    return reduce_loss(_MadaCosCEFunction.apply(cos, labels, s, m), reduction)


def _reference_madacos(cos: torch.Tensor, labels: torch.Tensor, rho: float = 0.02) -> torch.Tensor:
    """The official layer written naively (a sample loop for ``B_i``, ``exp`` without shifts): a test oracle."""
    B, C = cos.shape
    t = torch.stack([cos[i, labels[i]] for i in range(B)])
    c_med, i_star = torch.median(t.detach(), dim=0)
    s = max(math.log(MADACOS_K * (1 - rho) / rho) / (1 - float(c_med)), 32.0)
    b = [sum(math.exp(s * float(cos[i, j].detach())) for j in range(C) if j != int(labels[i])) for i in range(B)]
    m = max(float(c_med) - math.log(b[int(i_star)] * rho / (1 - rho)) / s, 0.0)
    z = s * cos - s * m * F.one_hot(labels, C).to(cos.dtype)
    return F.cross_entropy(z, labels)


class MadaCosLoss(CosFaceLoss):
    """MadaCos (CFCD's coarse objective): PML's ``CosFaceLoss`` with the per-batch adaptive scale and margin.

    ``forward(embeddings (B, D), labels (B,), indices_tuple=None)`` returns the mean cross-entropy of
    :func:`madacos_logits` of ``cos(embeddings, W)``; eval mode (``.eval()``) drops the margin. After each call
    ``scale``, ``margin`` and ``median_cos`` hold the batch's values.

    Args:
        num_classes: number of training classes.
        embedding_size: embedding dimension.
        rho: median-sample target probability (configs: 0.02; the official module default is 0.1).
        min_scale: floor of the scale (32).
        K: target odds at cosine 1 (9 999 999).
        **kwargs: PML's ``reducer``, ``weight_regularizer``, ``weight_init_func``, ...
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("rho", "min_scale", "K")
    }

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        rho: float = 0.02,
        min_scale: float = 32.0,
        K: float = MADACOS_K,
        **kwargs: Any,
    ) -> None:
        validate_params(
            self._parameter_constraints, {"rho": rho, "min_scale": min_scale, "K": K}, owner=type(self).__name__
        )
        if int(num_classes) < 2 or int(embedding_size) < 1:
            raise ValueError(
                f"num_classes must be >= 2 and embedding_size >= 1, got {num_classes} and {embedding_size}"
            )
        super().__init__(int(num_classes), int(embedding_size), margin=0.0, scale=float(min_scale), **kwargs)
        self.rho = float(rho)
        self.min_scale = float(min_scale)
        self.K = float(K)
        self.margin = 0.0
        self.scale = float(min_scale)
        self.median_cos = float("nan")
        self.add_to_recordable_attributes(list_of_names=["scale", "margin", "median_cos"], is_stat=False)

    def forward(  # type: ignore[override]
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_embeddings_labels(embeddings, labels)
        if labels is None:
            raise ValueError("labels are required (MadaCos is a classification head)")
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("ref_emb / ref_labels are not supported: MadaCos compares embeddings with class weights W")
        if embeddings.shape[1] != self.W.shape[0]:
            raise ValueError(
                f"embeddings must have {self.W.shape[0]} columns (embedding_size), got {embeddings.shape[1]}"
            )
        if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}) (num_classes), got values in "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    def compute_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: Any,
        ref_emb: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> dict[str, Any]:
        c_f.labels_required(labels)
        c_f.ref_not_supported(embeddings, labels, ref_emb, ref_labels)
        dtype = embeddings.dtype
        self.cast_types(dtype, embeddings.device)
        miner_weights = lmu.convert_to_weights(indices_tuple, labels, dtype=dtype)
        cos = self.get_cosine(embeddings)
        labels = labels.to(cos.device)
        s, m, c_med = _scale_margin(cos, labels, self.rho, self.training, self.min_scale, self.K)
        self.scale, self.margin, self.median_cos = s, m, c_med
        losses = _MadaCosCEFunction.apply(cos, labels, s, m) * miner_weights
        loss_dict = {
            "loss": {"losses": losses, "indices": c_f.torch_arange_from_size(embeddings), "reduction_type": "element"}
        }
        self.add_weight_regularization_to_loss_dict(loss_dict, self.W.t())
        return loss_dict

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, rho={self.rho}, min_scale={self.min_scale}, K={self.K:g}"


def _pml_cosface_bench() -> CosFaceLoss:
    """PML's ``CosFaceLoss`` (s = 30, m = 0.35), the speed-bench reference: the same structure (embeddings x class
    weights), fixed scale and margin. 128-d embeddings and 1024 classes (the bench's metric inputs, B <= 4096)."""
    return CosFaceLoss(num_classes=1024, embedding_size=128, margin=0.35, scale=30.0)


def _madacos_bench() -> MadaCosLoss:
    """:class:`MadaCosLoss` for the speed bench (128-d embeddings, 1024 classes)."""
    return MadaCosLoss(num_classes=1024, embedding_size=128)
