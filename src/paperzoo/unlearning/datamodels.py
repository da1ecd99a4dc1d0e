"""Margins, regression datamodels and structured forget sets of Attribute-to-Delete (paper 45:
Georgiev, Rinberg, Park, Garg, Ilyas, Madry, Neel, *Attribute-to-Delete: Machine Unlearning via
Datamodel Matching*, ICLR 2025).

A *datamodel* (Ilyas et al., 2022) predicts a model's output on an evaluation example ``i`` from
which training examples it was trained on: ``f(x_i; S') ~ beta[:, i, :]^T 1_{S'} + b[i, :]``
for a subset ``S'`` of the training set (logits, one C-vector per example). Removing the forget
set ``F`` then shifts example ``i``'s output by ``-sum_{j in F} beta[j, i, :]``: Datamodel
Matching's predicted oracle output is the trained model's output minus that sum.

* :func:`margins`: the log-odds of the correct class, the scalar KLoM compares.
* :class:`SubsetTrainingPlan`: the random subsets (``alpha * n`` of the ``n`` training examples
  each) whose trained models the regression is fitted on.
* :class:`RegressionDatamodel`: the least-squares fit of the outputs on the 0/1 inclusion masks,
  ridge in closed form (one ``n x n`` solve shared by every output; the regularisation can be
  chosen on held-out subset models with :meth:`RegressionDatamodel.fit_cv`) or lasso
  (scikit-learn, one coordinate-descent fit per output; slow beyond a few hundred examples).
* :func:`coherent_forget_sets` (forget sets of examples that load on one principal component of
  the train-to-train datamodel matrix) and :func:`nearest_neighbour_forget_set` (the ``k``
  examples nearest to an anchor in some feature space): the non-random forget sets of the paper.

Training the subset models is the expensive part; :func:`paperzoo.training.batched.train_subset_models`
trains many small MLPs at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from paperzoo._validation import Interval, Options, check_finite, validate_params

__all__ = [
    "RegressionDatamodel",
    "SubsetTrainingPlan",
    "coherent_forget_sets",
    "margins",
    "nearest_neighbour_forget_set",
]


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``logit_y - logsumexp_{c != y} logit_c`` (the log-odds ``log p_y / (1 - p_y)`` of the
    softmax): logits (..., n, C), labels (n,) broadcast over the leading dims; returns (..., n).

    Raises:
        ValueError: shapes disagree, fewer than two classes or labels outside ``[0, C)``.
    """
    if logits.ndim < 2 or logits.shape[-1] < 2:
        raise ValueError(f"margins: logits must be (..., n, C) with C >= 2, got shape {tuple(logits.shape)}")
    n, c = logits.shape[-2:]
    if labels.shape != (n,):
        raise ValueError(f"margins: labels must be ({n},), got shape {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ValueError(f"margins: labels must lie in [0, {c}), got {int(labels.min())}..{int(labels.max())}")
    idx = labels.reshape(*([1] * (logits.ndim - 2)), n, 1).expand(*logits.shape[:-1], 1)
    correct = logits.gather(-1, idx)
    others = logits.scatter(-1, idx, float("-inf"))
    return (correct.squeeze(-1) - torch.logsumexp(others, dim=-1)).to(logits.dtype)


@dataclass(frozen=True)
class SubsetTrainingPlan:
    """``num_models`` random subsets of ``n`` training examples, each of exactly
    ``round(alpha * n)`` examples drawn without replacement (seeded): ``masks`` (num_models, n)
    bool. Row ``m`` is the inclusion vector ``1_{S_m}`` of model ``m``.

    With subsets of one size, ``beta + c`` (the same shift ``c`` for every training example) fits
    as well as ``beta``: the data cannot tell the average effect of an example, and the ridge fit
    returns the coefficients whose mean over training examples is zero."""

    n: int
    num_models: int
    alpha: float = 0.5
    seed: int = 0
    masks: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        validate_params(
            {
                "n": [Interval(int, 1, math.inf, closed="left")],
                "num_models": [Interval(int, 1, math.inf, closed="left")],
                "alpha": [Interval(float, 0, 1, closed="neither")],
            },
            {"n": self.n, "num_models": self.num_models, "alpha": self.alpha},
            owner="SubsetTrainingPlan",
        )
        size = max(1, round(self.alpha * self.n))
        rng = np.random.default_rng(self.seed)
        # argsort of uniform noise: one exact-size random subset per row, vectorised
        order = np.argsort(rng.random((self.num_models, self.n)), axis=1)[:, :size]
        masks = np.zeros((self.num_models, self.n), dtype=bool)
        np.put_along_axis(masks, order, True, axis=1)
        object.__setattr__(self, "masks", masks)

    @property
    def subset_size(self) -> int:
        return int(self.masks[0].sum())


def _as_outputs(outputs: torch.Tensor | np.ndarray) -> torch.Tensor:
    out = torch.as_tensor(np.asarray(outputs) if not isinstance(outputs, torch.Tensor) else outputs)
    if out.ndim == 2:
        out = out[..., None]
    if out.ndim != 3:
        raise ValueError(f"RegressionDatamodel: outputs must be (M, n_eval) or (M, n_eval, C), got {tuple(out.shape)}")
    check_finite(out.to(torch.float64), "outputs")
    return out.to(torch.float64)


def _as_masks(masks: torch.Tensor | np.ndarray, n: int | None = None) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).to(torch.float64)
    if m.ndim != 2 or (n is not None and m.shape[1] != n):
        raise ValueError(f"RegressionDatamodel: masks must be (M, {n or 'n'}), got shape {tuple(m.shape)}")
    if bool(((m != 0) & (m != 1)).any()):
        raise ValueError("RegressionDatamodel: masks must hold 0/1 inclusion indicators")
    return m


