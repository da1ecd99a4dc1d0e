"""GPAM: Gaussian prototypes, an adaptive-margin decision boundary and none-of-the-above (NOTA) detection for
few-shot open-set episodes.

Paper: Guo, Zhang, Wang, Lei, Li, Wang and Liu, "Few-shot Open Relation Extraction with Gaussian Prototype and
Adaptive Margin" (arXiv 2410.20320, 2024). The paper has three modules: semi-factual representations that debias
each instance, GMM-prototype metric learning (each class a Gaussian, distances measured in that Gaussian space),
and decision-boundary learning with an adaptive margin and negative sampling, so that a query outside every
class boundary is answered "none of the above".

Only the abstract was available: every formula below is a concrete design that follows the abstract's module
structure, not the paper's equations (see docs/papers/51-gpam-gaussian-prototype-adaptive-margin.md):

* semi-factual views (:func:`semi_factual_views`): ``h~ = h * mask``, ``mask ~ Bernoulli(1 - rho)`` on the
  unprotected features; debiased ``h_bar = (h + sum_a h~_a) / (1 + A)`` (:class:`SemiFactualAugmenter`);
* Gaussian prototypes (:func:`gaussian_prototypes`): ``mu_c`` = class mean, diagonal
  ``var_c = lam * var(S_c) + (1 - lam) * var_glob + eps`` (population variances, ``var_glob`` over all the
  episode's supports; the shrinkage makes K = 1 usable);
* distance (:func:`gaussian_distance`): ``D_c(x) = 1/2 sum_j (x_j - mu_cj)^2 / var_cj + 1/2 sum_j log var_cj``
  (the Gaussian negative log-likelihood up to a constant);
* adaptive boundary: radius ``r_c = softplus(g(mu_c))`` with a small MLP ``g`` (:class:`AdaptiveBoundary`);
  prediction ``argmin_c D_c(x) - r_c`` if that minimum is < 0, else NOTA (:func:`nota_predict`);
* margin losses (:func:`boundary_margin_loss`): ``L_pos = mean [D_y(x) - r_y + m]_+`` over known queries,
  ``L_neg = mean [r_c - D_c(x) + m]_+`` over negative (query, class) pairs: NOTA queries against every class
  and, with ``other_class_negatives``, known queries against the other classes (negative sampling);
* episode loss (:class:`GPAMLoss`): ``L = CE(softmax [-D_1, ..., -D_N, -tau]) + beta (L_pos + L_neg)`` with a
  learnable NOTA distance ``tau`` (NOTA queries take the last class).

NOTA queries carry the label :data:`NOTA` (-1). Everything is vectorised over queries and classes.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, check_finite, check_labels, validate_params
from paperzoo.losses.episodic import EpisodicLoss

__all__ = [
    "NOTA",
    "AdaptiveBoundary",
    "GPAMLoss",
    "SemiFactualAugmenter",
    "boundary_margin_loss",
    "gaussian_distance",
    "gaussian_prototypes",
    "nota_predict",
    "nota_scores",
    "semi_factual_views",
]

NOTA = -1
"""Label of a "none-of-the-above" query (and the prediction :func:`nota_predict` gives it)."""

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "shrinkage": [Interval(float, 0, 1, closed="both")],
    "eps": [Interval(float, 0, math.inf, closed="neither")],
    "margin": [Interval(float, 0, math.inf, closed="left")],
    "beta": [Interval(float, 0, math.inf, closed="left")],
    "mask_ratio": [Interval(float, 0, 1, closed="left")],
    "n_views": [Interval(int, 0, math.inf, closed="left")],
    "dim": [Interval(int, 1, math.inf, closed="left")],
    "hidden": [Interval(int, 1, math.inf, closed="left")],
    "k_shot": [Interval(int, 1, math.inf, closed="left"), None],
}
"""Scalar parameters of this module (see :func:`paperzoo._validation.validate_params`)."""


# --------------------------------------------------------------------------- input checks
def _check_matrix(x: torch.Tensor, name: str, dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (n, D)")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n, D), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"empty set: {name} has 0 rows")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns, got shape {tuple(x.shape)}")
    check_finite(x, name)


def _support_classes(
    support: torch.Tensor, support_labels: torch.Tensor, k_shot: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted classes (N,), position of each support row's class (n,)); every class must have K rows."""
    _check_matrix(support, "support")
    check_labels(support_labels, support.shape[0], "support_labels")
    labels = support_labels.to(support.device)
    if bool((labels < 0).any()):
        raise ValueError("support_labels must be >= 0 (a NOTA label -1 cannot be a support class)")
    classes, inverse, counts = torch.unique(labels, sorted=True, return_inverse=True, return_counts=True)
    want = int(counts[0]) if k_shot is None else int(k_shot)
    if bool((counts != want).any()):
        sizes = dict(zip(classes.tolist(), counts.tolist()))
        raise ValueError(
            f"support_labels: every class needs exactly K = {want} support images, got per-class counts {sizes}"
        )
    return classes, inverse


