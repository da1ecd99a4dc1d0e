"""ModHiFi (Kashyap, Murti, Nayak, Narshana & Bhattacharyya, NeurIPS 2025): high-fidelity
components found from forward passes on unlabelled (synthetic) data, and ModHiFi-P, the
structured pruner built on them (Algorithm 1 of the paper).

A component is one input channel of a conv layer (one input feature of a linear layer). Output
channel ``c`` of a layer is the sum of per-component contributions ``Y_c = sum_i A_ci`` with
``A_ci = Phi_i * W_ci``. Everything the method needs is the component
similarity matrix (CSM) ``Q^c_ij = E<A_ci, A_cj>`` of each output channel, which follows from
the Gram matrix of the layer's input patches (:class:`CalibrationStats`) and the weights
(:func:`component_similarity`), so contributions are never materialised.

* Subset fidelity (Definition 3.1): the fraction of ``E||Y_c||^2`` that a set ``C`` of
  components reconstructs after the optimal per-component rescaling ``delta*`` (Proposition
  3.8, the normal equations of regressing ``Y_c`` on the kept contributions):
  :func:`subset_fidelity`, :func:`optimal_compensation`.
* Singleton fidelity (Equation 3) ``s_ci = (Q1)_i^2 / (Q_ii 1'Q1)``, the paper's ranking, and
  the variants its appendix describes ("RowSum" ``(Q1)_i``, ``alpha = (Q1)_i / Q_ii``, the
  Cholesky row norms of its LLM estimator): :func:`singleton_fidelity`, :func:`rowsum_saliency`,
  :func:`alpha_scores`, :func:`cholesky_rownorm_scores`.
* k-maximum-fidelity subsets: the greedy top-k of singletons (:func:`naive_kmfs`, exact when
  ``Q^c`` is diagonal, Theorem 3.9), the Monte-Carlo estimate of the paper's existence study
  (:func:`kmfs_monte_carlo`) and brute force for tests (:func:`bruteforce_kmfs`); HiFi sets
  per output channel (Definition 3.4): :func:`hifi_sets`, :func:`hifi_membership`.
* ModHiFi-P (:class:`ModHiFiPruner`): keep the channels that lie in some output channel's HiFi
  set (the paper's union rule) or, for matched-budget comparisons, the channels most often in
  HiFi sets; rescale the surviving consumer weights by ``delta*``; remove the channels
  physically through torch-pruning's dependency graph (coupled channels go together; the
  HiFi-membership counts are a ``torch_pruning`` ``Importance``); re-estimate BatchNorm
  statistics on the calibration data (``torch.optim.swa_utils.update_bn``).
* :class:`L2StructuredPruner`: the L2-magnitude structured baseline the paper compares against
  (``torch_pruning.importance.MagnitudeImportance(p=2)``) on the same channel budget.

The unlearning half of the paper (ModHiFi-U) lives in :mod:`paperzoo.unlearning.modhifi`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, validate_params
from paperzoo.pruning.base import Pruner, check_sparsity

__all__ = [
    "SCORES",
    "CalibrationStats",
    "L2StructuredPruner",
    "LayerStats",
    "ModHiFiImportance",
    "ModHiFiPruner",
    "alpha_scores",
    "bruteforce_kmfs",
    "cholesky_rownorm_scores",
    "component_scores",
    "component_similarity",
    "hifi_membership",
    "hifi_sets",
    "kmfs_monte_carlo",
    "layer_scores",
    "local_global_error_ratio",
    "naive_kmfs",
    "optimal_compensation",
    "prunable_weight_count",
    "rowsum_saliency",
    "singleton_fidelity",
    "subset_fidelity",
    "synthetic_like",
]

Center = Literal["none", "self", "reference"]
MeanKind = Literal["channel", "map"]
_TINY = 1e-12  # relative energy below which a component counts as dead


# --------------------------------------------------------------------------- statistics
@dataclass
class LayerStats:
    """Streaming input statistics of one Conv2d / Linear layer, in float64.

    ``gram`` is ``sum_n sum_l p p^T`` over samples ``n`` and output positions ``l`` of the input
    patches ``p`` (length ``c_in * k^2``, channel-major as ``F.unfold`` lays them out; ``k = 1``
    and one position per token for a linear layer); ``patch_sum`` the sum of ``p`` and
    ``position_sum`` (L, D) the sum over samples at each position. Divide by :attr:`count`
    (samples) for expectations over the calibration data.
    """

    gram: torch.Tensor
    patch_sum: torch.Tensor
    position_sum: torch.Tensor
    count: int
    positions: int
    c_in: int
    kernel: int  # k^2 (1 for a linear layer)

    @property
    def second_moment(self) -> torch.Tensor:
        """``E[sum_l p p^T]`` (D, D)."""
        return self.gram / self.count

    @property
    def mean_patch(self) -> torch.Tensor:
        """Mean patch over samples and positions (D,): a per-(channel, kernel tap) scalar."""
        return self.patch_sum / (self.count * self.positions)

    @property
    def mean_map(self) -> torch.Tensor:
        """Mean patch at each position (L, D)."""
        return self.position_sum / self.count


def _check_layer(layer: nn.Module) -> None:
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1:
            raise NotImplementedError(
                f"ModHiFi: grouped/depthwise Conv2d (groups={layer.groups}) is not supported; "
                "its components are the channels within a group"
            )
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise NotImplementedError("ModHiFi: Conv2d needs numeric zero padding (padding_mode='zeros')")
    elif not isinstance(layer, nn.Linear):
        raise TypeError(f"ModHiFi: components are defined for nn.Conv2d and nn.Linear, got {type(layer).__name__}")


def _patches(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Input patches of ``layer`` as (N, D, L) float64."""
    if isinstance(layer, nn.Conv2d):
        p = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer.padding, stride=layer.stride)
        return p.double()
    x = x.double()
    return x.reshape(x.shape[0], -1, x.shape[-1]).transpose(1, 2)  # (N, T, d) -> (N, d, T)


