"""CFCD's fine-stage objective: the attentive local triplet loss on spatial feature maps.

Zhu, Gao, Ke, Qiao & Sun, "Coarse-to-Fine: Learning Compact Discriminative Representation for Single-Stage Image
Retrieval", ICCV 2023 (arXiv:2308.04008), the fine stage of the method. After the coarse (MadaCos) stage the
network is trained on tuples ``(anchor, positive, n_1..n_K)`` of images with

``L_tuple = sum_{(a, b) matched} sum_k max(0, ||q_a - p_b||^2 - ||q_a - n_k(a)||^2 + margin)``

where ``q``, ``p``, ``n_k`` are the L2-normalised local descriptors (the spatial positions of the last
convolutional map) of the anchor, the positive and the k-th negative image. The matched pairs ``(a, b)`` are
reciprocal nearest neighbours between anchor and positive that pass Lowe's ratio test and whose positive position
is among the top half of the positive image's attention ``A = sum_c |F_c|``; ``n_k(a)`` is the nearest local
descriptor of negative image ``k`` to ``q_a``. Matching and negative selection carry no gradient; the sum is not
averaged. The stage-2 objective is ``MadaCos CE + lambda * sum_tuples L_tuple``.

A re-implementation (the official loss adapts ``naver/FIRe``'s superfeature triplet loss; nothing is vendored).
The tuples are not PML's ``(embeddings, labels)`` pair structure (the pairs are positions *inside* images, chosen
by matching), so this is a plain ``nn.Module`` with a functional form, vectorised over tuples and positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, validate_params

__all__ = [
    "AttentiveLocalTripletLoss",
    "attentive_local_triplet_loss",
    "match_local_descriptors",
    "maps_to_tuples",
]

_PARAMS = {
    "margin": [Interval(float, 0.0, math.inf, closed="left")],
    "lowe_ratio": [Interval(float, 0.0, math.inf, closed="neither")],
    "attention_top_frac": [Interval(float, 0.0, 1.0, closed="right")],
    "weight": [Interval(float, 0.0, math.inf, closed="left")],
}


def _check_local(local: torch.Tensor, attention: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if not isinstance(local, torch.Tensor):
        raise TypeError(f"local must be a tensor, got {type(local).__name__}")
    if local.dim() == 3:
        local = local.unsqueeze(0)
        attention = None if attention is None else attention.unsqueeze(0)
    if local.dim() != 4:
        raise ValueError(
            f"local must have shape (tuples, tuple_size, positions, dim) or (tuple_size, positions, dim), "
            f"got {tuple(local.shape)}"
        )
    u, t, n, d = local.shape
    if u == 0 or n == 0 or d == 0:
        raise ValueError(f"local must be non-empty, got shape {tuple(local.shape)}")
    if t < 3:
        raise ValueError(f"local needs tuples of anchor, positive and >= 1 negative (tuple_size >= 3), got {t}")
    if not local.is_floating_point():
        raise TypeError(f"local must be floating point, got {local.dtype}")
    if not torch.isfinite(local).all():
        raise ValueError("local contains NaN or infinite values")
    if attention is not None:
        if not isinstance(attention, torch.Tensor):
            raise TypeError(f"attention must be a tensor or None, got {type(attention).__name__}")
        if attention.dim() == 3:  # (tuples, tuple_size, positions): keep the positive image's
            if attention.shape != (u, t, n):
                raise ValueError(f"attention of shape {tuple(attention.shape)} does not match local {(u, t, n)}")
            attention = attention[:, 1]
        if attention.shape != (u, n):
            raise ValueError(
                f"attention must have shape (tuples, positions) = {(u, n)} (the positive image's) or "
                f"(tuples, tuple_size, positions), got {tuple(attention.shape)}"
            )
        if not torch.isfinite(attention).all():
            raise ValueError("attention contains NaN or infinite values")
    return local, attention


@torch.no_grad()
def match_local_descriptors(
    query: torch.Tensor,
    positive: torch.Tensor,
    attention: torch.Tensor,
    lowe_ratio: float = 0.9,
    attention_top_frac: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matched local descriptors between anchor and positive images (no gradient).

    ``query``, ``positive``: (U, N, D) L2-normalised descriptors; ``attention``: (U, N) of the positive image.
    Returns ``(qidx, valid)``, both (U, N): for positive position ``j`` of tuple ``u``, ``qidx[u, j]`` is its
    nearest query position and ``valid[u, j]`` says whether ``(qidx[u, j], j)`` is a matched pair: reciprocal
    nearest neighbours, distance ratio to the second-nearest query position ``<= lowe_ratio``, and ``j`` among the
    top ``floor(N * attention_top_frac)`` positions of ``attention``.
    """
    u, n, _ = query.shape
    dist = torch.cdist(query, positive)  # (U, Nq, Np)
    best1 = dist.argmin(dim=2)  # nearest positive position of every query position
    best2 = dist.argmin(dim=1)  # nearest query position of every positive position (U, Np)
    arange = torch.arange(n, device=query.device).expand(u, n)
    reciprocal = best1.gather(1, best2) == arange
    if n > 1:
        two = dist.topk(2, dim=1, largest=False).values  # (U, 2, Np): best and second-best over query positions
        ratio = two[:, 0] / two[:, 1]
        # a zero second-best distance (duplicate descriptors) is an ambiguous match: fail the test
        ratio = torch.where(two[:, 1] > 0, ratio, torch.ones_like(ratio) * torch.inf)
    else:
        ratio = torch.zeros(u, n, dtype=dist.dtype, device=dist.device)
    keep = int(n * attention_top_frac)
    top = torch.zeros(u, n, dtype=torch.bool, device=query.device)
    if keep > 0:
        top.scatter_(1, attention.topk(keep, dim=1).indices, True)
    return best2, reciprocal & (ratio <= lowe_ratio) & top