def _query_targets(query_labels: torch.Tensor, classes: torch.Tensor, n: int) -> torch.Tensor:
    """Episode targets of the queries: the position of the class in ``classes``, or NOTA (-1)."""
    check_labels(query_labels, n, "query_labels")
    labels = query_labels.to(classes.device)
    pos = torch.searchsorted(classes, labels).clamp_max(classes.numel() - 1)
    known = classes[pos] == labels
    bad = ~known & (labels != NOTA)
    if bool(bad.any()):
        absent = sorted(set(labels[bad].tolist()))
        raise ValueError(
            f"query_labels has classes {absent} that are absent from support_labels (mark NOTA queries with {NOTA})"
        )
    return torch.where(known, pos, torch.full_like(pos, NOTA))


def _check_scores(D: torch.Tensor, radius: torch.Tensor) -> None:
    if not isinstance(D, torch.Tensor) or not D.is_floating_point() or D.dim() != 2:
        raise TypeError("D must be a floating-point torch.Tensor of shape (Q, N)")
    if D.shape[0] == 0:
        raise ValueError("empty batch: D has 0 rows")
    check_finite(D, "D")
    if not isinstance(radius, torch.Tensor) or not radius.is_floating_point() or radius.shape != (D.shape[1],):
        raise ValueError(f"radius must be a floating-point tensor of shape ({D.shape[1]},)")
    check_finite(radius, "radius")


# --------------------------------------------------------------------------- semi-factual views
def semi_factual_views(
    h: torch.Tensor,
    mask_ratio: float = 0.15,
    n_views: int = 2,
    protected_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n_views`` label-keeping ("semi-factual") views of ``h`` (n, D): each unprotected feature is zeroed with
    probability ``mask_ratio``; features where ``protected_mask`` (D,) is True are never touched (the entity
    block for text). Returns (n_views, n, D)."""
    validate_params(_PARAMETER_CONSTRAINTS, {"mask_ratio": mask_ratio, "n_views": n_views}, owner="semi_factual_views")
    _check_matrix(h, "h")
    keep = torch.rand((n_views, *h.shape), generator=generator, device=h.device) >= mask_ratio
    if protected_mask is not None:
        if protected_mask.shape != (h.shape[1],):
            raise ValueError(f"protected_mask must have shape ({h.shape[1]},), got {tuple(protected_mask.shape)}")
        keep = keep | protected_mask.to(device=h.device, dtype=torch.bool)
    return h.unsqueeze(0) * keep.to(h.dtype)


class SemiFactualAugmenter(nn.Module):
    """Debiased representation ``h_bar = (h + sum_a h~_a) / (1 + A)`` over ``A = n_views`` semi-factual views.

    In training mode the views are random (:func:`semi_factual_views`); in eval mode the module returns the
    expectation ``h * (1 + A (1 - rho)) / (1 + A)`` on unprotected features (``h`` on protected ones), so that
    evaluation is deterministic.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("mask_ratio", "n_views")
    }

    def __init__(self, mask_ratio: float = 0.15, n_views: int = 2, protected_mask: torch.Tensor | None = None) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints, {"mask_ratio": mask_ratio, "n_views": n_views}, owner=type(self).__name__
        )
        self.mask_ratio, self.n_views = float(mask_ratio), int(n_views)
        self.register_buffer("protected_mask", None if protected_mask is None else protected_mask.bool())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.n_views
        if self.training:
            views = semi_factual_views(h, self.mask_ratio, a, self.protected_mask)
            return (h + views.sum(0)) / (1 + a)
        _check_matrix(h, "h")
        scale = torch.full((h.shape[1],), (1 + a * (1 - self.mask_ratio)) / (1 + a), dtype=h.dtype, device=h.device)
        if self.protected_mask is not None:
            scale = torch.where(self.protected_mask.to(h.device), torch.ones_like(scale), scale)
        return h * scale


