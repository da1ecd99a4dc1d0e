"""Loki: the geometry-aware (Fréchet-mean) prediction rule of Roberts et al., "Geometry-Aware
Adaptation for Pretrained Models" (NeurIPS 2023).

A classifier trained on K observed classes ``Λ = {λ_1 … λ_K}`` outputs probabilities ``P(x)`` over
them; the label space ``Y`` (N classes, N ≥ K) carries a metric ``d``. Loki predicts the Fréchet
mean of the observed classes weighted by the probabilities,

    ŷ(x) = argmin_{y ∈ Y} Σ_i P_i(x) · d²(y, λ_i),

so a model can output classes it never saw and, when all classes are observed, a prediction that
is cheap in the metric's sense. The rule is post hoc and training-free: one (B, K) x (K, N) matrix
product of the probabilities with the squared distances, then an argmin over the N columns (ties:
the lowest class index).

Also here: the metric builders (tree / graph shortest-path distances, Euclidean distances between
class embeddings - the paper's "self-derived" metric from a text encoder), the *locus* ``Π(Λ)`` of
the classes Loki can ever predict (an exact linear-feasibility test per class for any finite
metric, and the path-union rule for trees), the active choice of the next class to observe on a
tree (the unobserved class farthest from the locus), the paper's evaluation metric (expected
squared distance) and a straight-through head to train through the rule (the official code's
exploratory option).

Thin: the rule itself is a few lines; everything else is validation and small tools around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from paperzoo._validation import check_finite, check_labels

__all__ = [
    "LokiHead",
    "argmax_predict",
    "check_sq_distances",
    "embedding_sq_distances",
    "expected_squared_distance",
    "graph_sq_distances",
    "locus",
    "loki_predict",
    "next_class_to_observe",
    "observed_sq_distances",
    "relative_improvement",
    "tree_locus",
]

#: rows of ``probs`` must sum to 1 within this tolerance (float32 softmax outputs sum to 1 ± 1e-6)
PROB_ATOL = 1e-4


# --------------------------------------------------------------------------- validation
def _as_tensor(x: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy raises a variety of errors
        raise TypeError(f"{name} must be a tensor or an array, got {type(x).__name__}") from exc
    if arr.dtype == object:
        raise TypeError(f"{name} must be numeric, got an object array")
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.to(dtype) if dtype is not None and t.is_floating_point() else t


def _check_probs(probs: torch.Tensor, k: int | None = None) -> None:
    if not probs.is_floating_point():
        raise TypeError(f"probs must be a floating tensor, got {probs.dtype}")
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (B, K), got {tuple(probs.shape)}")
    if probs.shape[0] == 0:
        raise ValueError("probs is an empty batch (B = 0)")
    if k is not None and probs.shape[1] != k:
        raise ValueError(f"probs has {probs.shape[1]} columns but sq_dist has {k} rows (observed classes)")
    check_finite(probs, "probs")
    if bool((probs < 0).any()):
        raise ValueError("probs must be non-negative (probabilities, e.g. a softmax), got a negative entry")
    err = (probs.sum(dim=1) - 1).abs().max().item()
    if err > PROB_ATOL:
        raise ValueError(f"probs rows must sum to 1 (probabilities, not logits), got a row off by {err:.3g}")


def check_sq_distances(sq_dist: Any, name: str = "sq_dist", *, atol: float = 1e-6) -> torch.Tensor:
    """Check that ``sq_dist`` is an (N, N) matrix of squared distances of a (pseudo-)metric:
    finite, non-negative, symmetric, zero on the diagonal. Returns it as a tensor.

    The triangle inequality is not checked (squared distances do not satisfy it; the rule does
    not need it).

    Raises:
        ValueError: naming ``name`` and the failed property.
    """
    d = _as_tensor(sq_dist, name)
    if not d.is_floating_point():
        d = d.to(torch.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix of squared distances, got {tuple(d.shape)}")
    if d.shape[0] == 0:
        raise ValueError(f"{name} is empty (N = 0)")
    check_finite(d, name)
    scale = max(1.0, float(d.abs().max()))
    if bool((d < -atol * scale).any()):
        raise ValueError(f"{name} must be non-negative, got a negative entry")
    if bool((d.diagonal().abs() > atol * scale).any()):
        raise ValueError(f"{name} must be zero on the diagonal (d(y, y) = 0)")
    if not torch.allclose(d, d.T, rtol=0.0, atol=atol * scale):
        raise ValueError(f"{name} must be symmetric (d(y, z) = d(z, y))")
    return d


def _check_observed(observed: Any, n: int) -> torch.Tensor:
    obs = _as_tensor(observed, "observed").reshape(-1)
    if obs.numel() == 0:
        raise ValueError("observed must name at least one class, got none")
    if obs.is_floating_point() or obs.dtype == torch.bool:
        raise TypeError(f"observed must hold integer class indices, got {obs.dtype}")
    check_labels(obs.long(), obs.numel(), "observed", n)
    if torch.unique(obs).numel() != obs.numel():
        raise ValueError("observed must not repeat a class")
    return obs.long()


def _check_obs_to_all(sq_dist: Any) -> torch.Tensor:
    d = _as_tensor(sq_dist, "sq_dist")
    if not d.is_floating_point():
        d = d.to(torch.float64)
    if d.ndim != 2:
        raise ValueError(f"sq_dist must have shape (K, N) (observed classes x all classes), got {tuple(d.shape)}")
    if d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError(f"sq_dist is empty, got shape {tuple(d.shape)}")
    check_finite(d, "sq_dist")
    if bool((d < 0).any()):
        raise ValueError("sq_dist must be non-negative (squared distances), got a negative entry")
    return d


# --------------------------------------------------------------------------- the rule
def loki_predict(probs: Any, sq_dist: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Loki's prediction: the Fréchet mean of the observed classes weighted by ``probs``.

    Args:
        probs: (B, K) probabilities over the K observed classes (rows on the simplex, e.g. a
            softmax or ``predict_proba``), tensor or array.
        sq_dist: (K, N) squared distances ``d²(λ_i, y)`` from each observed class to every class
            of the label space; with all classes observed (K = N) a full (N, N) matrix. Rows of a
            full matrix are picked with ``full[observed]``.

    Returns:
        ``(pred, variances)``: the predicted classes (B,) int64 in ``0..N-1`` (the first
        minimiser on ties) and the Fréchet variances ``V = probs @ sq_dist`` (B, N).

    Raises:
        ValueError: probs not (B, K), empty, non-finite, negative or rows not summing to 1;
            sq_dist not (K, N), non-finite or negative.
    """
    d = _check_obs_to_all(sq_dist)
    p = _as_tensor(probs, "probs")
    _check_probs(p, d.shape[0])
    dtype = torch.promote_types(p.dtype, d.dtype)
    variances = p.to(dtype) @ d.to(device=p.device, dtype=dtype)
    return variances.argmin(dim=1), variances


