"""Metrix: mixup for deep metric learning, from Venkataramanan, Psomas, Kijak, Amsaleg, Karantzalos &
Avrithis, "It Takes Two to Tango: Mixup for Deep Metric Learning" (ICLR 2022, arXiv:2106.04990).

A pair-based loss is, for every anchor ``a``, a function of its similarities to its positives and to its
negatives: ``l(a) = tau(sigma+(P(a)) + sigma-(N(a)))``. Metrix generalises it to *mixed* examples ``v``
that carry a soft positivity ``y_v in [0, 1]`` w.r.t. the anchor: the positive part of the loss is
weighted by ``y_v``, the negative part by ``1 - y_v``. A mixed example interpolates a positive ``p``
and a negative ``n`` of the anchor, ``v = lam p + (1 - lam) n`` with ``y_v = lam`` and one
``lam ~ Beta(alpha, alpha)`` per iteration (``alpha = 2``), and the objective is
``L = L_clean + w L_mix`` (``w = 0.4``). This module holds the *embedding* variant (``v`` mixes the
final embeddings) and the mixed losses the input / feature variants need
(:meth:`MetrixLoss.mixed_loss`; the procedures are in :mod:`paperzoo.training.metrix`).

Mixed losses (``d`` / ``s`` the wrapped loss's distance / similarity between the *clean* anchor
embedding and the mixed one):

* contrastive (exactly the official code): positive terms ``lam [d(a, v) - m+]_+``, negative terms
  ``(1 - lam) [m- - d(a, v)]_+``, each part averaged over its non-zero terms (PML's
  ``AvgNonZeroReducer``), the two parts summed;
* multi-similarity (the paper's weighted form; the official multi-similarity code differs, see the
  card): per anchor ``(1/alpha) log(1 + sum_v y_v e^{-alpha (s(a,v) - base)})
  + (1/beta) log(1 + sum_v (1 - y_v) e^{beta (s(a,v) - base)})``, averaged over the anchors of the batch.

:class:`MetrixLoss` is a thin wrapper around a clean pytorch-metric-learning loss (PML's
``ContrastiveLoss`` or ``MultiSimilarityLoss``, or :class:`paperzoo.losses.MultiSimilarityLoss`): the
clean term is that loss called unchanged (so miners, reducers, ``ref_emb`` reach it); the mixed term
is new. It is vectorised through the Gram matrix: with ``v = lam e_p + (1 - lam) e_n``,
``a.v = lam G_ap + (1 - lam) G_an`` and ``|v|^2 = lam^2 G_pp + (1 - lam)^2 G_nn + 2 lam (1 - lam) G_pn``,
so no mixed embedding is materialised: memory is O(B^2 K) scalars for K images per class.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity, DotProductSimilarity, LpDistance
from pytorch_metric_learning.losses import BaseMetricLossFunction, ContrastiveLoss
from pytorch_metric_learning.losses import MultiSimilarityLoss as PMLMultiSimilarityLoss

from paperzoo._validation import (
    Constraint,
    Interval,
    check_embeddings_labels,
    check_finite,
    check_labels,
    validate_params,
)
from paperzoo.losses.multi_similarity import MultiSimilarityLoss

__all__ = [
    "MetrixContrastiveLoss",
    "MetrixLoss",
    "MetrixMultiSimilarityLoss",
    "metrix_mixed_loss",
    "mix_pairs",
    "pml_contrastive_reference",
    "utilization",
]

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "w": [Interval(float, 0, math.inf, closed="left")],
    "mix_alpha": [Interval(float, 0, math.inf, closed="neither")],
    "lam": [Interval(float, 0, 1, closed="both"), None],
    "top_k": [Interval(int, 1, math.inf, closed="left"), None],
}
"""Scalar parameters of this module (see :func:`paperzoo._validation.validate_params`)."""

_SQRT_EPS = 1e-12  # floor of squared distances under the square root (finite gradient at d = 0)


# --------------------------------------------------------------------------- index generation
def _positive_slots(same: torch.Tensor, legacy_first_positive: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded positive lists of a (B, R) positive mask: ``idx`` (B, S) column indices in ascending
    order, ``valid`` (B, S) and ``mult`` (B, S) multiplicities (1, or |P(a)| for the first positive in
    legacy mode, where the official loop repeats it once per positive pair)."""
    count = same.sum(1)
    slots = max(int(count.max()) if count.numel() else 0, 1)
    # stable sort puts the positive columns first, in index order
    idx = torch.sort((~same).to(torch.int8), dim=1, stable=True).indices[:, :slots]
    valid = torch.arange(slots, device=same.device)[None, :] < count[:, None]
    mult = valid.to(torch.long)
    if legacy_first_positive:
        idx, valid = idx[:, :1], valid[:, :1]
        mult = torch.where(valid, count[:, None], torch.zeros_like(count[:, None]))
    return idx, valid, mult