class RegressionDatamodel:
    """Linear datamodel ``f(x_i; S')_c ~ sum_j beta[j, i, c] 1_{S'}[j] + bias[i, c]``.

    Attributes after :meth:`fit`: ``beta`` (n, n_eval, C) float64, ``bias`` (n_eval, C),
    ``lam`` (the regularisation used). For 2-D outputs (one scalar per example, e.g. margins;
    ``squeeze`` is then True) there is no class axis: ``beta`` (n, n_eval), ``bias`` (n_eval,).
    """

    def __init__(self) -> None:
        self.beta: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.lam: float | None = None
        self.squeeze = False

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        masks: torch.Tensor | np.ndarray,
        outputs: torch.Tensor | np.ndarray,
        reg: str = "ridge",
        lam: float = 1.0,
    ) -> RegressionDatamodel:
        """Fit on subset models: ``masks`` (M, n) 0/1, ``outputs`` (M, n_eval, C) or (M, n_eval).

        ``reg="ridge"``: ``beta = (A^T A + lam I)^{-1} A^T Y`` with centred ``A``, ``Y`` (closed
        form, float64); ``reg="lasso"``: scikit-learn ``Lasso(alpha=lam)`` on the same centred
        data (multi-output coordinate descent, slow for large ``n``).
        """
        validate_params(
            {"reg": [Options(("ridge", "lasso"))], "lam": [Interval(float, 0, math.inf, closed="left")]},
            {"reg": reg, "lam": lam},
            owner="RegressionDatamodel.fit",
        )
        a, y = self._prepare(masks, outputs)
        a_mean, y_mean = a.mean(0), y.mean(0)
        ac, yc = a - a_mean, y - y_mean
        if reg == "ridge":
            gram = ac.T @ ac + lam * torch.eye(a.shape[1], dtype=torch.float64)
            beta = torch.linalg.solve(gram, ac.T @ yc)
        else:
            from sklearn.linear_model import Lasso

            if lam == 0:
                raise ValueError("RegressionDatamodel.fit: lasso needs lam > 0")
            est = Lasso(alpha=lam, fit_intercept=False, max_iter=5000).fit(ac.numpy(), yc.numpy())
            beta = torch.from_numpy(np.asarray(est.coef_, dtype=np.float64).reshape(yc.shape[1], -1).T.copy())
        self._store(beta, y_mean - a_mean @ beta, lam)
        return self

    def fit_cv(
        self,
        masks: torch.Tensor | np.ndarray,
        outputs: torch.Tensor | np.ndarray,
        lams: Sequence[float] = (1.0, 10.0, 100.0, 1000.0),
        heldout: float = 0.1,
        labels: torch.Tensor | None = None,
    ) -> dict[float, float]:
        """Ridge with ``lam`` chosen on the last ``heldout`` fraction of the subset models by
        :meth:`heldout_score` (margins when ``labels`` are given), then refitted on all models.
        One ``n x n`` solve per ``lam``. Returns ``{lam: score}``."""
        a_all, y_all = self._prepare(masks, outputs)
        m = a_all.shape[0]
        n_hold = max(1, int(round(heldout * m)))
        if m - n_hold < 2:
            raise ValueError(f"RegressionDatamodel.fit_cv: {m} subset models are too few to hold {n_hold} out")
        a, y = a_all[: m - n_hold], y_all[: m - n_hold]
        a_mean, y_mean = a.mean(0), y.mean(0)
        ac, yc = a - a_mean, y - y_mean
        gram, rhs, eye = ac.T @ ac, ac.T @ yc, torch.eye(a.shape[1], dtype=torch.float64)
        scores: dict[float, float] = {}
        for lam in lams:
            beta = torch.linalg.solve(gram + lam * eye, rhs)
            self._store(beta, y_mean - a_mean @ beta, float(lam))
            scores[float(lam)] = self.heldout_score(a_all[m - n_hold :], self._unflatten(y_all[m - n_hold :]), labels)
        best = max(scores, key=lambda k: scores[k])
        self._store_flat_fit(a_all, y_all, best)
        return scores

    def _store_flat_fit(self, a: torch.Tensor, y: torch.Tensor, lam: float) -> None:
        a_mean, y_mean = a.mean(0), y.mean(0)
        ac, yc = a - a_mean, y - y_mean
        beta = torch.linalg.solve(ac.T @ ac + lam * torch.eye(a.shape[1], dtype=torch.float64), ac.T @ yc)
        self._store(beta, y_mean - a_mean @ beta, lam)

    def _prepare(
        self, masks: torch.Tensor | np.ndarray, outputs: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = _as_outputs(outputs)
        self.squeeze = (
            torch.as_tensor(np.asarray(outputs) if not isinstance(outputs, torch.Tensor) else outputs).ndim == 2
        )
        a = _as_masks(masks)
        if a.shape[0] != out.shape[0]:
            raise ValueError(f"RegressionDatamodel: {a.shape[0]} masks but {out.shape[0]} output rows")
        self._eval_shape = tuple(out.shape[1:2]) if self.squeeze else tuple(out.shape[1:])
        return a, out.reshape(out.shape[0], -1)

    def _unflatten(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(y.shape[0], *self._eval_shape)

    def _store(self, beta_flat: torch.Tensor, bias_flat: torch.Tensor, lam: float) -> None:
        self.beta = beta_flat.reshape(beta_flat.shape[0], *self._eval_shape)
        self.bias = bias_flat.reshape(*self._eval_shape)
        self.lam = lam

    # ------------------------------------------------------------------ use
    def _fitted(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.beta is None or self.bias is None:
            raise RuntimeError("RegressionDatamodel: call fit() first")
        return self.beta, self.bias

    @property
    def n_train(self) -> int:
        return int(self._fitted()[0].shape[0])

    def effect_of_removal(self, forget: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """``sum_{j in forget} beta[j]``: the predicted change of every evaluation output when the
        forget positions (indices into the datamodel's training set) are added; subtract it to
        predict the outputs after their removal. Returns (n_eval, C) (or (n_eval,))."""
        beta, _ = self._fitted()
        idx = torch.as_tensor(np.asarray(forget), dtype=torch.long).reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= beta.shape[0]):
            raise ValueError(f"RegressionDatamodel: forget positions must lie in [0, {beta.shape[0]})")
        return beta[idx].sum(0)

    def predict(self, masks: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Predicted outputs of models trained on the subsets ``masks`` (M, n) or (n,):
        (M, n_eval, C) (or without the leading / trailing axis)."""
        beta, bias = self._fitted()
        m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).to(torch.float64)
        single = m.ndim == 1
        a = _as_masks(m[None] if single else m, beta.shape[0])
        pred = torch.einsum("mn,n...->m...", a, beta) + bias
        return pred[0] if single else pred

    def heldout_score(
        self,
        masks: torch.Tensor | np.ndarray,
        outputs: torch.Tensor | np.ndarray,
        labels: torch.Tensor | None = None,
    ) -> float:
        """Mean over evaluation examples of the correlation (across held-out subset models)
        between predicted and actual outputs: of the margins when ``labels`` (n_eval,) are given
        and the outputs are logits, else of the outputs (averaged over coordinates)."""
        pred = self.predict(masks)
        actual = _as_outputs(outputs)
        if pred.ndim == 2:
            pred = pred[..., None]
        if labels is not None and actual.shape[-1] > 1:
            pred, actual = margins(pred, labels)[..., None], margins(actual, labels)[..., None]
        pc, ac = pred - pred.mean(0), actual - actual.mean(0)
        den = (pc.square().sum(0) * ac.square().sum(0)).sqrt()
        corr = (pc * ac).sum(0) / den.clamp_min(1e-300)
        return float(corr[den > 0].mean()) if bool((den > 0).any()) else 0.0


def coherent_forget_sets(train_matrix: torch.Tensor | np.ndarray, k: int, pc: int = 1, mode: str = "top") -> np.ndarray:
    """A forget set of training examples that move the model together: project the rows of the
    train-to-train datamodel matrix (n, n) (row ``j``: example ``j``'s effect on every training
    example's output) on its ``pc``-th principal component and take the ``k`` highest
    (``mode="top"``) or the ``k`` highest and the ``k`` lowest (``"top_bottom"``, 2k examples).
    The component's sign is fixed so that its largest-magnitude loading is positive."""
    validate_params(
        {
            "k": [Interval(int, 1, math.inf, closed="left")],
            "pc": [Interval(int, 1, math.inf, closed="left")],
            "mode": [Options(("top", "top_bottom"))],
        },
        {"k": k, "pc": pc, "mode": mode},
        owner="coherent_forget_sets",
    )
    mat = np.asarray(train_matrix, dtype=np.float64)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"coherent_forget_sets: train_matrix must be square (n, n), got {mat.shape}")
    n = mat.shape[0]
    if pc > n or (2 if mode == "top_bottom" else 1) * k > n:
        raise ValueError(f"coherent_forget_sets: pc={pc}, k={k} too large for n={n}")
    centred = mat - mat.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comp = vt[pc - 1]
    comp = comp * np.sign(comp[np.argmax(np.abs(comp))])
    order = np.argsort(-(centred @ comp), kind="stable")
    return np.sort(order[:k]) if mode == "top" else np.sort(np.concatenate([order[:k], order[-k:]]))


def nearest_neighbour_forget_set(
    features: torch.Tensor | np.ndarray, anchor: int | np.ndarray | torch.Tensor, k: int
) -> np.ndarray:
    """The ``k`` rows of ``features`` (n, d) nearest (Euclidean) to ``anchor``: a row index
    (included in the set) or a (d,) vector. Ties broken by index. Returns sorted indices."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"nearest_neighbour_forget_set: features must be (n, d), got {feats.shape}")
    validate_params(
        {"k": [Interval(int, 1, feats.shape[0], closed="both")]}, {"k": k}, owner="nearest_neighbour_forget_set"
    )
    if isinstance(anchor, (int, np.integer)):
        if not 0 <= int(anchor) < feats.shape[0]:
            raise ValueError(f"nearest_neighbour_forget_set: anchor index {anchor} outside [0, {feats.shape[0]})")
        centre = feats[int(anchor)]
    else:
        centre = np.asarray(anchor, dtype=np.float64).reshape(-1)
        if centre.shape != (feats.shape[1],):
            raise ValueError(f"nearest_neighbour_forget_set: anchor must be an index or a ({feats.shape[1]},) vector")
    dist = np.square(feats - centre).sum(1)
    return np.sort(np.argsort(dist, kind="stable")[:k])