def attentive_local_triplet_loss(
    local: torch.Tensor,
    attention: torch.Tensor | None = None,
    *,
    margin: float = 0.1,
    lowe_ratio: float = 0.9,
    attention_top_frac: float = 0.5,
    weight: float = 1.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """CFCD's local triplet loss over tuples of local descriptors.

    ``local``: (U, T, N, D) raw local descriptors of U tuples of T images ``(anchor, positive, negatives...)``
    with N spatial positions of dimension D (or one tuple, (T, N, D)); they are L2-normalised here.
    ``attention``: the positive image's attention, (U, N) or (U, T, N); default the channel-wise L1 norm of the raw
    positive descriptors (the paper's ``A = sum_c |F_c|``). ``reduction``: ``"sum"`` (the paper's, not averaged),
    ``"mean"`` over tuples, or ``"none"`` for the (U,) per-tuple sums. A tuple without matches contributes 0 (in the
    graph). Returns ``weight`` times the reduced loss.
    """
    validate_params(
        _PARAMS,
        {"margin": margin, "lowe_ratio": lowe_ratio, "attention_top_frac": attention_top_frac, "weight": weight},
        owner="attentive_local_triplet_loss",
    )
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    local, attention = _check_local(local, attention)
    if attention is None:
        attention = local[:, 1].detach().abs().sum(-1)
    x = F.normalize(local, dim=-1)
    q, p, neg = x[:, 0], x[:, 1], x[:, 2:]  # (U, N, D), (U, N, D), (U, K, N, D)
    qidx, valid = match_local_descriptors(q.detach(), p.detach(), attention.detach(), lowe_ratio, attention_top_frac)
    qm = q.gather(1, qidx.unsqueeze(-1).expand_as(q))  # (U, Np, D): the query matched to each positive position
    d_pos = (qm - p).pow(2).sum(-1)  # (U, Np)
    with torch.no_grad():  # nearest descriptor of each negative image to each matched query (Euclidean)
        nidx = torch.cdist(qm.detach().unsqueeze(1), neg.detach()).argmin(-1)  # (U, K, Np)
    nsel = neg.gather(2, nidx.unsqueeze(-1).expand(-1, -1, -1, neg.shape[-1]))  # (U, K, Np, D)
    d_neg = (qm.unsqueeze(1) - nsel).pow(2).sum(-1)  # (U, K, Np)
    hinge = F.relu(d_pos.unsqueeze(1) - d_neg + margin) * valid.unsqueeze(1)
    per_tuple = hinge.sum(dim=(1, 2))
    if reduction == "sum":
        out = per_tuple.sum()
    elif reduction == "mean":
        out = per_tuple.mean()
    else:
        out = per_tuple
    return out * weight


def maps_to_tuples(maps: torch.Tensor, tuple_size: int) -> torch.Tensor:
    """Reshape a batch of feature maps (U * T, C, h, w), ordered tuple by tuple, to local descriptors (U, T, h*w, C)."""
    if maps.dim() != 4:
        raise ValueError(f"maps must have shape (batch, channels, h, w), got {tuple(maps.shape)}")
    b, c, h, w = maps.shape
    if tuple_size < 3 or b % tuple_size:
        raise ValueError(f"batch {b} is not a whole number of tuples of tuple_size={tuple_size} (>= 3)")
    return maps.flatten(2).transpose(1, 2).reshape(b // tuple_size, tuple_size, h * w, c)


class AttentiveLocalTripletLoss(nn.Module):
    """CFCD's fine-stage loss (see the module docstring); ``forward(local, attention=None)``.

    ``weight`` is the loss weight lambda: 0.05 is the paper's config value; the released loss class trains with
    its constructor default 1.0 (unconfirmed which the paper used). ``forward`` also accepts feature maps
    (U * T, C, h, w) with ``tuple_size`` set, and records the last call's number of matched pairs in
    ``num_matches``.
    """

    _parameter_constraints = _PARAMS

    def __init__(
        self,
        margin: float = 0.1,
        lowe_ratio: float = 0.9,
        attention_top_frac: float = 0.5,
        weight: float = 0.05,
        tuple_size: int | None = None,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        validate_params(
            _PARAMS,
            {"margin": margin, "lowe_ratio": lowe_ratio, "attention_top_frac": attention_top_frac, "weight": weight},
            owner="AttentiveLocalTripletLoss",
        )
        if reduction not in ("sum", "mean", "none"):
            raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
        if tuple_size is not None and tuple_size < 3:
            raise ValueError(f"tuple_size must be >= 3 (anchor, positive, >= 1 negative), got {tuple_size}")
        self.margin, self.lowe_ratio, self.attention_top_frac = float(margin), float(lowe_ratio), attention_top_frac
        self.weight, self.tuple_size, self.reduction = float(weight), tuple_size, reduction
        self.num_matches = 0

    def forward(self, local: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
        if self.tuple_size is not None and local.dim() == 4 and local.shape[0] % self.tuple_size == 0:
            if attention is not None:
                attention = attention.flatten(1).reshape(-1, self.tuple_size, attention[0].numel())
            local = maps_to_tuples(local, self.tuple_size)
        checked, att = _check_local(local, attention)
        if att is None:
            att = checked[:, 1].detach().abs().sum(-1)
        with torch.no_grad():
            x = F.normalize(checked.detach(), dim=-1)
            self.num_matches = int(
                match_local_descriptors(x[:, 0], x[:, 1], att, self.lowe_ratio, self.attention_top_frac)[1].sum()
            )
        return attentive_local_triplet_loss(
            checked,
            att,
            margin=self.margin,
            lowe_ratio=self.lowe_ratio,
            attention_top_frac=self.attention_top_frac,
            weight=self.weight,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, lowe_ratio={self.lowe_ratio}, attention_top_frac={self.attention_top_frac}, "
            f"weight={self.weight}, reduction={self.reduction!r}"
        )