class CalibrationStats:
    """Forward hooks that accumulate :class:`LayerStats` at the input of each of ``layers``.

    Args:
        layers: ``{name: module}`` of the target Conv2d / Linear layers.

    Use as a context manager around forward passes, or :meth:`collect`::

        stats = CalibrationStats.collect(model, x_calib, {"fc2": model.fc2})
        Q = component_similarity(model.fc2, stats["fc2"])
    """

    def __init__(self, layers: Mapping[str, nn.Module]) -> None:
        for layer in layers.values():
            _check_layer(layer)
        self.layers = dict(layers)
        self.stats: dict[str, LayerStats] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str) -> Callable[..., None]:
        layer = self.layers[name]

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            p = _patches(layer, inputs[0].detach())  # (N, D, L)
            n, d, positions = p.shape
            flat = p.transpose(0, 1).reshape(d, n * positions)
            st = self.stats.get(name)
            if st is None:
                kernel = math.prod(layer.kernel_size) if isinstance(layer, nn.Conv2d) else 1
                z = p.new_zeros
                st = LayerStats(z(d, d), z(d), z(positions, d), 0, positions, d // kernel, kernel)
                self.stats[name] = st
            elif st.positions != positions:
                raise ValueError(f"CalibrationStats: layer {name!r} saw {positions} positions, before {st.positions}")
            st.gram += flat @ flat.T
            st.patch_sum += flat.sum(1)
            st.position_sum += p.sum(0).T
            st.count += n

        return hook

    def __enter__(self) -> CalibrationStats:
        self._handles = [m.register_forward_pre_hook(self._hook(name)) for name, m in self.layers.items()]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __getitem__(self, name: str) -> LayerStats:
        if name not in self.stats:
            raise KeyError(f"CalibrationStats: no statistics for layer {name!r} (was data run through the model?)")
        return self.stats[name]

    @classmethod
    @torch.no_grad()
    def collect(
        cls, model: nn.Module, inputs: torch.Tensor, layers: Mapping[str, nn.Module], batch_size: int = 64
    ) -> CalibrationStats:
        """Run ``inputs`` (N, ...) through ``model`` in eval mode, ``batch_size`` at a time."""
        if inputs.shape[0] == 0:
            raise ValueError("CalibrationStats.collect: the calibration inputs are empty")
        check_finite(inputs, "inputs")
        was_training = model.training
        model.eval()
        try:
            with cls(layers) as stats:
                for chunk in inputs.split(batch_size):
                    model(chunk)
        finally:
            model.train(was_training)
        return stats


# --------------------------------------------------------------------------- CSM
def _centred_moment(stats: LayerStats, center: Center, mean: MeanKind, ref: LayerStats | None) -> torch.Tensor:
    g = stats.second_moment
    if center == "none":
        return g
    src = stats if center == "self" else ref
    if src is None:
        raise ValueError("component_similarity: center='reference' needs ref_stats (statistics of general data)")
    if src.gram.shape != g.shape or src.positions != stats.positions:
        raise ValueError("component_similarity: ref_stats come from a layer of another shape or input size")
    # second moment about the mean m: E sum_l (p_l - m_l)(p_l - m_l)^T. With m the data's own mean
    # (center="self") this is E<A_i, A_j> - <E A_i, E A_j>.
    if mean == "channel":
        mu, mf = src.mean_patch, stats.mean_patch
        return g + stats.positions * (torch.outer(mu, mu) - torch.outer(mu, mf) - torch.outer(mf, mu))
    m, mf = src.mean_map, stats.mean_map  # (L, D)
    return g + m.T @ m - m.T @ mf - mf.T @ m


def component_similarity(
    layer: nn.Module,
    stats: LayerStats,
    center: Center = "none",
    mean: MeanKind = "channel",
    ref_stats: LayerStats | None = None,
    out_channels: Sequence[int] | torch.Tensor | None = None,
) -> torch.Tensor:
    """The component similarity matrices ``Q^c_ij = E<A_ci, A_cj>`` (float64, (c_out, c_in, c_in)).

    Args:
        layer: the Conv2d / Linear whose statistics ``stats`` hold.
        center: ``"none"`` (uncentred), ``"self"`` (``E<A_ci, A_cj> - <E A_ci, E A_cj>``, about the
            calibration data's own mean) or ``"reference"``: ``E<A_ci - m_ci, A_cj - m_cj>`` about
            the mean ``m`` of ``ref_stats`` (general data; for BatchNorm networks the role of the
            stored running mean). With a foreign mean this is not ``E<A_i, A_j> - <m_i, m_j>``: the
            cross terms stay (the literal subtraction wiped out the remaining classes in our
            unlearning runs).
        mean: ``"channel"``: the mean contribution is a per-(c, i) scalar over positions
            (BatchNorm style); ``"map"``: a mean map per position.
        out_channels: compute only these output channels (chunking).
    """
    _check_layer(layer)
    validate_params(
        {"center": [Options(("none", "self", "reference"))], "mean": [Options(("channel", "map"))]},
        {"center": center, "mean": mean},
        owner="component_similarity",
    )
    w = layer.weight.detach().double()
    c_out = w.shape[0]
    w = w.reshape(c_out, stats.c_in, stats.kernel)
    if w.shape[1] * w.shape[2] != stats.gram.shape[0]:
        raise ValueError(
            f"component_similarity: layer has {w.shape[1] * w.shape[2]} inputs per output, stats have {stats.gram.shape[0]}"
        )
    if out_channels is not None:
        w = w[torch.as_tensor(out_channels, dtype=torch.long)]
    g = _centred_moment(stats, center, mean, ref_stats).reshape(stats.c_in, stats.kernel, stats.c_in, stats.kernel)
    if stats.kernel == 1:
        g2 = g[:, 0, :, 0]
        return w[:, :, 0, None] * g2 * w[:, None, :, 0]
    gw = torch.einsum("ikjl,cjl->cikj", g, w)  # (c, i, k, j)
    return torch.einsum("cik,cikj->cij", w, gw)


# --------------------------------------------------------------------------- scores
def _check_q(q: torch.Tensor, name: str = "Q") -> None:
    if q.ndim < 2 or q.shape[-1] != q.shape[-2] or q.shape[-1] == 0:
        raise ValueError(f"{name} must be (..., n, n) with n >= 1, got shape {tuple(q.shape)}")
    check_finite(q, name)


def _live(diag: torch.Tensor) -> torch.Tensor:
    scale = diag.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(diag.dtype).tiny)
    return diag > _TINY * scale


