"""DeGLA: Decoupled Global-Local Alignment (Hu et al., ACM MM 2025, arXiv 2504.16801).

The fine-tuning objective of a CLIP-style dual encoder on images with one positive caption and
K hard-negative captions each (the paper's method section; the official ``CLIPloss_DeGLA``):

``L = L_base + w_tgc * L_TGC + w_igc * L_IGC + w_distill * L_distill`` with

* ``L_base`` (global, NegCLIP-style): symmetric image-text InfoNCE at CLIP's learnable scale ``s``;
  the image-to-text softmax runs over all ``N(1+K)`` texts of the batch (every in-batch positive
  and negative is a distractor), the text-to-image one over the N images, positives as queries;
* ``L_IGC`` (image-grounded contrast, local): a (1+K)-way softmax per image over its own caption
  and its own K negatives, at scale ``s``;
* ``L_TGC`` (text-grounded contrast, local): anchor = the student embedding of the positive
  caption, positive = the frozen EMA teacher's embedding of the same caption, negatives = the
  student embeddings of the caption's own negatives, at a fixed scale 10;
* ``L_distill`` (global self-distillation): ``sum ||v - v*||^2 + sum ||t - t*||^2`` over the
  batch's images and all its texts (a *sum*, like ``F.mse_loss(reduction="sum")``).

Text batch layout (as in the reference code): ``text_emb = [t_1 .. t_N, neg_{1,1} .. neg_{1,K},
neg_{2,1} .. neg_{N,K}]``, i.e. positives first, then negatives sample-major: row ``N + i K + k``
is negative ``k`` of sample ``i``.

The released code builds the TGC mask with ``repeat(1, K)``, which contrasts caption ``i`` with
rows ``N + i + k N`` (mostly *other* samples' negatives) instead of its own;
``reference_tgc_indexing=True`` reproduces that, the default uses the caption's own negatives
as the paper's text and figure describe. The local terms are implemented with gathers
(O(N K d)), not masked N x N(1+K) matrices; :func:`_reference_degla_loss` is the masked-matrix
formula of the reference code, kept for tests and benchmarks.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, validate_params

__all__ = [
    "DeGLALoss",
    "degla_loss",
    "feature_distill_loss",
    "image_grounded_contrast",
    "negclip_base_loss",
    "text_grounded_contrast",
]

_DISTILL_REDUCTIONS = ("sum", "mean")


# --------------------------------------------------------------------------- validation
def _check_matrix(x: Any, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor (rows, d), got {getattr(x, 'shape', type(x))}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def _num_negatives(image_emb: torch.Tensor, text_emb: torch.Tensor, num_negatives: int | None) -> int:
    """Validate the pair and return K (inferred from the shapes when ``num_negatives`` is None)."""
    _check_matrix(image_emb, "image_emb")
    _check_matrix(text_emb, "text_emb")
    n, d = image_emb.shape
    if text_emb.shape[1] != d:
        raise ValueError(f"text_emb must have {d} columns (the embedding size of image_emb), got {text_emb.shape[1]}")
    if text_emb.shape[0] % n:
        raise ValueError(
            f"text_emb must have N(1+K) rows for N = {n} images (positives, then K negatives per image), "
            f"got {text_emb.shape[0]}"
        )
    k = text_emb.shape[0] // n - 1
    if k < 0 or (num_negatives is not None and k != num_negatives):
        raise ValueError(
            f"text_emb must have N(1+K) = {n * (1 + (num_negatives or 0))} rows for N = {n} images and "
            f"num_negatives = {num_negatives}, got {text_emb.shape[0]}"
        )
    return k


def _check_scale(logit_scale: Any) -> torch.Tensor | float:
    if isinstance(logit_scale, torch.Tensor):
        if logit_scale.numel() != 1:
            raise ValueError(f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}")
        value = float(logit_scale.detach())
        out: torch.Tensor | float = logit_scale.reshape(())
    else:
        value = float(logit_scale)
        out = value
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"logit_scale must be a finite positive (already exponentiated) scale, got {value}")
    return out


def _check_teacher(t: Any, like: torch.Tensor, name: str) -> torch.Tensor:
    _check_matrix(t, name)
    if t.shape != like.shape:
        raise ValueError(
            f"{name} must have the shape of the student's embeddings {tuple(like.shape)}, got {tuple(t.shape)}"
        )
    return t.detach()


# --------------------------------------------------------------------------- the four terms (trusted inputs)
def _base(v: torch.Tensor, t: torch.Tensor, s: torch.Tensor | float, include_negatives: bool) -> torch.Tensor:
    n = v.shape[0]
    target = torch.arange(n, device=v.device)
    texts = t if include_negatives else t[:n]
    i2t = F.cross_entropy(s * v @ texts.T, target)
    t2i = F.cross_entropy(s * t[:n] @ v.T, target)
    return (i2t + t2i) / 2


def _local_ce(anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, s: Any) -> torch.Tensor:
    """mean_i CE over [anchor_i . positive_i, anchor_i . negatives_{i,k}] at scale ``s``, target 0."""
    pos = (anchor * positive).sum(-1, keepdim=True)  # (N, 1)
    neg = torch.einsum("nd,nkd->nk", anchor, negatives)  # (N, K)
    z = s * torch.cat([pos, neg], dim=1)
    return (torch.logsumexp(z, dim=1) - z[:, 0]).mean()


def _igc(v: torch.Tensor, t: torch.Tensor, s: Any, k: int) -> torch.Tensor:
    n, d = v.shape
    return _local_ce(v, t[:n], t[n:].reshape(n, k, d), s)


def _tgc_negatives(t: torch.Tensor, n: int, k: int, reference: bool) -> torch.Tensor:
    """(N, K, d) negatives contrasted with caption i: rows ``N + iK + k`` (own negatives) or
    ``N + i + kN`` (the released code's ``repeat(1, K)`` mask); both are views of ``t``."""
    neg, d = t[n:], t.shape[1]
    return neg.reshape(k, n, d).transpose(0, 1) if reference else neg.reshape(n, k, d)


def _tgc(t: torch.Tensor, t_star: torch.Tensor, k: int, scale: float, reference: bool, n: int) -> torch.Tensor:
    return _local_ce(t[:n], t_star[:n], _tgc_negatives(t, n, k, reference), scale)


def _distill(
    v: torch.Tensor, t: torch.Tensor, v_star: torch.Tensor, t_star: torch.Tensor, reduction: str
) -> torch.Tensor:
    if reduction == "sum":
        return ((v - v_star) ** 2).sum() + ((t - t_star) ** 2).sum()
    return F.mse_loss(v, v_star) + F.mse_loss(t, t_star)


# --------------------------------------------------------------------------- functional API
def negclip_base_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    include_negatives: bool = True,
) -> torch.Tensor:
    """The global base loss ``L_base`` (NegCLIP-style symmetric InfoNCE).

    Image-to-text cross-entropy of ``s V T^T`` over all ``N(1+K)`` texts (``include_negatives``)
    or the N positives only, plus text-to-image cross-entropy of ``s T[:N] V^T``, halved. With
    K = 0 or ``include_negatives=False`` it is CLIP's loss.

    Args:
        image_emb: (N, d) normalised image embeddings.
        text_emb: (N(1+K), d) normalised text embeddings, positives then negatives sample-major.
        logit_scale: the exponentiated scale ``s`` (a positive float or scalar tensor).
        include_negatives: whether the hard negatives join the image-to-text softmax.
    """
    _num_negatives(image_emb, text_emb, None)
    return _base(image_emb, text_emb, _check_scale(logit_scale), bool(include_negatives))


