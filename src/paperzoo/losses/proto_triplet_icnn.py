"""The two distance-based few-shot losses of Mendez-Ruiz, Gonzalez-Zapata, Reyes-Amezcua, Flores-Araiza,
Lopez-Tiro, Mendez-Vazquez & Ochoa-Ruiz, "SuSana Distancia is all you need: Enforcing class separability in
metric learning via two novel distance-based loss functions for few-shot image classification"
(arXiv:2305.09062, 2023), following the authors' reference code (``maumruiz/FSL-Loss``,
``algorithms/icnn_loss.py``).

Both losses work inside an N-way K-shot episode with the distance ``D(u, v) = sqrt(||u - v||^2 + 1e-6)``
(:class:`SusanaDistance`):

* **Proto-Triplet** (:func:`proto_triplet_loss`, :class:`ProtoTripletLoss`): a triplet hinge whose anchor is a
  query ``q`` of class ``y``, whose positive is the prototype ``c_y`` (mean of the class's support embeddings)
  and whose negative is the nearest other prototype::

      L_PT = mean_q max(0, D(q, c_y) - min_{k != y} D(q, c_k) + m),   m = 0.5

* **ICNN loss** (:func:`icnn_score`, :func:`icnn_loss`, :class:`ICNNLoss`): ``-log`` of the
  inter-/intra-class nearest-neighbour score in (0, 1] (the reference's ``modified_score``): for each "origin"
  embedding its ``ipc`` nearest "targets" (the nearest one dropped, as the reference does), an intra-class
  term (same-class neighbours near relative to the nearest different-class one), an inter-class term
  (different-class neighbours far, normalised by the largest such distance) and the kNN class purity. Every
  quirk of the reference is kept: the neighbourhood size ``k`` is cut to ``m - 2`` when ``k + 2 >= m``
  (``m`` targets) and the purity term is then 1; the nearest target is dropped even when targets are not the
  origins (``drop_self_only=True`` drops it only when they are); ``eps`` 1e-7 in every ratio.

The episode losses of the reference's ``--losses`` flag (``cross``, ``suppicnn``, ``queryicnn``,
``fullicnn``, ``prototriplet``), averaged over the chosen terms, are :class:`FewShotLossCombo`;
:func:`episode_prototypes` and :func:`protonet_logits` are the Prototypical-Network pieces (logits
``-||q - c_k||^2 / T``).

:class:`ProtoTripletLoss` and :class:`ICNNLoss` are pytorch-metric-learning (PML) ``BaseMetricLossFunction``
losses: ``loss(embeddings, labels)`` uses the batch itself (Proto-Triplet: prototypes = the class means of the
batch; ICNN: targets = the batch), ``loss(queries, query_labels, ref_emb=supports, ref_labels=support_labels)``
is the episode form (Proto-Triplet: prototypes = class means of ``ref_emb``; ICNN: ``queryicnn``). Both are
vectorised: one distance matrix, a ``topk`` and masked reductions, O(B^2) memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import BaseDistance
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import nn

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

__all__ = [
    "FEW_SHOT_TERMS",
    "FewShotLossCombo",
    "ICNNLoss",
    "ProtoTripletLoss",
    "SusanaDistance",
    "episode_prototypes",
    "icnn_loss",
    "icnn_score",
    "proto_triplet_loss",
    "protonet_logits",
    "susana_distance",
]

DIST_EPS = 1e-6
"""Added under the square root of the squared Euclidean distance (the reference's distance)."""
RATIO_EPS = 1e-7
"""The reference's epsilon in every ratio of the ICNN score."""
FEW_SHOT_TERMS = ("cross", "suppicnn", "queryicnn", "fullicnn", "prototriplet")
"""Loss names of the reference's ``--losses`` flag."""

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "margin": [Interval(float, 0, math.inf, closed="left")],
    "k": [Interval(int, 1, math.inf, closed="left")],
    "ipc": [Interval(int, 1, math.inf, closed="left"), None],
    "temperature": [Interval(float, 0, math.inf, closed="neither")],
    "k_shot": [Interval(int, 1, math.inf, closed="left"), None],
    "reduction": [Options(REDUCTIONS)],
}
"""Scalar parameters of this module (see :func:`paperzoo._validation.validate_params`)."""