def _fidelity(q1: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    total = q1.sum(-1, keepdim=True)
    ok = _live(diag) & (total > 0)
    s = q1.square() / (diag * total).where(ok, torch.ones_like(diag))
    return s.where(ok, torch.zeros_like(s))


def _alpha(q1: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
    ok = _live(diag)
    a = q1 / diag.where(ok, torch.ones_like(diag))
    return a.where(ok, torch.zeros_like(a))


def singleton_fidelity(q: torch.Tensor) -> torch.Tensor:
    """``s_i = FS({i}) = (Q1)_i^2 / (Q_ii 1'Q1)`` (Equation 3): the squared uncentred correlation
    of ``Y_c`` with ``A_ci``. Dead components (``Q_ii`` ~ 0) and silent outputs (``1'Q1`` <= 0)
    score 0, never NaN."""
    _check_q(q)
    return _fidelity(q.sum(-1), torch.diagonal(q, dim1=-2, dim2=-1))


def rowsum_saliency(q: torch.Tensor) -> torch.Tensor:
    """The "RowSum" saliency ``(Q1)_i = E<Y_c, A_ci>`` (signed), which the paper's appendix uses in
    practice for vision models."""
    _check_q(q)
    return q.sum(-1)


def alpha_scores(q: torch.Tensor) -> torch.Tensor:
    """``alpha_i = (Q1)_i / Q_ii``, the least-squares coefficient of ``Y_c`` on ``A_ci`` alone (0 for
    a dead component)."""
    _check_q(q)
    return _alpha(q.sum(-1), torch.diagonal(q, dim1=-2, dim2=-1))


def cholesky_rownorm_scores(q: torch.Tensor, ridge: float = 1e-4) -> torch.Tensor:
    """The LLM estimator of the paper's appendix: squared row norms of ``L`` with
    ``Q + ridge I = L L^T``. Note that ``||L_i||^2 = Q_ii + ridge``: as written this ranks
    components by their energy ``E||A_ci||^2``."""
    _check_q(q)
    validate_params(
        {"ridge": [Interval(float, 0, math.inf, closed="left")]}, {"ridge": ridge}, owner="cholesky_rownorm"
    )
    eye = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device)
    chol, info = torch.linalg.cholesky_ex(q + ridge * eye)
    if bool((info > 0).any()):
        raise ValueError(
            "cholesky_rownorm_scores: Q + ridge I is not positive definite (e.g. a CSM centred on a reference mean); "
            "raise the ridge or use another score"
        )
    return chol.square().sum(-1)


SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "fidelity": singleton_fidelity,
    "rowsum": rowsum_saliency,
    "alpha": alpha_scores,
    "cholesky_rownorm": cholesky_rownorm_scores,
}


def component_scores(q: torch.Tensor, score: str = "fidelity") -> torch.Tensor:
    """Score every component of every output channel: ``score`` in :data:`SCORES`."""
    validate_params({"score": [Options(tuple(SCORES))]}, {"score": score}, owner="component_scores")
    return SCORES[score](q)


def layer_scores(
    layer: nn.Module,
    stats: LayerStats,
    score: str = "fidelity",
    center: Center = "none",
    mean: MeanKind = "channel",
    ref_stats: LayerStats | None = None,
) -> torch.Tensor:
    """``component_scores(component_similarity(layer, stats, ...), score)`` (c_out, c_in) without
    building the (c_out, c_in, c_in) CSMs: "fidelity", "rowsum" and "alpha" need only
    ``(Q1)_i = <w_ci, (G w_c)_i>`` and ``Q_ii = <w_ci, G_ii w_ci>``."""
    validate_params({"score": [Options(tuple(SCORES))]}, {"score": score}, owner="layer_scores")
    if score == "cholesky_rownorm":
        return cholesky_rownorm_scores(component_similarity(layer, stats, center, mean, ref_stats))
    _check_layer(layer)
    validate_params(
        {"center": [Options(("none", "self", "reference"))], "mean": [Options(("channel", "map"))]},
        {"center": center, "mean": mean},
        owner="layer_scores",
    )
    w = layer.weight.detach().double()
    c_out, d = w.shape[0], stats.gram.shape[0]
    if w[0].numel() != d:
        raise ValueError(f"layer_scores: layer has {w[0].numel()} inputs per output, stats have {d}")
    wf = w.reshape(c_out, d)
    g = _centred_moment(stats, center, mean, ref_stats)
    gw = (wf @ g).reshape(c_out, stats.c_in, stats.kernel)  # (G w_c), g symmetric
    w3 = wf.reshape(c_out, stats.c_in, stats.kernel)
    q1 = (w3 * gw).sum(-1)
    blocks = g.reshape(stats.c_in, stats.kernel, stats.c_in, stats.kernel).diagonal(dim1=0, dim2=2)  # (k, k, c_in)
    diag = torch.einsum("cik,kli,cil->ci", w3, blocks, w3)
    if score == "rowsum":
        return q1
    return _fidelity(q1, diag) if score == "fidelity" else _alpha(q1, diag)