# --------------------------------------------------------------------------- Gaussian prototypes
def gaussian_prototypes(
    support: torch.Tensor,
    support_labels: torch.Tensor,
    shrinkage: float = 0.5,
    eps: float = 1e-3,
    k_shot: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Diagonal Gaussian of each support class.

    Args:
        support: (N*K, D) support embeddings.
        support_labels: (N*K,) integer class ids >= 0, every class with the same number K of rows (``k_shot``
            if given).
        shrinkage: ``lam``, the weight of the class variance against the episode's global variance.
        eps: variance floor added to every entry.

    Returns:
        ``(mu (N, D), var (N, D), classes (N,))``, classes sorted ascending;
        ``var = lam * var(S_c) + (1 - lam) * var(all supports) + eps`` (population variances).
    """
    validate_params(
        _PARAMETER_CONSTRAINTS, {"shrinkage": shrinkage, "eps": eps, "k_shot": k_shot}, owner="gaussian_prototypes"
    )
    classes, inverse = _support_classes(support, support_labels, k_shot)
    n, d = classes.numel(), support.shape[1]
    k = support.shape[0] // n
    counts = support.new_full((n, 1), float(k))
    mu = support.new_zeros(n, d).index_add_(0, inverse, support) / counts
    var_c = support.new_zeros(n, d).index_add_(0, inverse, (support - mu[inverse]).pow(2)) / counts
    var_glob = support.var(0, unbiased=False)
    return mu, shrinkage * var_c + (1.0 - shrinkage) * var_glob + eps, classes


def gaussian_distance(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``D[q, c] = 1/2 sum_j (x_qj - mu_cj)^2 / var_cj + 1/2 sum_j log var_cj`` for x (Q, D), mu and var (N, D)
    (var > 0); returns (Q, N). Two matrix products, no (Q, N, D) tensor."""
    _check_matrix(x, "x")
    _check_matrix(mu, "mu", x.shape[1])
    _check_matrix(var, "var", x.shape[1])
    if var.shape != mu.shape:
        raise ValueError(f"var must have the shape of mu {tuple(mu.shape)}, got {tuple(var.shape)}")
    if bool((var <= 0).any()):
        raise ValueError("var must be > 0")
    inv = var.reciprocal()
    quad = x.pow(2) @ inv.T - 2.0 * (x @ (mu * inv).T) + (mu.pow(2) * inv).sum(1)
    return 0.5 * quad.clamp_min(0.0) + 0.5 * var.log().sum(1)


# --------------------------------------------------------------------------- boundary
class AdaptiveBoundary(nn.Module):
    """Per-class radius ``r_c = softplus(g(mu_c))``, ``g`` an MLP ``dim -> hidden -> 1`` (adaptive: the radius
    depends on the prototype). ``forward(mu (N, dim)) -> (N,)``."""

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name] for name in ("dim", "hidden")
    }

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"dim": dim, "hidden": hidden}, owner=type(self).__name__)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.net(mu).squeeze(-1))