# --------------------------------------------------------------------------- distance
def susana_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``D(u_i, v_j) = sqrt(||u_i - v_j||^2 + 1e-6)``, the (n, m) distance matrix of both losses.

    Squared distances by the expansion ``|u|^2 + |v|^2 - 2 u.v`` (clamped at 0), so one matmul.
    """
    sq = (u * u).sum(1)[:, None] + (v * v).sum(1)[None, :] - 2.0 * (u @ v.T)
    return (sq.clamp_min(0.0) + DIST_EPS).sqrt()


class SusanaDistance(BaseDistance):
    """The paper's distance ``sqrt(||u - v||^2 + 1e-6)`` as a PML distance (no normalisation by default)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("normalize_embeddings", False)
        super().__init__(**kwargs)
        if self.is_inverted:
            raise ValueError("SusanaDistance is a distance: is_inverted must be False")

    def compute_mat(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        return susana_distance(query_emb, ref_emb)

    def pairwise_distance(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        return ((query_emb - ref_emb).pow(2).sum(-1) + DIST_EPS).sqrt()


# --------------------------------------------------------------------------- validation helpers
def _check_set(x: torch.Tensor, labels: torch.Tensor, name: str, labels_name: str, dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (n, D)")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n, D), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"empty set: {name} has 0 rows")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns, got shape {tuple(x.shape)}")
    check_finite(x, name)
    check_labels(labels, x.shape[0], labels_name)


def _class_index(labels: torch.Tensor, classes: torch.Tensor, name: str, classes_name: str) -> torch.Tensor:
    """Position of each label in the sorted ``classes``; a label absent from ``classes`` is an error."""
    pos = torch.searchsorted(classes, labels).clamp_max(classes.numel() - 1)
    missing = classes[pos] != labels
    if bool(missing.any()):
        absent = sorted(set(labels[missing].tolist()))
        raise ValueError(f"{name} has classes {absent} that are absent from {classes_name}")
    return pos


# --------------------------------------------------------------------------- prototypes and ProtoNet
def _class_means(x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(class means (C, D), sorted classes (C,), counts (C,)) by one ``index_add``."""
    classes, inverse, counts = torch.unique(labels, sorted=True, return_inverse=True, return_counts=True)
    sums = torch.zeros(classes.numel(), x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, inverse, x)
    return sums / counts[:, None].to(x.dtype), classes, counts


def episode_prototypes(
    support: torch.Tensor, support_labels: torch.Tensor, k_shot: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prototypes ``c_k`` = mean of the support embeddings of class ``k`` (Prototypical Networks).

    Args:
        support: (N*K, D) support embeddings.
        support_labels: (N*K,) integer labels (any order, any ids).
        k_shot: if given, every class must have exactly ``k_shot`` support images; if ``None``, every
            class must have the same number.

    Returns:
        ``(prototypes (N, D), classes (N,))`` with classes sorted ascending.
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"k_shot": k_shot}, owner="episode_prototypes")
    _check_set(support, support_labels, "support", "support_labels")
    protos, classes, counts = _class_means(support, support_labels.to(support.device))
    want = int(counts[0]) if k_shot is None else int(k_shot)
    if bool((counts != want).any()):
        sizes = dict(zip(classes.tolist(), counts.tolist()))
        raise ValueError(
            f"support_labels: every class needs exactly K = {want} support images, got per-class counts {sizes}"
        )
    return protos, classes


def protonet_logits(query: torch.Tensor, prototypes: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Prototypical-Network logits ``z_qk = -||f(q) - c_k||^2 / T`` (Q, N)."""
    validate_params(_PARAMETER_CONSTRAINTS, {"temperature": temperature}, owner="protonet_logits")
    sq = (query * query).sum(1)[:, None] + (prototypes * prototypes).sum(1)[None, :] - 2.0 * (query @ prototypes.T)
    return -sq.clamp_min(0.0) / float(temperature)


# --------------------------------------------------------------------------- Proto-Triplet
def _proto_triplet_core(
    dist: torch.Tensor, query_idx: torch.Tensor, margin: float, inverted: bool = False
) -> torch.Tensor:
    """Per-query hinge from the (Q, N) distance (or similarity, ``inverted``) matrix to the prototypes and
    each query's prototype position."""
    own = F.one_hot(query_idx, dist.shape[1]).bool()
    pos = dist.gather(1, query_idx[:, None])[:, 0]
    if inverted:
        neg = dist.masked_fill(own, -math.inf).amax(1)
        violation = neg - pos + margin
    else:
        # the reference treats a different-class distance of exactly 0 as +inf
        neg = dist.masked_fill(own | (dist == 0), math.inf).amin(1)
        violation = pos - neg + margin
    has_neg = torch.isfinite(neg)
    return torch.where(has_neg, violation.clamp_min(0.0), torch.zeros_like(pos))


def proto_triplet_loss(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    prototypes: torch.Tensor,
    prototype_labels: torch.Tensor | None = None,
    margin: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Proto-Triplet loss ``mean_q max(0, D(q, c_y) - min_{k != y} D(q, c_k) + m)``.

    Args:
        queries: (Q, D) query embeddings.
        query_labels: (Q,) their labels; each must be one of ``prototype_labels``.
        prototypes: (N, D) one prototype per class.
        prototype_labels: (N,) distinct class ids of the prototypes; default ``0..N-1``.
        margin: ``m`` (paper: 0.5).
        reduction: "mean", "sum" or "none" (the (Q,) per-query hinges).

    A query whose episode has a single prototype has no negative and contributes 0.
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"margin": margin, "reduction": reduction}, owner="proto_triplet_loss")
    _check_set(queries, query_labels, "queries", "query_labels")
    if prototype_labels is None:
        prototype_labels = torch.arange(prototypes.shape[0] if isinstance(prototypes, torch.Tensor) else 0)
    _check_set(prototypes, prototype_labels, "prototypes", "prototype_labels", dim=queries.shape[1])
    plabels = prototype_labels.to(queries.device)
    classes, order = torch.sort(plabels)
    if bool((classes[1:] == classes[:-1]).any()):
        raise ValueError("prototype_labels must be distinct (one prototype per class)")
    idx = order[_class_index(query_labels.to(queries.device), classes, "query_labels", "prototype_labels")]
    per_query = _proto_triplet_core(susana_distance(queries, prototypes), idx, float(margin))
    return reduce_loss(per_query, reduction)


class _SusanaLoss(BaseMetricLossFunction):
    """What both losses share: the paper's :class:`SusanaDistance` by default and the
    boundary validation before PML's ``forward``."""

    def get_default_distance(self) -> BaseDistance:
        return SusanaDistance()

    def forward(  # type: ignore[override]
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _validate_metric_inputs(embeddings, labels, ref_emb, ref_labels)
        return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)


class ProtoTripletLoss(_SusanaLoss):
    """Proto-Triplet loss (query anchor, own prototype positive, nearest other prototype negative), a PML loss.

    ``forward(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None)``:

    * episode form: ``embeddings`` = queries, ``ref_emb`` / ``ref_labels`` = the support set (or the
      prototypes themselves, one per class): the prototypes are the class means of ``ref_emb``; every query
      class must be among ``ref_labels``;
    * batch form (no ``ref_emb``, e.g. in ``paperzoo compare --task retrieval``): the prototypes are the class
      means of the batch itself;
    * with an ``indices_tuple`` (a PML miner's output) only its anchors contribute.

    Per-query losses are reduced by PML's reducer (default: mean over queries). ``distance`` defaults to
    :class:`SusanaDistance`; a PML similarity (``is_inverted``) gives ``max(0, s_neg - s_pos + m)``.

    Args:
        margin: ``m`` (paper: 0.5).
        **kwargs: PML's ``distance``, ``reducer``, ``embedding_regularizer``, ...
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {"margin": _PARAMETER_CONSTRAINTS["margin"]}

    def __init__(self, margin: float = 0.5, **kwargs: Any) -> None:
        validate_params(self._parameter_constraints, {"margin": margin}, owner=type(self).__name__)
        super().__init__(**kwargs)
        self.margin = float(margin)
        self.add_to_recordable_attributes(list_of_names=["margin"], is_stat=False)

    def compute_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: Any,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
    ) -> dict[str, Any]:
        protos, classes, _ = _class_means(ref_emb, ref_labels.to(ref_emb.device))
        ref_name = "labels" if ref_labels is labels else "ref_labels"
        idx = _class_index(labels.to(embeddings.device), classes, "labels", ref_name)
        anchors = torch.arange(embeddings.shape[0], device=embeddings.device)
        if indices_tuple is not None:
            anchors = torch.unique(indices_tuple[0].to(embeddings.device))
        mat = self.distance(embeddings[anchors], protos)
        losses = _proto_triplet_core(mat, idx[anchors], self.margin, inverted=self.distance.is_inverted)
        return {"loss": {"losses": losses, "indices": anchors, "reduction_type": "element"}}


# --------------------------------------------------------------------------- ICNN score
def _resolve_k(k: int, ipc: int | None, m: int, drop_first: bool, owner: str) -> tuple[int, int]:
    """The reference's neighbourhood sizes: ``k <- m - 2`` if ``k + 2 >= m``; ``ipc`` defaults to ``k + 1``."""
    if m < 3:
        raise ValueError(f"{owner}: the ICNN score needs at least 3 target embeddings, got {m}")
    if k + 2 >= m:
        k = m - 2
    ipc = k + 1 if ipc is None else int(ipc)
    if ipc < k:
        raise ValueError(f"{owner}: ipc must be >= k = {k} (after the reduction of k), got {ipc}")
    need = ipc + 1 if drop_first else ipc
    if need > m:
        raise ValueError(f"{owner}: ipc = {ipc} needs {need} target embeddings (the nearest is dropped), got only {m}")
    return k, ipc


def _neighbours_from_matrix(dist: torch.Tensor, n_take: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n_take`` nearest targets of each origin (ascending) from an (n, m) distance matrix."""
    vals, idx = torch.topk(dist, n_take, dim=1, largest=False, sorted=True)
    return vals, idx


def _neighbours_susana(origin: torch.Tensor, target: torch.Tensor, n_take: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Same as ``_neighbours_from_matrix(susana_distance(origin, target), n_take)``, faster: the neighbours are
    chosen on a squared-distance matrix built without autograd (the order is the same, D being monotone in it),
    then only the chosen (n, n_take) distances are computed differentiably, so no (n, m) tensor is kept for
    backward."""
    with torch.no_grad():
        sq = torch.addmm(
            (origin * origin).sum(1)[:, None] + (target * target).sum(1)[None, :], origin, target.T, alpha=-2.0
        )
        idx = torch.topk(sq, n_take, dim=1, largest=False, sorted=True).indices
        del sq
    picked = target.index_select(0, idx.reshape(-1)).view(idx.shape[0], n_take, -1)  # backward: index_add_
    vals = ((origin[:, None, :] - picked).pow(2).sum(-1) + DIST_EPS).sqrt()
    return vals, idx


def _icnn_score_core(
    vals: torch.Tensor,
    idx: torch.Tensor,
    labels: torch.Tensor,
    target_labels: torch.Tensor,
    k: int,
    m: int,
    drop_first: bool,
) -> torch.Tensor:
    """The reference's ``modified_score`` from each origin's nearest targets (distances ``vals`` and indices
    ``idx``, ascending, ``ipc (+1)`` per origin; ``k`` already resolved; ``m`` targets in all)."""
    lam_pos, lam_neg, gamma = _icnn_terms(vals, idx, labels, target_labels, k, m, drop_first)
    return ((lam_pos + lam_neg) / 2.0 + gamma) / 2.0


def _icnn_terms(
    vals: torch.Tensor,
    idx: torch.Tensor,
    labels: torch.Tensor,
    target_labels: torch.Tensor,
    k: int,
    m: int,
    drop_first: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three terms of the score: intra-class ``Lambda+``, inter-class ``Lambda-`` and purity ``Gamma``."""
    if drop_first:
        vals, idx = vals[:, 1:], idx[:, 1:]
    same = target_labels[idx] == labels[:, None]  # s_it, (n, ipc)
    nu = vals.masked_fill(same, math.inf).amin(1)  # nearest different-class neighbour (inf if none)
    vk, sk = vals[:, :k], same[:, :k]
    ok = ~sk
    sk_f, ok_f = sk.to(vals.dtype), ok.to(vals.dtype)
    # intra-class term
    r = vk / (nu[:, None] + RATIO_EPS)
    r_hat = r / r.amax(1, keepdim=True).clamp_min(1.0)
    n_pos = sk_f.sum(1)
    a = (sk_f * r_hat).sum(1) / (n_pos + RATIO_EPS)
    lam_pos = 1.0 - a.sum() / ((n_pos > 0).sum() + RATIO_EPS)
    # inter-class term (one global max)
    e = ok_f * vk
    e_hat = e / (e.amax() + RATIO_EPS)
    n_neg = ok_f.sum(1)
    b = e_hat.sum(1) / (n_neg + RATIO_EPS)
    c = 0.0 if bool(ok.any()) else -1.0
    lam_neg = (b.sum() / ((n_neg > 0).sum() + RATIO_EPS) + c).abs()
    gamma = (n_pos / k).mean() if k + 2 < m else torch.ones((), dtype=vals.dtype, device=vals.device)
    return lam_pos, lam_neg, gamma


def icnn_score(
    origin: torch.Tensor,
    origin_labels: torch.Tensor,
    target: torch.Tensor | None = None,
    target_labels: torch.Tensor | None = None,
    k: int = 4,
    ipc: int | None = None,
    *,
    drop_self_only: bool = False,
) -> torch.Tensor:
    """The ICNN score in (0, 1] (the reference's ``modified_score``; 1 = tight, well-separated classes).

    Args:
        origin: (n, D) embeddings whose neighbourhoods are scored; ``origin_labels`` (n,).
        target: (m, D) embeddings searched for neighbours (default: ``origin``); ``target_labels`` (m,).
        k: neighbourhood size (reduced to ``m - 2`` when ``k + 2 >= m``; the purity term is then 1).
        ipc: neighbours kept per origin (default ``k + 1`` after the reduction); the nearest different-class
            neighbour is searched among them.
        drop_self_only: the reference always drops each origin's nearest target (its self-match when
            ``target`` is ``origin``); ``True`` drops it only when no ``target`` is given.
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"k": k, "ipc": ipc}, owner="icnn_score")
    _check_set(origin, origin_labels, "origin", "origin_labels")
    is_self = target is None
    if target is None:
        if target_labels is not None:
            raise ValueError("target_labels given without target")
        target, target_labels = origin, origin_labels
    elif target_labels is None:
        raise ValueError("target_labels are required with target")
    _check_set(target, target_labels, "target", "target_labels", dim=origin.shape[1])
    drop_first = is_self or not drop_self_only
    m = target.shape[0]
    kk, ipc_ = _resolve_k(int(k), ipc, m, drop_first, "icnn_score")
    vals, idx = _neighbours_susana(origin, target, ipc_ + 1 if drop_first else ipc_)
    dev = origin.device
    return _icnn_score_core(vals, idx, origin_labels.to(dev), target_labels.to(dev), kk, m, drop_first)


def icnn_loss(
    origin: torch.Tensor,
    origin_labels: torch.Tensor,
    target: torch.Tensor | None = None,
    target_labels: torch.Tensor | None = None,
    k: int = 4,
    ipc: int | None = None,
    *,
    drop_self_only: bool = False,
) -> torch.Tensor:
    """ICNN loss ``-log icnn_score(...)`` (>= 0; arguments as :func:`icnn_score`)."""
    return -torch.log(icnn_score(origin, origin_labels, target, target_labels, k, ipc, drop_self_only=drop_self_only))


def _validate_metric_inputs(
    embeddings: torch.Tensor,
    labels: torch.Tensor | None,
    ref_emb: torch.Tensor | None,
    ref_labels: torch.Tensor | None,
) -> None:
    check_embeddings_labels(embeddings, labels)
    if labels is None:
        raise ValueError("labels are required (the losses need each embedding's class)")
    if ref_emb is None:
        if ref_labels is not None:
            raise ValueError("ref_labels given without ref_emb")
        return
    if ref_labels is None:
        raise ValueError("ref_labels are required with ref_emb")
    _check_set(ref_emb, ref_labels, "ref_emb", "ref_labels", dim=embeddings.shape[1])


class ICNNLoss(_SusanaLoss):
    """ICNN loss ``-log score`` (:func:`icnn_score`), a PML loss.

    ``forward(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None)``: origins =
    ``embeddings``; targets = ``ref_emb`` (the reference's ``queryicnn`` with queries as embeddings and the
    support set or the prototypes as ``ref_emb``) or the batch itself (``suppicnn`` / ``fullicnn``, and
    ``paperzoo compare --task retrieval``). With an ``indices_tuple`` (a PML miner's output) the origins are
    its anchors, the targets stay the whole reference set. The loss is batch-level (PML reduction
    "already_reduced": reducers pass it through).

    Args:
        k: neighbourhood size (default 4).
        ipc: neighbours kept per origin (default ``k + 1``); ``fullicnn`` uses shot + queries per class.
        drop_self_only: drop the nearest target only when targets are the origins (the reference always drops
            it).
        **kwargs: PML's ``reducer``, ``embedding_regularizer``, ``distance`` (a distance, not a similarity;
            default :class:`SusanaDistance`).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("k", "ipc")
    }

    def __init__(self, k: int = 4, ipc: int | None = None, drop_self_only: bool = False, **kwargs: Any) -> None:
        validate_params(self._parameter_constraints, {"k": k, "ipc": ipc}, owner=type(self).__name__)
        super().__init__(**kwargs)
        if self.distance.is_inverted:
            raise ValueError("ICNNLoss: distance must be a distance (is_inverted=False), not a similarity")
        self.k = int(k)
        self.ipc = None if ipc is None else int(ipc)
        self.drop_self_only = bool(drop_self_only)
        self.add_to_recordable_attributes(list_of_names=["k"], is_stat=False)

    def compute_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: Any,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
    ) -> dict[str, Any]:
        is_self = ref_emb is embeddings
        drop_first = is_self or not self.drop_self_only
        k, ipc = _resolve_k(self.k, self.ipc, ref_emb.shape[0], drop_first, type(self).__name__)
        origins = embeddings
        labels = labels.to(embeddings.device)
        if indices_tuple is not None:
            anchors = torch.unique(lmu.convert_to_pairs(indices_tuple, labels, ref_labels)[0].to(embeddings.device))
            origins, labels = embeddings[anchors], labels[anchors]
        n_take = ipc + 1 if drop_first else ipc
        d = self.distance
        if type(d) is SusanaDistance and d.power == 1 and not d.normalize_embeddings:
            vals, idx = _neighbours_susana(origins, ref_emb, n_take)
        else:
            vals, idx = _neighbours_from_matrix(d(origins, ref_emb), n_take)
        m = ref_emb.shape[0]
        score = _icnn_score_core(vals, idx, labels, ref_labels.to(embeddings.device), k, m, drop_first)
        return {"loss": {"losses": -torch.log(score), "indices": None, "reduction_type": "already_reduced"}}


# --------------------------------------------------------------------------- episode combination
class FewShotLossCombo(nn.Module):
    """The reference's episode loss: the average of the chosen terms (its ``--losses`` flag).

    Terms: ``"cross"`` (ProtoNet cross-entropy on :func:`protonet_logits`), ``"suppicnn"`` (ICNN on the
    support set), ``"queryicnn"`` (ICNN, queries as origins, the support set, or the prototypes with
    ``query_protos=True``, as targets), ``"fullicnn"`` (ICNN on support + queries with ``ipc`` = shot + queries
    per class), ``"prototriplet"`` (:func:`proto_triplet_loss`).

    ``forward(support (N*K, D), support_labels (N*K,), query (Q, D), query_labels (Q,))`` returns the scalar
    average. Every class must have ``k_shot`` support images (or, if ``k_shot`` is None, the same number)
    and every query class must be in the support set.

    Args:
        terms: the loss names (distinct, at least one).
        margin: Proto-Triplet margin (0.5).
        k: ICNN neighbourhood size (4).
        temperature: ProtoNet temperature ``T`` (1).
        query_protos: ``queryicnn`` uses the prototypes as targets.
        k_shot: the expected shot, or None.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("margin", "k", "temperature", "k_shot")
    }

    def __init__(
        self,
        terms: Sequence[str] = ("cross", "prototriplet", "fullicnn"),
        margin: float = 0.5,
        k: int = 4,
        temperature: float = 1.0,
        query_protos: bool = False,
        k_shot: int | None = None,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"margin": margin, "k": k, "temperature": temperature, "k_shot": k_shot},
            owner=type(self).__name__,
        )
        terms = tuple(terms) if not isinstance(terms, str) else tuple(t.strip() for t in terms.split(","))
        bad = [t for t in terms if t not in FEW_SHOT_TERMS]
        if not terms or bad or len(set(terms)) != len(terms):
            raise ValueError(f"terms must be distinct names among {FEW_SHOT_TERMS}, got {terms}")
        self.terms = terms
        self.margin, self.k, self.temperature = float(margin), int(k), float(temperature)
        self.query_protos, self.k_shot = bool(query_protos), k_shot

    def extra_repr(self) -> str:
        return f"terms={self.terms}, margin={self.margin}, k={self.k}, temperature={self.temperature}"

    def term_values(
        self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Each chosen term's value."""
        protos, classes = episode_prototypes(support, support_labels, self.k_shot)
        _check_set(query, query_labels, "query", "query_labels", dim=support.shape[1])
        query_labels = query_labels.to(query.device)
        support_labels = support_labels.to(support.device)
        q_idx = _class_index(query_labels, classes, "query_labels", "support_labels")
        out: dict[str, torch.Tensor] = {}
        for term in self.terms:
            if term == "cross":
                out[term] = F.cross_entropy(protonet_logits(query, protos, self.temperature), q_idx)
            elif term == "prototriplet":
                out[term] = _proto_triplet_core(susana_distance(query, protos), q_idx, self.margin).mean()
            elif term == "suppicnn":
                out[term] = icnn_loss(support, support_labels, k=self.k)
            elif term == "queryicnn":
                if self.query_protos:
                    out[term] = icnn_loss(query, query_labels, protos, classes, k=self.k)
                else:
                    out[term] = icnn_loss(query, query_labels, support, support_labels, k=self.k)
            else:  # fullicnn
                labels = torch.cat([support_labels, query_labels])
                per_class = torch.unique(labels, return_counts=True)[1]
                out[term] = icnn_loss(torch.cat([support, query]), labels, k=self.k, ipc=int(per_class.min()))
        return out

    def forward(
        self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor
    ) -> torch.Tensor:
        values = self.term_values(support, support_labels, query, query_labels)
        return torch.stack(list(values.values())).sum() / len(values)


# --------------------------------------------------------------------------- references (tests, bench)
def _reference_icnn_score(
    origin: torch.Tensor,
    origin_labels: torch.Tensor,
    target: torch.Tensor | None = None,
    target_labels: torch.Tensor | None = None,
    k: int = 4,
    ipc: int | None = None,
) -> torch.Tensor:
    """The reference's ``modified_score`` written naively (a loop over origins; tests only)."""
    if target is None:
        target, target_labels = origin, origin_labels
    assert target_labels is not None
    m = target.shape[0]
    if k + 2 >= m:
        k = m - 2
    if ipc is None:
        ipc = k + 1
    diff = origin[:, None, :] - target[None, :, :]
    dist = ((diff**2).sum(-1) + 1e-6) ** 0.5
    deltas, nbrs = [], []
    for i in range(origin.shape[0]):
        order = torch.argsort(dist[i])[: ipc + 1][1:]
        deltas.append(dist[i][order])
        nbrs.append(target_labels[order])
    delta, lab = torch.stack(deltas), torch.stack(nbrs)
    s = (lab == origin_labels[:, None]).to(origin.dtype)
    o = 1.0 - s
    a_terms, b_terms, n_pos_all = [], [], []
    big = torch.where(o[:, :k] > 0, delta[:, :k], torch.zeros_like(delta[:, :k])).max()
    for i in range(origin.shape[0]):
        diffs = [delta[i, t] for t in range(ipc) if o[i, t] > 0]
        nu = min(diffs) if diffs else torch.tensor(math.inf, dtype=origin.dtype)
        r = torch.stack([delta[i, t] / (nu + 1e-7) for t in range(k)])
        r = r / torch.clamp(r.max(), min=1.0)
        n_pos = s[i, :k].sum()
        a_terms.append((s[i, :k] * r).sum() / (n_pos + 1e-7))
        n_pos_all.append(n_pos)
        e = o[i, :k] * delta[i, :k] / (big + 1e-7)
        b_terms.append((e.sum() / (o[i, :k].sum() + 1e-7), o[i, :k].sum()))
    n_pos_t = torch.stack(n_pos_all)
    lam_pos = 1 - torch.stack(a_terms).sum() / ((n_pos_t > 0).sum() + 1e-7)
    n_neg_t = torch.stack([nn_ for _, nn_ in b_terms])
    c = 0.0 if bool((o[:, :k] > 0).any()) else -1.0
    lam_neg = abs(torch.stack([b for b, _ in b_terms]).sum() / ((n_neg_t > 0).sum() + 1e-7) + c)
    gamma = (n_pos_t / k).mean() if k + 2 < m else 1.0
    return ((lam_pos + lam_neg) / 2 + gamma) / 2


def _reference_proto_triplet(
    queries: torch.Tensor, query_labels: torch.Tensor, prototypes: torch.Tensor, margin: float = 0.5
) -> torch.Tensor:
    """Proto-Triplet written naively (a loop over queries; tests only)."""
    out = []
    for q, y in zip(queries, query_labels.tolist()):
        d = ((prototypes - q) ** 2).sum(1).add(1e-6).sqrt()
        others = [d[j] for j in range(prototypes.shape[0]) if j != y]
        out.append(torch.clamp(d[y] - min(others) + margin, min=0.0))
    return torch.stack(out).mean()


def pml_batch_hard_triplet() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """PML's ``TripletMarginLoss(margin=0.5)`` on ``BatchHardMiner`` triplets (per anchor: hardest positive,
    hardest negative): the nearest PML loss to Proto-Triplet (one hinge per anchor against its hardest
    negative; PML 2.9 exports no centroid triplet loss); the benchmark's reference."""
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner

    loss, miner = TripletMarginLoss(margin=0.5), BatchHardMiner()

    def reference(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return loss(emb, labels, miner(emb, labels))

    return reference


def pml_nca() -> nn.Module:
    """PML's ``NCALoss``: the nearest PML loss to ICNN (a neighbourhood-based loss over the B x B distance
    matrix); the benchmark's reference."""
    from pytorch_metric_learning.losses import NCALoss

    return NCALoss()