def image_grounded_contrast(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float, num_negatives: int | None = None
) -> torch.Tensor:
    """``L_IGC``: mean over images of the (1+K)-way cross-entropy of
    ``s [v_i . t_i, v_i . neg_{i,1}, .., v_i . neg_{i,K}]`` with target 0 (own negatives only)."""
    k = _num_negatives(image_emb, text_emb, num_negatives)
    return _igc(image_emb, text_emb, _check_scale(logit_scale), k)


def text_grounded_contrast(
    text_emb: torch.Tensor,
    teacher_text_emb: torch.Tensor,
    num_negatives: int,
    scale: float = 10.0,
    reference_indexing: bool = False,
) -> torch.Tensor:
    """``L_TGC``: mean over captions of the (1+K)-way cross-entropy of
    ``scale [t_i . t*_i, t_i . neg_{i,1}, .., t_i . neg_{i,K}]`` with target 0, where ``t*_i`` is
    the (constant) teacher embedding of caption i and the negatives are student embeddings.

    ``reference_indexing=True`` uses rows ``N + i + kN`` instead of the own negatives
    ``N + iK + k`` (the released code's ``repeat(1, K)`` mask; identical when N = 1 or K = 1).
    """
    validate_params(
        {
            "num_negatives": [Interval(int, 0, math.inf, closed="left")],
            "scale": [Interval(float, 0, math.inf, closed="neither")],
        },
        {"num_negatives": num_negatives, "scale": scale},
        owner="text_grounded_contrast",
    )
    _check_matrix(text_emb, "text_emb")
    if text_emb.shape[0] % (1 + num_negatives):
        raise ValueError(
            f"text_emb must have N(1+K) rows for num_negatives K = {num_negatives}, got {text_emb.shape[0]}"
        )
    t_star = _check_teacher(teacher_text_emb, text_emb, "teacher_text_emb")
    n = text_emb.shape[0] // (1 + num_negatives)
    return _tgc(text_emb, t_star, num_negatives, float(scale), bool(reference_indexing), n)