# --------------------------------------------------------------------------- subsets
def _subset_mask(subset: torch.Tensor | Sequence[int], n: int) -> torch.Tensor:
    s = torch.as_tensor(subset)
    if s.dtype == torch.bool:
        if s.shape[-1] != n:
            raise ValueError(f"subset mask must have {n} entries in its last axis, got shape {tuple(s.shape)}")
        return s
    s = s.long().reshape(-1)
    if s.numel() and (int(s.min()) < 0 or int(s.max()) >= n):
        raise ValueError(f"subset holds indices outside [0, {n}): {s.tolist()}")
    mask = torch.zeros(n, dtype=torch.bool)
    mask[s] = True
    return mask


def optimal_compensation(
    q: torch.Tensor, subset: torch.Tensor | Sequence[int], ridge: float = 1e-4, ridge_relative: bool = False
) -> torch.Tensor:
    """The optimal rescaling ``delta* = 1 + (Q[C,C] + ridge I)^-1 Q[C, C'] 1`` on the kept set ``C``
    and 0 off it (Proposition 3.8).

    Args:
        q: (..., n, n) CSMs.
        subset: kept components: indices, or a bool mask (n,) or (..., n) (one set per matrix).
        ridge: added to the diagonal of ``Q[C, C]`` (absolute; keep it small against diag(Q)).
        ridge_relative: if True, the ridge is ``ridge * mean(diag Q[C, C])``.
    """
    _check_q(q)
    validate_params(
        {"ridge": [Interval(float, 0, math.inf, closed="left")]}, {"ridge": ridge}, owner="optimal_compensation"
    )
    n = q.shape[-1]
    keep = _subset_mask(subset, n).to(q.device).expand(q.shape[:-1])
    kf = keep.to(q.dtype)
    lam = torch.full(q.shape[:-1], float(ridge), dtype=q.dtype, device=q.device)[..., :1]
    if ridge_relative:
        diag = torch.diagonal(q, dim1=-2, dim2=-1)
        lam = lam * ((diag * kf).sum(-1, keepdim=True) / kf.sum(-1, keepdim=True).clamp_min(1))
    a = q * (kf[..., :, None] * kf[..., None, :]) + torch.diag_embed(lam * kf + (1 - kf))
    rhs = (q @ (1 - kf)[..., None])[..., 0] * kf
    delta = 1 + torch.linalg.solve(a, rhs[..., None])[..., 0]
    return delta * kf


def subset_fidelity(q: torch.Tensor, subset: torch.Tensor | Sequence[int], ridge: float = 0.0) -> torch.Tensor:
    """``FS(C) = 1 - e'Qe / 1'Q1`` with ``e = 1 - delta*(C)`` (Definition 3.1 at the optimal
    compensation): 0 for the empty set, 1 for all components, monotone in ``C`` (at ridge 0)."""
    delta = optimal_compensation(q, subset, ridge)
    e = 1 - delta
    resid = (e[..., None, :] @ q @ e[..., :, None])[..., 0, 0]
    total = q.sum((-1, -2))
    return torch.where(total > 0, 1 - resid / total.where(total > 0, torch.ones_like(total)), torch.zeros_like(total))


def naive_kmfs(q: torch.Tensor, k: int) -> torch.Tensor:
    """NAIVE k-MFS: the ``k`` components of highest singleton fidelity (sorted indices, (..., k));
    exactly optimal when ``Q`` is diagonal (Theorem 3.9)."""
    s = singleton_fidelity(q)
    _check_k(k, q.shape[-1])
    return torch.topk(s, k, dim=-1).indices.sort(-1).values


def _check_k(k: int, n: int) -> None:
    validate_params({"k": [Interval(int, 0, n, closed="both")]}, {"k": k}, owner="k-MFS")


def kmfs_monte_carlo(
    q: torch.Tensor, k: int, n_samples: int = 1000, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, float]:
    """The paper's Monte-Carlo estimate of the k-MFS of one CSM ``q`` (n, n): the best of
    ``n_samples`` uniformly random subsets of size ``k``. Returns (sorted indices, fidelity)."""
    _check_q(q)
    if q.ndim != 2:
        raise ValueError(f"kmfs_monte_carlo takes one (n, n) matrix, got shape {tuple(q.shape)}")
    n = q.shape[-1]
    _check_k(k, n)
    validate_params({"n_samples": [Interval(int, 1, math.inf, closed="left")]}, {"n_samples": n_samples}, owner="kmfs")
    idx = torch.rand(n_samples, n, generator=generator).argsort(-1)[:, :k]
    masks = torch.zeros(n_samples, n, dtype=torch.bool).scatter_(1, idx, True)
    fs = subset_fidelity(q.expand(n_samples, n, n), masks)
    best = int(fs.argmax())
    return idx[best].sort().values, float(fs[best])