def argmax_predict(probs: Any, observed: Any | None = None) -> torch.Tensor:
    """The baseline rule: the most probable observed class, as an index of the label space
    (``observed[argmax_i probs_i]``; ``observed=None``: all classes observed)."""
    p = _as_tensor(probs, "probs")
    _check_probs(p)
    idx = p.argmax(dim=1)
    if observed is None:
        return idx
    obs = _as_tensor(observed, "observed").reshape(-1).long().to(idx.device)
    if obs.numel() != p.shape[1]:
        raise ValueError(f"observed has {obs.numel()} classes but probs has {p.shape[1]} columns")
    return obs[idx]


class LokiHead(nn.Module):
    """Loki as a module with a fixed squared-distance buffer.

    Args:
        sq_dist: the (N, N) squared distances of the label space (checked: symmetric,
            non-negative, zero diagonal).
        observed: indices of the K observed classes, in the order of the probability columns
            (``None``: all N classes, K = N).
        straight_through: ``False``: ``forward`` returns the predicted classes (B,) int64.
            ``True``: it returns the one-hot (B, N) of the prediction whose gradient flows to the
            probabilities unchanged (straight-through estimator; each observed class's column
            passes its gradient to that class's probability), the official code's option to train
            through the rule.
    """

    def __init__(self, sq_dist: Any, observed: Any | None = None, *, straight_through: bool = False) -> None:
        super().__init__()
        full = check_sq_distances(sq_dist)
        n = full.shape[0]
        obs = torch.arange(n) if observed is None else _check_observed(observed, n)
        if not isinstance(straight_through, bool):
            raise ValueError(f"LokiHead: straight_through must be a bool, got {straight_through!r}")
        self.straight_through = straight_through
        self.register_buffer("observed", obs)
        self.register_buffer("sq_dist", full[obs].clone())

    @property
    def num_classes(self) -> int:
        return int(self.sq_dist.shape[1])

    def frechet_variances(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs @ sq_dist``: the (B, N) weighted sums of squared distances."""
        return loki_predict(probs, self.sq_dist)[1]

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        pred, _ = loki_predict(probs, self.sq_dist)
        if not self.straight_through:
            return pred
        hard = torch.nn.functional.one_hot(pred, self.num_classes).to(probs.dtype)
        soft = probs.new_zeros(probs.shape[0], self.num_classes).index_copy(1, self.observed, probs)
        return hard + soft - soft.detach()

    def extra_repr(self) -> str:
        k, n = self.sq_dist.shape
        return f"observed={k}, classes={n}, straight_through={self.straight_through}"


# --------------------------------------------------------------------------- metrics on labels
def embedding_sq_distances(embeddings: Any) -> torch.Tensor:
    """Squared Euclidean distances between class embeddings (N, D) -> (N, N): the paper's
    self-derived metric (class-name prompts through a text encoder). Exact zeros on the diagonal,
    symmetric, clamped at 0."""
    e = _as_tensor(embeddings, "embeddings")
    if not e.is_floating_point():
        e = e.to(torch.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise ValueError(f"embeddings must have shape (N, D) with N >= 1, got {tuple(e.shape)}")
    check_finite(e, "embeddings")
    diff = e[:, None, :] - e[None, :, :] if e.shape[0] * e.shape[0] * e.shape[1] <= 1 << 24 else None
    d2 = (diff * diff).sum(-1) if diff is not None else torch.cdist(e, e).square()
    d2 = 0.5 * (d2 + d2.T)
    d2.fill_diagonal_(0.0)
    return d2.clamp_min(0.0)


def graph_sq_distances(edges: Any, num_nodes: int | None = None, weights: Any | None = None) -> np.ndarray:
    """Squared shortest-path distances (N, N) of an undirected graph (e.g. a tree over the label
    space, leaves = classes), by :func:`scipy.sparse.csgraph.shortest_path`.

    Args:
        edges: (E, 2) integer node pairs.
        num_nodes: N (default: largest node index + 1).
        weights: (E,) positive edge lengths (default 1: the hop count, as networkx's
            ``shortest_path_length`` in the official code).

    Raises:
        ValueError: edges not (E, 2), a node out of range, a non-positive weight, or a
            disconnected graph (some distance would be infinite).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[1] != 2 or not np.issubdtype(e.dtype, np.integer):
        raise ValueError(f"edges must be an integer array of shape (E, 2), got {e.dtype} {e.shape}")
    n = int(e.max()) + 1 if num_nodes is None and e.size else int(num_nodes or 0)
    if n <= 0:
        raise ValueError("graph_sq_distances needs at least one node")
    if e.size and (e.min() < 0 or e.max() >= n):
        raise ValueError(f"edges name a node outside 0..{n - 1}")
    w = np.ones(len(e)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (len(e),) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights must be {len(e)} finite positive edge lengths")
    adj = coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    dist = shortest_path(adj, directed=False, unweighted=weights is None)
    if not np.all(np.isfinite(dist)):
        raise ValueError("the graph is disconnected: some classes have no path between them")
    return dist**2


# --------------------------------------------------------------------------- the locus
def locus(sq_dist: Any, observed: Any, *, tol: float = 1e-9) -> np.ndarray:
    """The locus ``Π(Λ)``: which classes Loki can predict for some probability vector.

    ``y ∈ Π(Λ)`` iff some ``w`` on the simplex makes ``y`` a minimiser of ``Σ_i w_i d²(·, λ_i)``:
    the linear feasibility problem ``{w ≥ 0, Σ w = 1, Σ_i w_i (d²(y, λ_i) - d²(z, λ_i)) ≤ 0 ∀ z}``
    (one small LP per class, :func:`scipy.optimize.linprog`; exact including ties, so a class
    reached only on a tie counts, even though the rule's lowest-index tie-break may not return it).

    Args:
        sq_dist: (N, N) squared distances of the label space.
        observed: indices of the observed classes.
        tol: slack allowed on each inequality (float round-off).

    Returns:
        (N,) bool mask.
    """
    from scipy.optimize import linprog

    d = check_sq_distances(sq_dist).double().cpu().numpy()
    obs = _check_observed(observed, d.shape[0]).cpu().numpy()
    rows = d[obs]  # (K, N)
    k, n = rows.shape
    mask = np.zeros(n, dtype=bool)
    mask[obs] = True  # a one-hot weight predicts the observed class itself (zero diagonal)
    for y in np.flatnonzero(~mask):
        a_ub = rows[:, y][None, :] - rows.T  # (N, K): row z is d²(y, λ_·) - d²(z, λ_·)
        res = linprog(
            np.zeros(k), A_ub=a_ub, b_ub=np.full(n, tol), A_eq=np.ones((1, k)), b_eq=[1.0],
            bounds=[(0, None)] * k, method="highs",
        )  # fmt: skip
        mask[y] = res.status == 0
    return mask


def tree_locus(sq_dist: Any, observed: Any) -> np.ndarray:
    """The locus on a tree (all nodes are classes): the nodes on a path between two observed
    nodes, i.e. the subtree spanned by them (the official code's ``generate_locus``).

    ``v`` lies on the path from ``a`` to ``b`` iff ``d(a, v) + d(v, b) = d(a, b)``; ``sq_dist`` are
    the tree's squared path lengths (:func:`graph_sq_distances`). Returns an (N,) bool mask.
    """
    d = np.sqrt(check_sq_distances(sq_dist).double().cpu().numpy())
    obs = _check_observed(observed, d.shape[0]).cpu().numpy()
    da = d[obs]  # (K, N)
    on_path = np.abs(da[:, None, :] + da[None, :, :] - d[np.ix_(obs, obs)][:, :, None]) < 1e-9
    return on_path.any(axis=(0, 1))


def next_class_to_observe(sq_dist: Any, current_locus: Any) -> int | None:
    """The active step on a tree: the class outside the current locus farthest from it,
    ``argmax_{y ∉ L} min_{ℓ ∈ L} d(y, ℓ)`` (first on ties); ``None`` when the locus is everything."""
    d = check_sq_distances(sq_dist).double().cpu().numpy()
    mask = np.asarray(current_locus, dtype=bool).reshape(-1)
    if mask.shape != (d.shape[0],):
        raise ValueError(f"current_locus must be a bool mask of {d.shape[0]} classes, got shape {mask.shape}")
    if not mask.any():
        raise ValueError("current_locus is empty: observe at least one class first")
    outside = np.flatnonzero(~mask)
    if outside.size == 0:
        return None
    gap = d[np.ix_(outside, np.flatnonzero(mask))].min(axis=1)
    return int(outside[int(np.argmax(gap))])


# --------------------------------------------------------------------------- evaluation
def expected_squared_distance(pred: Any, target: Any, sq_dist: Any) -> float:
    """The paper's evaluation metric: the mean of ``d²(ŷ, y)`` over the samples (lower is better;
    0 iff every prediction is right)."""
    d = _as_tensor(sq_dist, "sq_dist")
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"sq_dist must be a square (N, N) matrix, got {tuple(d.shape)}")
    p = _as_tensor(pred, "pred").reshape(-1).long()
    t = _as_tensor(target, "target").reshape(-1).long()
    if p.numel() == 0:
        raise ValueError("pred is empty")
    if p.numel() != t.numel():
        raise ValueError(f"pred has {p.numel()} entries but target has {t.numel()}")
    check_labels(p, p.numel(), "pred", d.shape[0])
    check_labels(t, t.numel(), "target", d.shape[0])
    return float(d.double()[p.cpu(), t.cpu()].mean())


def relative_improvement(baseline: float, new: float) -> float:
    """``(baseline - new) / baseline``: the paper's relative improvement in expected squared
    distance (positive when ``new`` is lower)."""
    if not baseline > 0:
        raise ValueError(f"baseline must be > 0, got {baseline}")
    return (float(baseline) - float(new)) / float(baseline)


def observed_sq_distances(sq_dist: Any, observed: Sequence[int]) -> torch.Tensor:
    """The (K, N) rows ``sq_dist[observed]`` that :func:`loki_predict` takes, after checking the full
    (N, N) matrix (symmetric, non-negative, zero diagonal) and the indices (in range, distinct)."""
    full = check_sq_distances(sq_dist)
    return full[_check_observed(observed, full.shape[0])]