def mix_pairs(
    labels: torch.Tensor,
    mode: str = "pos_neg",
    top_k: int | None = None,
    clean_dist: torch.Tensor | None = None,
    *,
    legacy_first_positive: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index triples ``(anchor, pos, neg)`` of the examples to mix (the paper's pair selection for mixing).

    * ``mode="pos_neg"``: for every anchor ``a`` with positives, every positive ``p`` (``y_p = y_a``,
      ``p != a``) and every negative ``n`` (``y_n != y_a``): the mixed example is
      ``lam x_p + (1 - lam) x_n`` with positivity ``lam``;
    * ``mode="anc_neg"``: for every anchor *without* positives and every negative ``n``: ``pos = a``
      (the anchor itself is mixed with the negative).

    Order: anchors ascending, then positives ascending, then negatives ascending. With ``top_k``,
    only the ``top_k`` hardest negatives of each anchor (smallest ``clean_dist[a, n]``; pass
    ``-similarity`` for a similarity) are used, as in the official input variant (``top_k = 1``).
    ``legacy_first_positive=True`` reproduces the official loop: each positive pair of an anchor
    yields the triples of the anchor's *first* positive, so ``(a, p_first, n)`` appears ``|P(a)|``
    times. Without ``top_k`` the number of triples is ``sum_a |P(a)| |N(a)|`` in both modes.

    Args:
        labels: (B,) integer labels.
        mode: "pos_neg" or "anc_neg".
        top_k: hardest negatives kept per anchor, or None for all.
        clean_dist: (B, B) distances of the clean embeddings (needed with ``top_k``).
        legacy_first_positive: see above.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype.is_floating_point:
        raise ValueError("labels must be a 1-D integer tensor")
    if mode not in ("pos_neg", "anc_neg"):
        raise ValueError(f"mode must be 'pos_neg' or 'anc_neg', got {mode!r}")
    validate_params(_PARAMETER_CONSTRAINTS, {"top_k": top_k}, owner="mix_pairs")
    b = labels.shape[0]
    device = labels.device
    same = labels[:, None] == labels[None, :]
    neg = ~same
    same = same & ~torch.eye(b, dtype=torch.bool, device=device)
    if top_k is not None:
        if clean_dist is None:
            raise ValueError("clean_dist is required with top_k")
        if not isinstance(clean_dist, torch.Tensor) or clean_dist.shape != (b, b):
            raise ValueError(f"clean_dist must be a ({b}, {b}) tensor")
        check_finite(clean_dist, "clean_dist")
        k = min(int(top_k), b)
        hard = clean_dist.detach().masked_fill(~neg, math.inf).topk(k, dim=1, largest=False).indices
        keep = torch.zeros_like(neg)
        keep.scatter_(1, hard, True)
        neg = neg & keep
    if mode == "anc_neg":
        no_pos = ~same.any(1)
        a, n = torch.nonzero(no_pos[:, None] & neg, as_tuple=True)
        return a, a.clone(), n
    idx, valid, mult = _positive_slots(same, legacy_first_positive)
    mask = valid[:, :, None] & neg[:, None, :]
    a, s, n = torch.nonzero(mask, as_tuple=True)
    p = idx[a, s]
    if legacy_first_positive:
        reps = mult[a, s]
        a, p, n = a.repeat_interleave(reps), p.repeat_interleave(reps), n.repeat_interleave(reps)
        # order: anchor, then repetition (one per positive pair), then negative
        key = torch.arange(a.numel(), device=device)
        first = torch.cumsum(reps, 0) - reps
        rep_no = key - first.repeat_interleave(reps)
        order = torch.argsort(a * (b * (b + 1)) + rep_no * (b + 1) + n, stable=True)
        a, p, n = a[order], p[order], n[order]
    return a, p, n


# --------------------------------------------------------------------------- mixed losses (trusted inputs)
def _weighted_log1p_sum_exp(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Row-wise ``log(1 + sum_j weight_ij exp(x_ij))`` (``weight >= 0``; zero weights drop the term)."""
    keep = weight > 0
    xm = x.masked_fill(~keep, -math.inf)
    shift = xm.amax(1).clamp_min(0.0).detach()
    total = (weight * torch.exp(xm - shift[:, None])).sum(1)
    return shift + torch.log(torch.exp(-shift) + total)


def _contrastive_mixed(
    mat: torch.Tensor,
    y: torch.Tensor | float,
    mult: torch.Tensor,
    distance: Any,
    pos_margin: float,
    neg_margin: float,
) -> torch.Tensor:
    """Mixed contrastive loss of the official code: ``y [d - m+]_+`` and ``(1 - y) [m- - d]_+``, each
    averaged over its non-zero terms (with multiplicities ``mult``, 0 for padding), summed."""
    out = mat.new_zeros(())
    for hinge, weight in (
        (F.relu(distance.margin(mat, pos_margin)), y),
        (F.relu(distance.margin(neg_margin, mat)), 1.0 - y),
    ):
        if isinstance(weight, float):
            if weight == 0.0:  # the whole part is zero: no non-zero term
                out = out + hinge.sum() * 0.0
                continue
            part = hinge * mult
            total = part.sum() * weight
        else:
            part = hinge * weight * mult
            total = part.sum()
        count = torch.where(part > 0, mult, 0.0).sum()
        out = out + (total / count if float(count) > 0 else total * 0.0)
    return out


def _ms_mixed(
    mat: torch.Tensor,
    y: torch.Tensor | float,
    mult: torch.Tensor,
    distance: Any,
    alpha: float,
    beta: float,
    base: float,
    num_anchors: int,
) -> torch.Tensor:
    """Mixed multi-similarity loss (the paper's weighted form), rows of ``mat`` = anchors: the positive
    log-sum-exp weighted by ``y``, the negative one by ``1 - y``, summed over rows / ``num_anchors``."""
    pos_exp = distance.margin(mat, base)  # base - s for a similarity
    neg_exp = distance.margin(base, mat)  # s - base
    lp = _weighted_log1p_sum_exp(alpha * pos_exp, y * mult) / alpha
    ln = _weighted_log1p_sum_exp(beta * neg_exp, (1.0 - y) * mult) / beta
    return (lp + ln).sum() / num_anchors


def metrix_mixed_loss(
    mat: torch.Tensor,
    positivity: torch.Tensor | float,
    loss: BaseMetricLossFunction,
    *,
    multiplicity: torch.Tensor | None = None,
    num_anchors: int | None = None,
) -> torch.Tensor:
    """The Metrix mixed loss of ``loss``'s family from anchor-to-mixed distances / similarities.

    Args:
        mat: (A, M) values of ``loss.distance`` between clean anchor ``i`` (row) and its mixed examples
            (columns; pad with anything and give them ``multiplicity`` 0).
        positivity: the mixed examples' positivity ``y`` (a float, e.g. ``lam``, or a tensor broadcastable
            to ``mat``).
        loss: the clean loss whose generalisation is wanted: PML's ``ContrastiveLoss`` (its margins), PML's
            or paperzoo's ``MultiSimilarityLoss`` (its ``alpha``, ``beta``, ``base``).
        multiplicity: (A, M) non-negative counts of each term (default all 1).
        num_anchors: the divisor of the multi-similarity mean (default A).
    """
    if not isinstance(mat, torch.Tensor) or mat.dim() != 2:
        raise ValueError("mat must be a 2-D tensor (anchors, mixed examples)")
    check_finite(mat, "mat")
    y: torch.Tensor | float
    if isinstance(positivity, torch.Tensor):
        y = positivity.to(mat.dtype).expand_as(mat)
        bad = bool(((y < 0) | (y > 1) | torch.isnan(y)).any())
    else:
        y = float(positivity)
        bad = not 0.0 <= y <= 1.0
    if bad:
        raise ValueError("positivity must lie in [0, 1]")
    mult = torch.ones_like(mat) if multiplicity is None else multiplicity.to(mat.dtype).expand_as(mat)
    if bool((mult < 0).any()):
        raise ValueError("multiplicity must be non-negative")
    if isinstance(loss, ContrastiveLoss):
        return _contrastive_mixed(mat, y, mult, loss.distance, float(loss.pos_margin), float(loss.neg_margin))
    if isinstance(loss, (MultiSimilarityLoss, PMLMultiSimilarityLoss)):
        n = mat.shape[0] if num_anchors is None else int(num_anchors)
        return _ms_mixed(mat, y, mult, loss.distance, float(loss.alpha), float(loss.beta), float(loss.base), max(n, 1))
    raise TypeError(f"Metrix has a mixed form for ContrastiveLoss and MultiSimilarityLoss, got {type(loss).__name__}")


def _mixed_matrix(
    distance: Any,
    emb: torch.Tensor,
    ref: torch.Tensor,
    pos_idx: torch.Tensor,
    lam: float,
    normalize_mixed: bool,
) -> torch.Tensor:
    """(B, S, R) values of ``distance`` between clean anchor ``a`` and the mixed embedding
    ``lam r[pos_idx[a, s]] + (1 - lam) r[n]`` for every slot ``s`` and reference ``n``, from Gram
    matrices only (see the module docstring)."""
    if distance.normalize_embeddings:  # the anchor as the distance sees it; mixing uses the raw embeddings
        emb = F.normalize(emb, dim=1)
    g_ar = emb @ ref.T  # (B, R)
    g_rr = ref @ ref.T  # (R, R)
    sq_r = torch.diagonal(g_rr)  # (R,)
    g_ap = torch.gather(g_ar, 1, pos_idx)  # (B, S)
    g_pn = g_rr[pos_idx]  # (B, S, R)
    sq_p = sq_r[pos_idx]  # (B, S)
    mu = 1.0 - lam
    dot = lam * g_ap[:, :, None] + mu * g_ar[:, None, :]  # a . v
    sq_v = (lam * lam) * sq_p[:, :, None] + (mu * mu) * sq_r[None, None, :] + (2.0 * lam * mu) * g_pn
    if normalize_mixed:
        dot = dot / sq_v.clamp_min(_SQRT_EPS).sqrt()
    if isinstance(distance, LpDistance):
        sq_a = (emb * emb).sum(1)
        if normalize_mixed:  # |v| = 1
            d = ((sq_a + 1.0)[:, None, None] - 2.0 * dot).clamp_min(_SQRT_EPS).sqrt()
        else:
            d = (sq_a[:, None, None] + sq_v - 2.0 * dot).clamp_min(_SQRT_EPS).sqrt()
        return d**distance.power if distance.power != 1 else d
    # CosineSimilarity / DotProductSimilarity: the (normalised) dot product
    return dot**distance.power if distance.power != 1 else dot


# --------------------------------------------------------------------------- module
class MetrixLoss(BaseMetricLossFunction):
    """Metrix (Venkataramanan et al., ICLR 2022): ``L = L_clean + w L_mix`` around a clean pair-based
    loss, with embedding mixup (positive-negative mixing; anchor-negative mixing for anchors without
    positives), a pytorch-metric-learning ``BaseMetricLossFunction``.

    ``forward(embeddings (B, D), labels (B,), indices_tuple=None, ref_emb=None, ref_labels=None)``: the
    clean term is ``loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)`` unchanged; the mixed
    term mixes, for every anchor of ``embeddings``, its positives with its negatives among the
    reference set (``ref_emb`` if given, else the batch; the PML miner's ``indices_tuple`` only reaches
    the clean term, like the official code's clean / mixed split).

    Args:
        loss: the clean loss: PML ``ContrastiveLoss``, PML ``MultiSimilarityLoss`` or
            :class:`paperzoo.losses.MultiSimilarityLoss`, with a distance among ``LpDistance(p=2)``,
            ``CosineSimilarity`` and ``DotProductSimilarity``.
        w: weight of the mixed loss (paper: 0.4); 0 gives the clean loss exactly.
        mix_alpha: ``lam ~ Beta(mix_alpha, mix_alpha)`` (paper: 2), drawn once per call from torch's
            global generator.
        lam: a fixed ``lam`` in [0, 1] instead (tests, ablations).
        normalize_mixed: L2-normalise mixed embeddings before the distance; None (default) follows
            ``loss.distance.normalize_embeddings``, as PML distances do in the official code.
        legacy_first_positive: the official code's quirk (each anchor's first positive only, repeated
            once per positive pair; see :func:`mix_pairs`).
        anchor_negative: anchor-negative mixing for anchors without positives (the paper's intent;
            only without ``ref_emb``).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("w", "mix_alpha", "lam")
    }

    def __init__(
        self,
        loss: BaseMetricLossFunction,
        w: float = 0.4,
        mix_alpha: float = 2.0,
        lam: float | None = None,
        normalize_mixed: bool | None = None,
        legacy_first_positive: bool = False,
        anchor_negative: bool = True,
    ) -> None:
        validate_params(
            self._parameter_constraints, {"w": w, "mix_alpha": mix_alpha, "lam": lam}, owner=type(self).__name__
        )
        if not isinstance(loss, (ContrastiveLoss, MultiSimilarityLoss, PMLMultiSimilarityLoss)):
            raise TypeError(
                f"loss must be a ContrastiveLoss or a MultiSimilarityLoss (PML or paperzoo), got {type(loss).__name__}"
            )
        dist = loss.distance
        if not (
            (isinstance(dist, LpDistance) and dist.p == 2) or type(dist) in (CosineSimilarity, DotProductSimilarity)
        ):
            raise ValueError(
                "loss.distance must be LpDistance(p=2), CosineSimilarity or DotProductSimilarity, "
                f"got {type(dist).__name__}"
            )
        super().__init__(distance=dist, reducer=loss.reducer)
        self.loss = loss
        self.w = float(w)
        self.mix_alpha = float(mix_alpha)
        self.lam = None if lam is None else float(lam)
        self.normalize_mixed = normalize_mixed
        self.legacy_first_positive = bool(legacy_first_positive)
        self.anchor_negative = bool(anchor_negative)
        self.add_to_recordable_attributes(list_of_names=["w", "mix_alpha"], is_stat=False)

    # ------------------------------------------------------------------ helpers
    def sample_lam(self) -> float:
        """The iteration's ``lam``: the fixed one, else a draw of ``Beta(mix_alpha, mix_alpha)``."""
        if self.lam is not None:
            return self.lam
        a = torch.tensor(self.mix_alpha, dtype=torch.float64)
        return float(torch.distributions.Beta(a, a).sample())

    @property
    def normalizes_mixed(self) -> bool:
        """Whether mixed embeddings are L2-normalised before their distance to the anchor."""
        if self.normalize_mixed is None:
            return bool(self.loss.distance.normalize_embeddings)
        return bool(self.normalize_mixed)

    def mixed_loss(
        self,
        anchor_emb: torch.Tensor,
        mixed_emb: torch.Tensor,
        positivity: torch.Tensor | float,
        anchor_idx: torch.Tensor | None = None,
        num_anchors: int | None = None,
    ) -> torch.Tensor:
        """The mixed loss of mixed embeddings made elsewhere (the input and feature variants).

        Args:
            anchor_emb: (T, D) clean embedding of each triple's anchor.
            mixed_emb: (T, D) embedding of each triple's mixed example.
            positivity: ``lam`` (float) or (T,) positivities.
            anchor_idx: (T,) anchor id of each triple (groups the multi-similarity log-sum-exp per anchor;
                default: one group per triple).
            num_anchors: divisor of the multi-similarity mean (default: the number of distinct anchors).
        """
        check_embeddings_labels(anchor_emb, None)
        if not isinstance(mixed_emb, torch.Tensor) or mixed_emb.shape != anchor_emb.shape:
            raise ValueError(f"mixed_emb must have the shape of anchor_emb {tuple(anchor_emb.shape)}")
        check_finite(mixed_emb, "mixed_emb")
        t = anchor_emb.shape[0]
        dist = self.loss.distance
        a = F.normalize(anchor_emb, dim=1) if dist.normalize_embeddings else anchor_emb
        v = F.normalize(mixed_emb, dim=1) if self.normalizes_mixed else mixed_emb
        if isinstance(dist, LpDistance):
            vals = (a - v).pow(2).sum(1).clamp_min(_SQRT_EPS).sqrt()
        else:
            vals = (a * v).sum(1)
        if dist.power != 1:
            vals = vals**dist.power
        y = torch.as_tensor(positivity, dtype=vals.dtype, device=vals.device).expand(t)
        if anchor_idx is None:
            groups, inverse = t, torch.arange(t, device=vals.device)
        else:
            check_labels(anchor_idx, t, "anchor_idx")
            uniq, inverse = torch.unique(anchor_idx, return_inverse=True)
            groups = uniq.numel()
        # scatter the triples into a padded (groups, max per group) matrix
        counts = torch.bincount(inverse, minlength=groups)
        width = int(counts.max()) if t else 1
        order = torch.argsort(inverse, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        col = torch.arange(t, device=vals.device) - starts[inverse[order]]
        mat = vals.new_zeros(groups, max(width, 1))
        yy, mult = torch.zeros_like(mat), torch.zeros_like(mat)
        row = inverse[order]
        mat = mat.index_put((row, col), vals[order])
        yy = yy.index_put((row, col), y[order])
        mult = mult.index_put((row, col), torch.ones_like(vals))
        n = groups if num_anchors is None else int(num_anchors)
        pos_arg = yy if isinstance(positivity, torch.Tensor) else float(positivity)
        return metrix_mixed_loss(mat, pos_arg, self.loss, multiplicity=mult, num_anchors=n)

    def embed_mixed_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        lam: float,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mixed loss of the embedding variant with a given ``lam`` (all positive-negative triples)."""
        self_ref = ref_emb is None
        ref = embeddings if ref_emb is None else ref_emb
        rlab = labels if ref_labels is None else ref_labels
        same = labels[:, None] == rlab[None, :]
        neg = ~same
        if self_ref:
            same = same & ~torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
        idx, valid, mult = _positive_slots(same, self.legacy_first_positive)
        if self_ref and self.anchor_negative:
            no_pos = ~same.any(1)
            if bool(no_pos.any()):  # anchor-negative mixing: the anchor plays the positive
                arange = torch.arange(labels.shape[0], device=labels.device)
                idx = idx.clone()
                idx[:, 0] = torch.where(no_pos, arange, idx[:, 0])
                valid = valid.clone()
                valid[:, 0] |= no_pos
                mult = mult.clone()
                mult[:, 0] = torch.where(no_pos, torch.ones_like(mult[:, 0]), mult[:, 0])
        m = (mult[:, :, None] * (valid[:, :, None] & neg[:, None, :])).to(embeddings.dtype)
        mat = _mixed_matrix(self.loss.distance, embeddings, ref, idx, lam, self.normalizes_mixed)
        b = embeddings.shape[0]
        return metrix_mixed_loss(mat.reshape(b, -1), lam, self.loss, multiplicity=m.reshape(b, -1), num_anchors=b)

    # ------------------------------------------------------------------ entry point
    def forward(  # type: ignore[override]
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: tuple[torch.Tensor, ...] | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_embeddings_labels(embeddings, labels)
        if ref_emb is not None:
            if not isinstance(ref_emb, torch.Tensor) or ref_emb.dim() != 2 or ref_emb.shape[1] != embeddings.shape[1]:
                raise ValueError(f"ref_emb must be a (R, {embeddings.shape[1]}) floating-point tensor")
            check_finite(ref_emb, "ref_emb")
            if ref_labels is not None:
                check_labels(ref_labels, ref_emb.shape[0], "ref_labels")
        clean = self.loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        if self.w == 0.0 or labels is None or (ref_emb is not None and ref_labels is None):
            return clean
        labels = labels.to(embeddings.device)
        lam = self.sample_lam()
        mixed = self.embed_mixed_loss(embeddings, labels, lam, ref_emb, ref_labels)
        return clean + self.w * mixed.to(clean.dtype)

    def compute_loss(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # pragma: no cover - forward overrides
        raise NotImplementedError("MetrixLoss computes its loss in forward")

    def extra_repr(self) -> str:
        return (
            f"w={self.w}, mix_alpha={self.mix_alpha}, lam={self.lam}, normalize_mixed={self.normalize_mixed}, "
            f"legacy_first_positive={self.legacy_first_positive}, anchor_negative={self.anchor_negative}"
        )


class MetrixContrastiveLoss(MetrixLoss):
    """Metrix around PML's ``ContrastiveLoss`` (Euclidean distance on L2-normalised embeddings,
    ``pos_margin = 0``, ``neg_margin = 0.5``: the official configuration); ``**kwargs`` (distance,
    reducer, ...) go to the clean ``ContrastiveLoss``."""

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 0.5,
        w: float = 0.4,
        mix_alpha: float = 2.0,
        lam: float | None = None,
        normalize_mixed: bool | None = None,
        legacy_first_positive: bool = False,
        anchor_negative: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin, **kwargs),
            w=w,
            mix_alpha=mix_alpha,
            lam=lam,
            normalize_mixed=normalize_mixed,
            legacy_first_positive=legacy_first_positive,
            anchor_negative=anchor_negative,
        )


class MetrixMultiSimilarityLoss(MetrixLoss):
    """Metrix around :class:`paperzoo.losses.MultiSimilarityLoss` (paper #28; ``alpha = 2``,
    ``beta = 50``, ``base = 0.5``, mining ``epsilon = 0.1``) with the paper's weighted mixed form;
    ``**kwargs`` (distance, reducer, mining, ...) go to the clean loss."""

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        epsilon: float = 0.1,
        w: float = 0.4,
        mix_alpha: float = 2.0,
        lam: float | None = None,
        normalize_mixed: bool | None = None,
        legacy_first_positive: bool = False,
        anchor_negative: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            MultiSimilarityLoss(alpha=alpha, beta=beta, base=base, epsilon=epsilon, **kwargs),
            w=w,
            mix_alpha=mix_alpha,
            lam=lam,
            normalize_mixed=normalize_mixed,
            legacy_first_positive=legacy_first_positive,
            anchor_negative=anchor_negative,
        )


# --------------------------------------------------------------------------- analysis and references
def utilization(query_emb: torch.Tensor, train_emb: torch.Tensor, chunk: int = 4096) -> float:
    """Utilisation (the paper's analysis): mean over queries of the squared Euclidean distance from
    the L2-normalised query embedding to its nearest L2-normalised training embedding (lower = test
    embeddings lie closer to training ones). ``train_emb`` may hold clean or clean + mixed embeddings."""
    check_embeddings_labels(query_emb, None)
    check_embeddings_labels(train_emb, None)
    if query_emb.shape[1] != train_emb.shape[1]:
        raise ValueError("query_emb and train_emb must have the same embedding dimension")
    q, x = F.normalize(query_emb.detach(), dim=1), F.normalize(train_emb.detach(), dim=1)
    best = torch.cat([(2.0 - 2.0 * (q[i : i + chunk] @ x.T).amax(1)) for i in range(0, len(q), chunk)])
    return float(best.clamp_min(0.0).mean())


def pml_contrastive_reference() -> Any:
    """PML's ``ContrastiveLoss(pos_margin=0, neg_margin=0.5)``, the clean loss Metrix wraps (the benchmark
    reference: the nearest PML loss of the same pair structure), as ``loss(emb, labels)``."""
    return ContrastiveLoss(pos_margin=0.0, neg_margin=0.5)


def _reference_metrix_contrastive(
    emb: torch.Tensor, labels: torch.Tensor, lam: float, w: float = 0.4, normalize_mixed: bool = True
) -> torch.Tensor:
    """The official recipe written naively: explicit triples from :func:`mix_pairs`, materialised mixed
    embeddings, PML's ``LpDistance`` and ``AvgNonZeroReducer`` parts (a test oracle)."""
    clean = ContrastiveLoss(pos_margin=0.0, neg_margin=0.5)(emb, labels)
    a, p, n = mix_pairs(labels)
    e = F.normalize(emb, dim=1)
    v = lam * emb[p] + (1 - lam) * emb[n]  # the official code mixes the raw embeddings
    if normalize_mixed:
        v = F.normalize(v, dim=1)
    d = (e[a] - v).norm(dim=1)
    pos = lam * d
    negt = (1 - lam) * F.relu(0.5 - d)
    parts = [part[part > 0].mean() if bool((part > 0).any()) else part.sum() * 0 for part in (pos, negt)]
    return clean + w * (parts[0] + parts[1])