def bruteforce_kmfs(q: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    """Exact k-MFS of one small CSM by enumerating every subset of size ``k`` (tests only)."""
    _check_q(q)
    n = q.shape[-1]
    _check_k(k, n)
    combos = torch.tensor(list(itertools.combinations(range(n), k)), dtype=torch.long)
    combos = combos.reshape(-1, k) if k else torch.zeros(1, 0, dtype=torch.long)
    masks = torch.zeros(combos.shape[0], n, dtype=torch.bool).scatter_(1, combos, True)
    fs = subset_fidelity(q.expand(combos.shape[0], n, n), masks)
    best = int(fs.argmax())
    return combos[best], float(fs[best])


def _k_of(n: int, keep_fraction: float | None, k: int | None, owner: str) -> int:
    if (keep_fraction is None) == (k is None):
        raise ValueError(f"{owner}: give exactly one of keep_fraction and k")
    if k is not None:
        validate_params({"k": [Interval(int, 0, n, closed="both")]}, {"k": k}, owner=owner)
        return int(k)
    validate_params(
        {"keep_fraction": [Interval(float, 0, 1, closed="both")]}, {"keep_fraction": keep_fraction}, owner=owner
    )
    return min(n, math.ceil(float(keep_fraction) * n - 1e-9))


def hifi_sets(scores: torch.Tensor, keep_fraction: float | None = None, k: int | None = None) -> torch.Tensor:
    """HiFi set of every output channel: the indices (c_out, k) of its ``k`` highest-scoring
    components (``k = ceil(keep_fraction * c_in)`` when a fraction is given)."""
    if scores.ndim != 2:
        raise ValueError(f"hifi_sets: scores must be (c_out, c_in), got shape {tuple(scores.shape)}")
    kk = _k_of(scores.shape[1], keep_fraction, k, "hifi_sets")
    return torch.topk(scores, kk, dim=1).indices


def hifi_membership(
    scores: torch.Tensor, keep_fraction: float | None = None, k: int | None = None, threshold: float | None = None
) -> torch.Tensor:
    """Bool (c_out, c_in): is component ``i`` in output channel ``c``'s HiFi set? Either the top
    ``k`` (or ``keep_fraction``) per output channel, or every score >= ``threshold``."""
    if threshold is not None:
        if keep_fraction is not None or k is not None:
            raise ValueError("hifi_membership: give threshold alone, or one of keep_fraction and k")
        return scores >= threshold
    idx = hifi_sets(scores, keep_fraction, k)
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, idx, True)


@torch.no_grad()
def local_global_error_ratio(
    model: nn.Module, layer: str, keep: torch.Tensor, inputs: torch.Tensor, batch_size: int = 64
) -> dict[str, float]:
    """The analysis tool for the local-to-global bound (Theorem 3.6): mask the components of one
    layer (``keep``: bool (c_out, c_in), False = zeroed weight ``W[c, i]``) and compare the global
    error ``E||N(x) - N_masked(x)||^2`` with the local one ``sum_c E||Y_c - sum_i m_ci A_ci||^2 =
    sum_c e'Q^c e`` (``e = 1 - m``) on ``inputs``. Returns ``{"local", "global", "ratio"}``."""
    module = model.get_submodule(layer)
    w = module.weight
    if keep.shape != w.shape[:2] or keep.dtype != torch.bool:
        raise ValueError(f"local_global_error_ratio: keep must be a bool mask of shape {tuple(w.shape[:2])}")
    stats = CalibrationStats.collect(model, inputs, {layer: module}, batch_size)
    q = component_similarity(module, stats[layer])
    e = (~keep).double()
    local = float((e[:, None, :] @ q @ e[:, :, None]).sum())
    was_training = model.training
    model.eval()
    before = torch.cat([model(c) for c in inputs.split(batch_size)])
    saved = w.detach().clone()
    try:
        w.mul_(keep.reshape(*keep.shape, *([1] * (w.ndim - 2))).to(w.dtype))
        after = torch.cat([model(c) for c in inputs.split(batch_size)])
    finally:
        w.copy_(saved)
        model.train(was_training)
    glob = float((before - after).double().square().sum() / len(inputs))
    return {"local": local, "global": glob, "ratio": glob / local if local > 0 else math.inf}


# --------------------------------------------------------------------------- synthetic data
def synthetic_like(
    x: torch.Tensor, n: int, components: int = 3, seed: int = 0, clip: tuple[float, float] | None = (0.0, 1.0)
) -> torch.Tensor:
    """``n`` samples from a diagonal Gaussian mixture (scikit-learn, ``reg_covar=1e-3``) fitted on
    the flattened ``x`` (N, ...), reshaped like ``x`` and clipped to ``clip``: a stand-in for the
    paper's generated ("distributional access") calibration data when no generator ships
    offline. Uses no labels; fit it per class for class-conditional samples."""
    from sklearn.mixture import GaussianMixture

    validate_params(
        {"n": [Interval(int, 1, math.inf, closed="left")], "components": [Interval(int, 1, math.inf, closed="left")]},
        {"n": n, "components": components},
        owner="synthetic_like",
    )
    flat = x.detach().reshape(x.shape[0], -1).double().numpy()
    k = min(components, flat.shape[0])
    gmm = GaussianMixture(k, covariance_type="diag", reg_covar=1e-3, random_state=seed).fit(flat)
    gmm.random_state = seed
    samples, _ = gmm.sample(n)
    out = torch.from_numpy(samples).to(x.dtype).reshape(n, *x.shape[1:])
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # sample() groups by component
    out = out[perm]
    return out.clamp(*clip) if clip is not None else out


# --------------------------------------------------------------------------- pruning
_IN_FNS = (tp.prune_conv_in_channels, tp.prune_linear_in_channels)
_OUT_FNS = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)