def nota_scores(D: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """``min_c D_c(x) - r_c`` (Q,): >= 0 means outside every boundary (NOTA); larger = more NOTA-like."""
    _check_scores(D, radius)
    return (D - radius).amin(1)


def nota_predict(D: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """``argmin_c D_c(x) - r_c`` if that minimum is < 0, else :data:`NOTA` (-1): NOTA iff every ``D_c >= r_c``.
    Returns (Q,) int64 episode labels in ``{-1, 0, ..., N-1}``."""
    _check_scores(D, radius)
    val, idx = (D - radius).min(1)
    return torch.where(val < 0, idx, torch.full_like(idx, NOTA))


def boundary_margin_loss(
    D: torch.Tensor,
    radius: torch.Tensor,
    target: torch.Tensor,
    margin: float = 1.0,
    other_class_negatives: bool = False,
) -> torch.Tensor:
    """Adaptive-margin boundary loss ``L_pos + L_neg`` (scalar).

    ``L_pos = mean over known queries of [D_y(x) - r_y + m]_+``; ``L_neg = mean over negative (x, c) pairs of
    [r_c - D_c(x) + m]_+``, the negative pairs being every (NOTA query, class) and, if
    ``other_class_negatives``, every (known query, other class). A mean over no pair is 0.

    Args:
        D: (Q, N) distances to the N classes.
        radius: (N,) class radii.
        target: (Q,) episode labels in ``{-1 (NOTA), 0, ..., N-1}``.
        margin: ``m`` >= 0.
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"margin": margin}, owner="boundary_margin_loss")
    _check_scores(D, radius)
    check_labels(target, D.shape[0], "target")
    t = target.to(D.device)
    if bool(((t < NOTA) | (t >= D.shape[1])).any()):
        raise ValueError(
            f"target must lie in [-1, {D.shape[1]}) (-1 = NOTA), got values in [{int(t.min())}, {int(t.max())}]"
        )
    known = t >= 0
    own = F.one_hot(t.clamp_min(0), D.shape[1]).bool() & known[:, None]
    pos = (D - radius + margin).clamp_min(0.0)
    neg = (radius - D + margin).clamp_min(0.0)
    neg_mask = ~known[:, None].expand_as(D) if not other_class_negatives else ~own
    n_pos, n_neg = own.sum(), neg_mask.sum()
    l_pos = (pos * own).sum() / n_pos.clamp_min(1)
    l_neg = (neg * neg_mask).sum() / n_neg.clamp_min(1)
    return l_pos + l_neg


# --------------------------------------------------------------------------- episode loss
class GPAMLoss(EpisodicLoss):
    """The GPAM episode loss and predictor: Gaussian prototypes, a learned adaptive boundary, a learnable NOTA
    distance ``tau`` and the semi-factual debiasing of the embeddings.

    ``forward(support (N*K, D), support_labels (N*K,), query (Q, D), query_labels (Q,))`` returns
    ``CE(softmax [-D_1, ..., -D_N, -tau]) + beta (L_pos + L_neg)``; ``query_labels`` are support class ids or
    :data:`NOTA` (-1). :meth:`predict` returns the support class id of each query or -1, and :meth:`scores`
    its NOTA score. Its parameters (the boundary MLP and ``tau``) are trained with the encoder. It is an
    :class:`~paperzoo.losses.episodic.EpisodicLoss`, so ``BatchEpisodes`` trains it on P x K batches (and
    ``paperzoo compare --task fewshot`` lists it).

    Args:
        dim: embedding dimension D.
        hidden: width of the radius MLP.
        margin: ``m`` of the boundary losses.
        beta: weight of the boundary losses.
        shrinkage, eps: of :func:`gaussian_prototypes`.
        mask_ratio, n_views: of the semi-factual views (``n_views = 0`` switches them off).
        other_class_negatives: known queries are also negatives of the other classes (negative sampling).
        k_shot: the expected shot, or None (every class the same number).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        name: _PARAMETER_CONSTRAINTS[name]
        for name in ("dim", "hidden", "margin", "beta", "shrinkage", "eps", "mask_ratio", "n_views", "k_shot")
    }

    def __init__(
        self,
        dim: int,
        hidden: int = 64,
        margin: float = 1.0,
        beta: float = 1.0,
        shrinkage: float = 0.5,
        eps: float = 1e-3,
        mask_ratio: float = 0.15,
        n_views: int = 2,
        other_class_negatives: bool = True,
        k_shot: int | None = None,
    ) -> None:
        super().__init__()
        params = {
            "dim": dim, "hidden": hidden, "margin": margin, "beta": beta, "shrinkage": shrinkage, "eps": eps,
            "mask_ratio": mask_ratio, "n_views": n_views, "k_shot": k_shot,
        }  # fmt: skip
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        self.margin, self.beta, self.shrinkage, self.eps = float(margin), float(beta), float(shrinkage), float(eps)
        self.other_class_negatives, self.k_shot = bool(other_class_negatives), k_shot
        self.boundary = AdaptiveBoundary(dim, hidden)
        self.augment = SemiFactualAugmenter(mask_ratio, n_views)
        self.tau = nn.Parameter(torch.zeros(()))

    def distances(
        self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(D (Q, N), radius (N,), classes (N,))`` after the semi-factual debiasing of both sets."""
        _check_matrix(query, "query", support.shape[1] if isinstance(support, torch.Tensor) else None)
        mu, var, classes = gaussian_prototypes(
            self.augment(support), support_labels, self.shrinkage, self.eps, self.k_shot
        )
        return gaussian_distance(self.augment(query), mu, var), self.boundary(mu), classes

    def forward(
        self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor
    ) -> torch.Tensor:
        D, radius, classes = self.distances(support, support_labels, query)
        t = _query_targets(query_labels, classes, query.shape[0])
        logits = torch.cat([-D, (-self.tau).expand(D.shape[0], 1).to(D.dtype)], 1)
        ce = F.cross_entropy(logits, torch.where(t >= 0, t, torch.full_like(t, D.shape[1])))
        return ce + self.beta * boundary_margin_loss(D, radius, t, self.margin, self.other_class_negatives)

    @torch.no_grad()
    def predict(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Support class id of each query, or :data:`NOTA` (-1) when it lies outside every boundary."""
        D, radius, classes = self.distances(support, support_labels, query)
        pred = nota_predict(D, radius)
        return torch.where(pred >= 0, classes[pred.clamp_min(0)], pred)

    @torch.no_grad()
    def scores(self, support: torch.Tensor, support_labels: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """NOTA score ``min_c D_c - r_c`` of each query (>= 0: NOTA)."""
        D, radius, _ = self.distances(support, support_labels, query)
        return nota_scores(D, radius)