def feature_distill_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    teacher_image_emb: torch.Tensor,
    teacher_text_emb: torch.Tensor,
    reduction: str = "sum",
) -> torch.Tensor:
    """``L_distill = sum_i ||v_i - v*_i||^2 + sum_r ||t_r - t*_r||^2`` (``reduction="sum"``, the
    reference), or the two element-wise means (``"mean"``). The teacher tensors get no gradient."""
    validate_params(
        {"reduction": [Options(_DISTILL_REDUCTIONS)]}, {"reduction": reduction}, owner="feature_distill_loss"
    )
    _check_matrix(image_emb, "image_emb")
    _check_matrix(text_emb, "text_emb")
    v_star = _check_teacher(teacher_image_emb, image_emb, "teacher_image_emb")
    t_star = _check_teacher(teacher_text_emb, text_emb, "teacher_text_emb")
    return _distill(image_emb, text_emb, v_star, t_star, reduction)


def degla_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    teacher_image_emb: torch.Tensor | None = None,
    teacher_text_emb: torch.Tensor | None = None,
    *,
    num_negatives: int | None = None,
    w_igc: float = 0.1,
    w_tgc: float = 0.1,
    w_distill: float = 0.005,
    tgc_scale: float = 10.0,
    base_includes_negatives: bool = True,
    distill_reduction: str = "sum",
    reference_tgc_indexing: bool = False,
) -> dict[str, torch.Tensor]:
    """Functional form of :class:`DeGLALoss`; returns ``{"loss", "base", "igc", "tgc", "distill"}``."""
    return DeGLALoss(
        num_negatives=num_negatives,
        w_igc=w_igc,
        w_tgc=w_tgc,
        w_distill=w_distill,
        tgc_scale=tgc_scale,
        base_includes_negatives=base_includes_negatives,
        distill_reduction=distill_reduction,
        reference_tgc_indexing=reference_tgc_indexing,
    )(image_emb, text_emb, logit_scale, teacher_image_emb, teacher_text_emb)