def prunable_weight_count(model: nn.Module) -> int:
    """Number of Conv2d / Linear weight entries: the denominator of a structured sparsity."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))


def _default_ignored(model: nn.Module) -> list[nn.Module]:
    """The last Conv2d / Linear in module order: the classifier, whose outputs are the classes."""
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return layers[-1:]


def _resolve(model: nn.Module, layers: Iterable[str | nn.Module]) -> list[nn.Module]:
    out = []
    for layer in layers:
        out.append(model.get_submodule(layer) if isinstance(layer, str) else layer)
    return out


def _rank01(x: torch.Tensor) -> torch.Tensor:
    """Ranks of ``x`` scaled into [0, 0.5): a tie-breaker that never outweighs a unit of count."""
    r = torch.empty_like(x, dtype=torch.float64)
    r[x.argsort(stable=True)] = torch.arange(x.numel(), dtype=torch.float64)
    return 0.5 * r / max(1, x.numel())


class ModHiFiImportance(tp.importance.Importance):
    """torch-pruning ``Importance`` of ModHiFi: per channel of a group, the number of (layer,
    output channel) pairs whose HiFi set contains it, summed over the group's consumer layers,
    plus a tie-breaker in [0, 0.5) from the summed score. 0 (before the tie-breaker) means no
    output channel of any consumer needs the channel: the union rule prunes it.

    Args:
        membership: ``{consumer layer: bool (c_out, c_in)}`` HiFi membership.
        scores: ``{consumer layer: (c_out, c_in)}`` scores summed for the tie-breaker.
    """

    def __init__(self, membership: Mapping[nn.Module, torch.Tensor], scores: Mapping[nn.Module, torch.Tensor]) -> None:
        self.membership, self.scores = membership, scores

    @torch.no_grad()
    def counts(self, group: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(membership count, summed score) per root channel, or None without a scored consumer."""
        n = len(group[0].idxs)
        count = torch.zeros(n, dtype=torch.float64)
        total = torch.zeros(n, dtype=torch.float64)
        found = False
        for i, (dep, idxs) in enumerate(group):
            layer = dep.target.module
            if dep.handler not in _IN_FNS or layer not in self.membership:
                continue
            root = torch.as_tensor(group[i].root_idxs, dtype=torch.long)
            local = torch.as_tensor([int(j) for j in idxs], dtype=torch.long)
            count.scatter_add_(0, root, self.membership[layer][:, local].sum(0).double())
            total.scatter_add_(0, root, self.scores[layer][:, local].sum(0).double())
            found = True
        return (count, total) if found else None

    def __call__(self, group: Any) -> torch.Tensor | None:
        c = self.counts(group)
        if c is None:
            return None
        count, total = c
        return (count + _rank01(total)).float()


@dataclass
class _GroupPlan:
    root: nn.Module
    handler: Any
    size: int
    items: list[tuple[nn.Module, str, int]]  # (layer, "in" | "out", entries per root channel)


def _plan_groups(groups: list[Any]) -> list[_GroupPlan]:
    plans = []
    for g in groups:
        size = len(g[0].idxs)
        items = []
        for dep, idxs in g:
            m = dep.target.module
            if not isinstance(m, nn.Conv2d | nn.Linear):
                continue
            if dep.handler in _IN_FNS:
                items.append((m, "in", len(idxs) // size))
            elif dep.handler in _OUT_FNS:
                items.append((m, "out", len(idxs) // size))
        plans.append(_GroupPlan(g[0].dep.target.module, g[0].dep.handler, size, items))
    return plans


def _removed_fraction(model: nn.Module, plans: list[_GroupPlan], n_prune: list[int]) -> float:
    frac: dict[tuple[int, str], float] = {}
    for plan, p in zip(plans, n_prune):
        for m, side, _ in plan.items:
            frac[id(m), side] = (plan.size - p) / plan.size
    total = kept = 0.0
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            n = m.weight.numel()
            total += n
            kept += n * frac.get((id(m), "in"), 1.0) * frac.get((id(m), "out"), 1.0)
    return 1.0 - kept / total


def _uniform_budget(model: nn.Module, plans: list[_GroupPlan], sparsity: float, owner: str) -> list[int]:
    """Channels to prune per group, the same fraction of every group, the fewest that remove at
    least ``sparsity`` of the Conv2d / Linear weights."""

    def counts(r: float) -> list[int]:
        return [min(p.size - 1, math.floor(r * p.size + 1e-9)) for p in plans]

    if sparsity <= 0.0:
        return [0] * len(plans)
    most = _removed_fraction(model, plans, counts(1.0))
    if most < sparsity:
        raise ValueError(
            f"{owner}: sparsity {sparsity:g} is out of reach; removing all but one channel of every prunable "
            f"group removes {most:.4f} of the Conv2d/Linear weights"
        )
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _removed_fraction(model, plans, counts(mid)) >= sparsity:
            hi = mid
        else:
            lo = mid
    return counts(hi)


def _calibration_tensor(calibration: torch.Tensor | None, owner: str) -> torch.Tensor:
    if calibration is None:
        raise ValueError(f"{owner}: needs calibration inputs (unlabelled samples, N >= 1)")
    if not isinstance(calibration, torch.Tensor) or calibration.ndim < 2 or calibration.shape[0] == 0:
        shape = tuple(calibration.shape) if isinstance(calibration, torch.Tensor) else type(calibration).__name__
        raise ValueError(f"{owner}: calibration must be a tensor (N, ...) with N >= 1, got {shape}")
    check_finite(calibration, "calibration")
    return calibration


@torch.no_grad()
def _recalibrate_bn(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> None:
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    was_training = model.training
    torch.optim.swa_utils.update_bn(list(inputs.split(batch_size)), model)
    model.train(was_training)


class _StructuredPruner(Pruner):
    """Shared machinery: build the dependency graph, score the groups, remove channels."""

    structured: ClassVar[bool] = True
    needs_calibration: ClassVar[bool] = True

    def __init__(self, bn_recalibrate: bool = True, ignored_layers: Sequence[str] = (), batch_size: int = 64) -> None:
        super().__init__()
        validate_params(
            {"bn_recalibrate": [Options((True, False))], "batch_size": [Interval(int, 1, math.inf, closed="left")]},
            {"bn_recalibrate": bn_recalibrate, "batch_size": batch_size},
            owner=type(self).__name__,
        )
        self.bn_recalibrate, self.batch_size = bn_recalibrate, batch_size
        self.ignored_layers = tuple(ignored_layers)
        self.last_report: dict[str, Any] = {}

    def extra_repr(self) -> str:
        return f"bn_recalibrate={self.bn_recalibrate}, ignored_layers={self.ignored_layers}"

    def _graph(self, model: nn.Module, calibration: torch.Tensor) -> tuple[Any, list[Any]]:
        with torch.enable_grad():  # torch-pruning traces the model through autograd
            dg = tp.DependencyGraph().build_dependency(model, example_inputs=calibration[:1])
        ignored = _default_ignored(model) + _resolve(model, self.ignored_layers)
        groups = list(dg.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]))
        return dg, groups

    def _remove(
        self,
        dg: Any,
        plans: list[_GroupPlan],
        groups: list[Any],
        imps: list[torch.Tensor | None],
        n_prune: list[int],
        before_prune: Callable[[list[Any]], None] | None = None,
    ) -> int:
        pruning_groups = []
        for plan, imp, p in zip(plans, imps, n_prune):
            if p <= 0 or imp is None:
                continue
            idxs = torch.argsort(imp.double(), stable=True)[:p].tolist()
            pruning_groups.append((dg.get_pruning_group(plan.root, plan.handler, sorted(idxs)), p))
        # every compensation reads the unpruned weights, so all of them come before any removal
        if before_prune is not None:
            before_prune([pg for pg, _ in pruning_groups])
        for pg, _ in pruning_groups:
            pg.prune()
        return sum(p for _, p in pruning_groups)


class ModHiFiPruner(_StructuredPruner):
    """ModHiFi-P, structured pruning from HiFi components (Algorithm 1 of the paper).

    ``prune(model, sparsity, calibration)``: ``calibration`` are unlabelled inputs (N, ...) of
    the training distribution (the paper uses synthetic samples); no labels, loss or gradients
    are used. The model is pruned in place (channels physically removed) and returned.

    Args:
        removal_fraction: ``p``, the fraction of components outside each output channel's HiFi
            set (``k_c = ceil((1 - p) c_in)``); used by ``selection="union"``.
        score: ``"fidelity"`` (singleton fidelity, the paper's definition), ``"rowsum"``,
            ``"alpha"`` or ``"cholesky_rownorm"``.
        ridge / ridge_relative: the compensation's ridge (absolute, or times mean diag Q[C, C]).
        center: ``"self"`` (centred on the calibration mean, the BatchNorm-aware form) or ``"none"``.
        mean: ``"channel"`` or ``"map"`` (see :func:`component_similarity`).
        compensate: rescale the kept consumer weights by ``delta*`` before removal; with
            centring, a consumer's bias absorbs the mean shift ``sum_i (1 - delta_ci) w_ci mu_i``.
        bn_recalibrate: re-estimate BatchNorm running statistics on the calibration data.
        selection: ``"budget"`` (default; a toolkit addition for matched comparisons): every
            prunable group loses the same fraction of its channels, the fewest reaching
            ``sparsity`` (fraction of Conv2d/Linear weights removed), the channels in the fewest
            HiFi sets first (ties: lower summed score). ``"union"`` (the paper's rule): remove
            every channel that is in no HiFi set; passes repeat on fresh statistics until the
            removed fraction reaches ``sparsity``, a pass removes nothing, or ``iterations`` ran.
        iterations: the most union passes.
        ignored_layers: names of layers whose outputs are never pruned (the last Conv2d/Linear,
            the classifier, always is).
        batch_size: calibration batch size.

    After :meth:`prune`, :attr:`last_report` holds the achieved sparsity and channels removed.
    """

    def __init__(
        self,
        removal_fraction: float = 0.1,
        score: str = "fidelity",
        ridge: float = 1e-4,
        ridge_relative: bool = False,
        center: Literal["none", "self"] = "self",
        mean: MeanKind = "channel",
        compensate: bool = True,
        bn_recalibrate: bool = True,
        selection: Literal["budget", "union"] = "budget",
        iterations: int = 5,
        ignored_layers: Sequence[str] = (),
        batch_size: int = 64,
    ) -> None:
        super().__init__(bn_recalibrate, ignored_layers, batch_size)
        validate_params(
            {
                "removal_fraction": [Interval(float, 0, 1, closed="left")],
                "score": [Options(tuple(SCORES))],
                "ridge": [Interval(float, 0, math.inf, closed="left")],
                "ridge_relative": [Options((True, False))],
                "center": [Options(("none", "self"))],
                "mean": [Options(("channel", "map"))],
                "compensate": [Options((True, False))],
                "selection": [Options(("budget", "union"))],
                "iterations": [Interval(int, 1, math.inf, closed="left")],
            },
            {
                "removal_fraction": removal_fraction,
                "score": score,
                "ridge": ridge,
                "ridge_relative": ridge_relative,
                "center": center,
                "mean": mean,
                "compensate": compensate,
                "selection": selection,
                "iterations": iterations,
            },
            owner="ModHiFiPruner",
        )
        self.removal_fraction, self.score, self.ridge, self.ridge_relative = (
            removal_fraction,
            score,
            ridge,
            ridge_relative,
        )
        self.center, self.mean, self.compensate = center, mean, compensate
        self.selection, self.iterations = selection, iterations

    def extra_repr(self) -> str:
        return (
            f"removal_fraction={self.removal_fraction}, score={self.score!r}, ridge={self.ridge}, center={self.center!r}, "
            f"compensate={self.compensate}, selection={self.selection!r}, {super().extra_repr()}"
        )

    def prune(self, model: nn.Module, sparsity: float, calibration: torch.Tensor | None = None) -> nn.Module:
        sparsity = check_sparsity(sparsity, "ModHiFiPruner")
        x = _calibration_tensor(calibration, "ModHiFiPruner")
        total0 = prunable_weight_count(model)
        removed, passes = 0, 0
        with torch.no_grad():
            if self.selection == "budget":
                removed, passes = self._pass(model, x, sparsity), 1
            else:
                while passes < self.iterations:
                    r = self._pass(model, x, None)
                    removed, passes = removed + r, passes + 1
                    if r == 0 or 1 - prunable_weight_count(model) / total0 >= sparsity:
                        break
            if removed and self.bn_recalibrate:
                _recalibrate_bn(model, x, self.batch_size)
        self.last_report = {
            "sparsity": 1 - prunable_weight_count(model) / total0,
            "channels_removed": removed,
            "passes": passes,
        }
        return model

    def _pass(self, model: nn.Module, x: torch.Tensor, sparsity: float | None) -> int:
        dg, groups = self._graph(model, x)
        plans = _plan_groups(groups)
        consumers: dict[nn.Module, str] = {}
        name_of = {m: n for n, m in model.named_modules()}
        for g in groups:
            for dep, _ in g:
                m = dep.target.module
                if dep.handler in _IN_FNS and isinstance(m, nn.Conv2d | nn.Linear) and getattr(m, "groups", 1) == 1:
                    consumers[m] = name_of[m]
        stats = CalibrationStats.collect(model, x, {n: m for m, n in consumers.items()}, self.batch_size)
        membership, scores = {}, {}
        keep = 1.0 - self.removal_fraction
        for m, name in consumers.items():
            s = layer_scores(m, stats[name], self.score, center=self.center, mean=self.mean)
            scores[m] = s
            membership[m] = hifi_membership(s, keep_fraction=keep)
        importance = ModHiFiImportance(membership, scores)
        imps = [importance(g) for g in groups]
        scored = [i for i, imp in enumerate(imps) if imp is not None]  # groups with a scored consumer
        groups, plans, imps = [groups[i] for i in scored], [plans[i] for i in scored], [imps[i] for i in scored]
        if sparsity is None:  # union rule: prune the channels in no HiFi set (always keep one)
            n_prune = []
            for imp, plan in zip(imps, plans):
                n_prune.append(0 if imp is None else min(plan.size - 1, int((imp < 1).sum())))
        else:
            n_prune = _uniform_budget(model, plans, sparsity, "ModHiFiPruner")

        def compensate(pgs: list[Any]) -> None:
            if not self.compensate:
                return
            dropped: dict[nn.Module, set[int]] = {}  # a consumer may lose inputs to several groups
            for pg in pgs:
                for dep, idxs in pg:
                    if dep.handler in _IN_FNS and dep.target.module in consumers:
                        dropped.setdefault(dep.target.module, set()).update(int(i) for i in idxs)
            for m, drop in dropped.items():
                kept = torch.ones(m.weight.shape[1], dtype=torch.bool)
                kept[torch.as_tensor(sorted(drop), dtype=torch.long)] = False
                self._compensate(m, kept, stats[consumers[m]])

        return self._remove(dg, plans, groups, imps, n_prune, compensate)

    def _compensate(self, layer: nn.Module, kept: torch.Tensor, st: LayerStats, chunk: int = 64) -> None:
        """Rescale the kept components by delta* (and absorb the mean shift into the bias), ``chunk``
        output channels at a time (their CSMs are (chunk, c_in, c_in))."""
        w = layer.weight
        c_out = w.shape[0]
        w64 = w.detach().double().reshape(c_out, st.c_in, st.kernel)
        new = torch.empty_like(w64)
        for start in range(0, c_out, chunk):
            rows = torch.arange(start, min(c_out, start + chunk))
            q = component_similarity(layer, st, center=self.center, mean=self.mean, out_channels=rows)
            delta = optimal_compensation(q, kept, self.ridge, self.ridge_relative)  # (rows, c_in)
            new[rows] = w64[rows] * delta[..., None]
        if self.center != "none" and layer.bias is not None:
            mu = st.mean_patch.reshape(st.c_in, st.kernel)
            layer.bias.add_(((w64 - new) * mu).sum((1, 2)).to(layer.bias.dtype))
        w.copy_(new.reshape(w.shape).to(w.dtype))


class L2StructuredPruner(_StructuredPruner):
    """The L2-magnitude structured baseline (``torch_pruning.importance.MagnitudeImportance(p=2)``:
    the L2 norm of every weight slice coupled to a channel, summed over its group) on the same
    uniform channel budget as :class:`ModHiFiPruner` with ``selection="budget"``, so both give
    the same architecture at a sparsity. ``criterion="random"`` draws the channels at random
    (seeded by ``seed``) instead. Optional BatchNorm recalibration on the calibration inputs."""

    def __init__(
        self,
        bn_recalibrate: bool = True,
        criterion: Literal["l2", "random"] = "l2",
        seed: int = 0,
        ignored_layers: Sequence[str] = (),
        batch_size: int = 64,
    ) -> None:
        super().__init__(bn_recalibrate, ignored_layers, batch_size)
        validate_params(
            {"criterion": [Options(("l2", "random"))], "seed": [Interval(int, 0, math.inf, closed="left")]},
            {"criterion": criterion, "seed": seed},
            owner="L2StructuredPruner",
        )
        self.criterion, self.seed = criterion, seed
        self.last_report = {}

    def prune(self, model: nn.Module, sparsity: float, calibration: torch.Tensor | None = None) -> nn.Module:
        """Prune ``model`` in place; ``calibration`` (unlabelled inputs) traces the model and, with
        ``bn_recalibrate``, re-estimates BatchNorm."""
        sparsity = check_sparsity(sparsity, "L2StructuredPruner")
        x = _calibration_tensor(calibration, "L2StructuredPruner")
        total0 = prunable_weight_count(model)
        with torch.no_grad():
            dg, groups = self._graph(model, x)
            plans = _plan_groups(groups)
            n_prune = _uniform_budget(model, plans, sparsity, "L2StructuredPruner")
            if self.criterion == "l2":
                imp_fn = tp.importance.MagnitudeImportance(p=2, group_reduction="sum", normalizer=None)
                imps = [imp_fn(g) for g in groups]
            else:
                gen = torch.Generator().manual_seed(self.seed)
                imps = [torch.rand(p.size, generator=gen) for p in plans]
            removed = self._remove(dg, plans, groups, imps, n_prune)
            if removed and self.bn_recalibrate:
                _recalibrate_bn(model, x, self.batch_size)
        self.last_report = {"sparsity": 1 - prunable_weight_count(model) / total0, "channels_removed": removed}
        return model