class DeGLALoss(nn.Module):
    """DeGLA's total fine-tuning loss ``L_base + w_tgc L_TGC + w_igc L_IGC + w_distill L_distill``.

    Args:
        num_negatives: K, the hard negatives per image (None: inferred from the shapes).
        w_igc, w_tgc, w_distill: term weights (paper: 0.1, 0.1, 0.005). With all three 0 the loss
            is NegCLIP's (and the teacher embeddings may be omitted).
        tgc_scale: fixed inverse temperature of TGC (10 in the reference code).
        base_includes_negatives: whether the hard negatives join L_base's image-to-text softmax
            (the reference code: yes).
        distill_reduction: ``"sum"`` (the reference) or ``"mean"``.
        reference_tgc_indexing: reproduce the released code's TGC indexing (see the module docstring).

    ``forward(image_emb (N, d), text_emb (N(1+K), d), logit_scale, teacher_image_emb (N, d),
    teacher_text_emb (N(1+K), d))`` takes normalised embeddings (text layout: positives, then
    negatives sample-major), the *exponentiated* logit scale, and returns a dict with ``loss``
    and the unweighted terms ``base``, ``igc``, ``tgc``, ``distill`` (zero tensors for terms
    whose weight is 0 and whose inputs are missing).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "num_negatives": [Interval(int, 0, math.inf, closed="left"), None],
        "w_igc": [Interval(float, 0, math.inf, closed="left")],
        "w_tgc": [Interval(float, 0, math.inf, closed="left")],
        "w_distill": [Interval(float, 0, math.inf, closed="left")],
        "tgc_scale": [Interval(float, 0, math.inf, closed="neither")],
        "distill_reduction": [Options(_DISTILL_REDUCTIONS)],
    }

    def __init__(
        self,
        num_negatives: int | None = 4,
        w_igc: float = 0.1,
        w_tgc: float = 0.1,
        w_distill: float = 0.005,
        tgc_scale: float = 10.0,
        base_includes_negatives: bool = True,
        distill_reduction: str = "sum",
        reference_tgc_indexing: bool = False,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {
                "num_negatives": num_negatives,
                "w_igc": w_igc,
                "w_tgc": w_tgc,
                "w_distill": w_distill,
                "tgc_scale": tgc_scale,
                "distill_reduction": distill_reduction,
            },
            owner=type(self).__name__,
        )
        self.num_negatives = None if num_negatives is None else int(num_negatives)
        self.w_igc, self.w_tgc, self.w_distill = float(w_igc), float(w_tgc), float(w_distill)
        self.tgc_scale = float(tgc_scale)
        self.base_includes_negatives = bool(base_includes_negatives)
        self.distill_reduction = distill_reduction
        self.reference_tgc_indexing = bool(reference_tgc_indexing)

    def extra_repr(self) -> str:
        return (
            f"num_negatives={self.num_negatives}, w_igc={self.w_igc}, w_tgc={self.w_tgc}, w_distill={self.w_distill}, "
            f"tgc_scale={self.tgc_scale}, base_includes_negatives={self.base_includes_negatives}, "
            f"distill_reduction={self.distill_reduction!r}, reference_tgc_indexing={self.reference_tgc_indexing}"
        )

    def forward(
        self,
        image_emb: torch.Tensor,
        text_emb: torch.Tensor,
        logit_scale: torch.Tensor | float,
        teacher_image_emb: torch.Tensor | None = None,
        teacher_text_emb: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        k = _num_negatives(image_emb, text_emb, self.num_negatives)
        s = _check_scale(logit_scale)
        n = image_emb.shape[0]
        zero = image_emb.new_zeros(())
        base = _base(image_emb, text_emb, s, self.base_includes_negatives)
        igc = _igc(image_emb, text_emb, s, k) if self.w_igc > 0 else zero
        tgc = distill = zero
        if self.w_tgc > 0 or self.w_distill > 0:
            if teacher_text_emb is None or (self.w_distill > 0 and teacher_image_emb is None):
                raise ValueError(
                    "teacher_image_emb and teacher_text_emb are required when w_tgc > 0 or w_distill > 0 "
                    "(give the EMA teacher's embeddings of the same images and texts)"
                )
            t_star = _check_teacher(teacher_text_emb, text_emb, "teacher_text_emb")
            if self.w_tgc > 0:
                tgc = _tgc(text_emb, t_star, k, self.tgc_scale, self.reference_tgc_indexing, n)
            if self.w_distill > 0:
                v_star = _check_teacher(teacher_image_emb, image_emb, "teacher_image_emb")
                distill = _distill(image_emb, text_emb, v_star, t_star, self.distill_reduction)
        loss = base + self.w_tgc * tgc + self.w_igc * igc + self.w_distill * distill
        return {"loss": loss, "base": base, "igc": igc, "tgc": tgc, "distill": distill}


def _reference_degla_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    teacher_image_emb: torch.Tensor,
    teacher_text_emb: torch.Tensor,
    num_negatives: int,
    reference_tgc_indexing: bool = True,
    w_igc: float = 0.1,
    w_tgc: float = 0.1,
    w_distill: float = 0.005,
) -> dict[str, torch.Tensor]:
    """The released ``CLIPloss_DeGLA.forward`` (world size 1) written with its additive
    -inf masks over full similarity matrices (O(N^2 K)); for tests and the speed comparison."""
    v, t, vs, ts, k = image_emb, text_emb, teacher_image_emb.detach(), teacher_text_emb.detach(), num_negatives
    n = v.shape[0]
    labels = torch.arange(n, device=v.device)
    logits_per_image = logit_scale * v @ t.T
    logits_per_text = logit_scale * t[:n] @ v.T
    base = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
    eye = torch.eye(n, dtype=v.dtype, device=v.device)
    neg_inf = torch.tensor(float("-inf"), dtype=v.dtype, device=v.device)
    zero = torch.zeros((), dtype=v.dtype, device=v.device)
    own = eye.repeat_interleave(k, dim=1)  # (N, NK): 1 at columns iK .. iK+K-1
    mask_igc = torch.where(torch.cat([eye, own], dim=1) > 0, zero, neg_inf)
    igc = F.cross_entropy(logits_per_image + mask_igc, labels)
    tgc_cols = eye.repeat(1, k) if reference_tgc_indexing else own
    mask_tgc = torch.where(torch.cat([eye, tgc_cols], dim=1) > 0, zero, neg_inf)
    logits_tgc = 10.0 * t[:n] @ torch.cat([ts[:n], t[n:]], dim=0).T
    tgc = F.cross_entropy(logits_tgc + mask_tgc, labels)
    distill = F.mse_loss(v, vs, reduction="sum") + F.mse_loss(t, ts, reduction="sum")
    loss = base + w_tgc * tgc + w_igc * igc + w_distill * distill
    return {"loss": loss, "base": base, "igc": igc, "tgc": tgc, "distill": distill}
