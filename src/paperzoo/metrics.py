"""Evaluation metrics shared by every reproduction.

Classification (accuracy, macro-F1, top-k), multi-label (mAP, micro- and macro-F1),
retrieval (Recall@k and MAP@R through pytorch-metric-learning's ``AccuracyCalculator``, with an
exact torch k-NN so faiss is not needed), verification (Rank-1, EER), clustering (NMI, ARI) and the GCD clustering accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from paperzoo._validation import Interval, validate_params

ArrayLike = np.ndarray | torch.Tensor | Sequence[int] | Sequence[float]


def _np(a: ArrayLike) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _same_length(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{na} and {nb} must have the same length, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] == 0:
        raise ValueError(f"{na} is empty")


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of exact matches."""
    t, p = _np(y_true).ravel(), _np(y_pred).ravel()
    _same_length(t, p, "y_true", "y_pred")
    return float((t == p).mean())


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Unweighted mean of per-class F1 (scikit-learn's ``f1_score(average="macro")``).

    Not torchmetrics' ``multiclass_f1_score``: it needs labels encoded as ``0..K-1`` and
    divides in float32, so its values differ from these (float64) by up to ~4e-8.
    """
    from sklearn.metrics import f1_score

    t, p = _np(y_true).ravel(), _np(y_pred).ravel()
    _same_length(t, p, "y_true", "y_pred")
    return float(f1_score(t, p, average="macro", zero_division=0))


def top_k_accuracy(scores: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy for each k: the target is among the k highest scores (ties broken by
    ``torch.topk``). ``scores`` is (N, C), ``target`` (N,).

    Not torchmetrics' ``multiclass_accuracy(top_k=k, average="micro")``: it agrees without ties,
    but breaks ties differently (``argmax``, the first maximum, for k = 1; one ``topk`` call per
    k otherwise, while this function takes every k from one ``topk(max(ks))``), so results on
    tied scores (e.g. a zero-initialised model) would change.
    """
    if scores.dim() != 2 or target.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (N, C) and target (N,), got {tuple(scores.shape)} and {tuple(target.shape)}")
    if scores.shape[0] == 0:
        raise ValueError("scores is empty")
    in_range = [Interval(int, 1, scores.shape[1], closed="both")]
    validate_params(
        {f"ks[{i}]": in_range for i in range(len(ks))},
        {f"ks[{i}]": k for i, k in enumerate(ks)},
        owner="top_k_accuracy",
    )
    top = scores.topk(max(ks), dim=1).indices
    hit = top == target[:, None]
    return {k: float(hit[:, :k].any(dim=1).float().mean()) for k in ks}


def _retrieval_calculator(ks: Sequence[int], k: int) -> Any:
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    def make(k: int) -> Any:
        def calc(self: Any, knn_labels: torch.Tensor, query_labels: torch.Tensor, **_: Any) -> float:
            hit = (knn_labels[:, :k] == query_labels[:, None]).any(dim=1)
            return float(hit.float().mean())

        return calc

    names = [f"recall_at_{k}" for k in ks]
    attrs: dict[str, Any] = {f"calculate_{n}": make(k) for n, k in zip(names, ks)}
    attrs["requires_knn"] = lambda self: [*AccuracyCalculator.requires_knn(self), *names]
    cls = type("RetrievalCalculator", (AccuracyCalculator,), attrs)
    return cls(
        include=(*names, "mean_average_precision_at_r", "precision_at_1"),
        k=k,
        knn_func=CustomKNN(CosineSimilarity()),
        device=torch.device("cpu"),
    )


def retrieval_metrics(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int] = (1, 2, 4, 8),
    reference: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Recall@k (a same-class item among the k nearest by cosine similarity) and MAP@R.

    With ``reference=None`` every item queries all others (itself excluded), the standard
    deep-metric-learning protocol on unseen classes. Thin wrapper over
    ``pytorch_metric_learning.utils.accuracy_calculator.AccuracyCalculator``.
    """
    if embeddings.dim() != 2 or labels.shape != (embeddings.shape[0],):
        raise ValueError(
            f"embeddings must be (N, D) and labels (N,), got {tuple(embeddings.shape)}, {tuple(labels.shape)}"
        )
    if embeddings.shape[0] < 2:
        raise ValueError("need at least 2 embeddings")
    emb = embeddings.detach().float().cpu()
    lab = labels.detach().cpu()
    ref_lab = lab if reference is None else reference[1].detach().cpu()
    # enough neighbours for the largest k and for MAP@R (R = the query's class size)
    calc = _retrieval_calculator(ks, max(max(ks), int(torch.bincount(ref_lab).max())))
    if reference is None:
        out = calc.get_accuracy(emb, lab)
    else:
        out = calc.get_accuracy(emb, lab, reference[0].detach().float().cpu(), ref_lab, ref_includes_query=False)
    res = {f"R@{k}": float(out[f"recall_at_{k}"]) for k in ks}
    res["MAP@R"] = float(out["mean_average_precision_at_r"])
    res["P@1"] = float(out["precision_at_1"])
    return res


def rank1(
    query: torch.Tensor, query_labels: torch.Tensor, gallery: torch.Tensor, gallery_labels: torch.Tensor
) -> float:
    """Rank-1 identification rate: the nearest gallery item (cosine) has the query's label."""
    if query.shape[0] == 0 or gallery.shape[0] == 0:
        raise ValueError("query and gallery must be non-empty")
    q = torch.nn.functional.normalize(query.float(), dim=1)
    g = torch.nn.functional.normalize(gallery.float(), dim=1)
    nearest = (q @ g.T).argmax(dim=1)
    return float((gallery_labels[nearest] == query_labels).float().mean())


def equal_error_rate(scores: ArrayLike, same: ArrayLike) -> float:
    """Verification EER: the error rate where false accepts equal false rejects (ROC from
    scikit-learn, interpolated between the two bracketing thresholds)."""
    from sklearn.metrics import roc_curve

    s, y = _np(scores).ravel().astype(float), _np(same).ravel().astype(int)
    _same_length(s, y, "scores", "same")
    if y.min() == y.max():
        raise ValueError("same must contain both genuine (1) and impostor (0) pairs")
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    if i + 1 < len(fpr) and (fnr[i] - fpr[i]) * (fnr[i + 1] - fpr[i + 1]) < 0:
        d0, d1 = fnr[i] - fpr[i], fnr[i + 1] - fpr[i + 1]
        w = d0 / (d0 - d1)
        return float(fpr[i] + w * (fpr[i + 1] - fpr[i]))
    return float((fpr[i] + fnr[i]) / 2)


def nmi(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Normalised mutual information (scikit-learn, arithmetic mean normalisation)."""
    from sklearn.metrics import normalized_mutual_info_score

    t, p = _np(y_true).ravel(), _np(y_pred).ravel()
    _same_length(t, p, "y_true", "y_pred")
    return float(normalized_mutual_info_score(t, p))


def ari(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Adjusted Rand index (scikit-learn)."""
    from sklearn.metrics import adjusted_rand_score

    t, p = _np(y_true).ravel(), _np(y_pred).ravel()
    _same_length(t, p, "y_true", "y_pred")
    return float(adjusted_rand_score(t, p))


def _cluster_match(
    y_true: ArrayLike, y_pred: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The one Hungarian matching of predicted clusters to true classes.

    Returns ``(t_classes, p_clusters, t_idx, p_idx, mapping)``: the sorted distinct true labels
    and predicted ids, each sample's position among them, and ``mapping[j]`` = the true-class
    position matched to predicted position ``j`` (a position ``>= len(t_classes)`` means the
    cluster is matched to no class).
    """
    from scipy.optimize import linear_sum_assignment

    t, p = _np(y_true).ravel().astype(np.int64), _np(y_pred).ravel().astype(np.int64)
    _same_length(t, p, "y_true", "y_pred")
    if t.size == 0:
        raise ValueError("y_true is empty")
    if t.min() < 0 or p.min() < 0:
        raise ValueError("labels and predictions must be non-negative")
    t_classes, t_idx = np.unique(t, return_inverse=True)
    p_clusters, p_idx = np.unique(p, return_inverse=True)
    size = max(t_idx.max(), p_idx.max()) + 1
    w = np.zeros((size, size), dtype=np.int64)
    np.add.at(w, (p_idx, t_idx), 1)
    rows, cols = linear_sum_assignment(w, maximize=True)
    mapping = np.empty(size, dtype=np.int64)
    mapping[rows] = cols
    return t_classes, p_clusters, t_idx, p_idx, mapping


def cluster_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, old_mask: ArrayLike, *, balanced: bool = False
) -> dict[str, float]:
    """GCD clustering accuracy (the protocol SimGCD reports).

    One Hungarian matching (``scipy.optimize.linear_sum_assignment``) between predicted
    clusters and true classes over all samples; then accuracy on the whole set (``all``) and
    on the samples whose true class is old (``old``) or new (``new``). A subset that is empty
    gives NaN.

    ``balanced=True`` is the class-balanced variant of the official GCD code (``v2b``, used for
    the long-tailed Herbarium-19): with the same matching, the accuracy of each true class,
    then the unweighted mean over all / old / new classes (a class is old when its samples
    are marked in ``old_mask``).

    >>> cluster_accuracy([0, 0, 0, 1, 1, 2, 2, 2, 3, 3], [1, 1, 0, 0, 0, 2, 2, 3, 3, 3], [1] * 5 + [0] * 5)
    {'all': 0.8, 'old': 0.8, 'new': 0.8}
    """
    t_classes, _, t_idx, p_idx, mapping = _cluster_match(y_true, y_pred)
    m = _np(old_mask).ravel().astype(bool)
    _same_length(t_idx, m, "y_true", "old_mask")
    correct = mapping[p_idx] == t_idx

    if balanced:
        n_cls = t_classes.size
        per_class = np.bincount(t_idx, weights=correct, minlength=n_cls) / np.bincount(t_idx, minlength=n_cls)
        old_cls = np.zeros(n_cls, dtype=bool)
        old_cls[t_idx[m]] = True

        def mean(sel: np.ndarray) -> float:
            return float(per_class[sel].mean()) if sel.any() else float("nan")

        return {"all": float(per_class.mean()), "old": mean(old_cls), "new": mean(~old_cls)}

    def acc(mask: np.ndarray) -> float:
        return float(correct[mask].mean()) if mask.any() else float("nan")

    return {"all": float(correct.mean()), "old": acc(m), "new": acc(~m)}


def cluster_mapping(y_true: ArrayLike, y_pred: ArrayLike) -> dict[int, int]:
    """The Hungarian matching :func:`cluster_accuracy` uses: predicted cluster id -> true class.

    Clusters matched to no class (more clusters than classes) are left out.

    >>> cluster_mapping([0, 0, 1, 1, 2], [5, 5, 3, 3, 3])
    {3: 1, 5: 0}
    """
    t_classes, p_clusters, _, _, mapping = _cluster_match(y_true, y_pred)
    return {
        int(p_clusters[j]): int(t_classes[mapping[j]]) for j in range(p_clusters.size) if mapping[j] < t_classes.size
    }


def multilabel_metrics(scores: ArrayLike, targets: ArrayLike, threshold: float = 0.0) -> dict[str, float]:
    """Multi-label evaluation of ``scores`` (N, C) against multi-hot ``targets`` (N, C).

    ``mAP``: the mean over classes with at least one positive of scikit-learn's
    ``average_precision_score`` (classes without positives have no defined AP and are left out);
    ``micro-F1`` and ``macro-F1``: F1 of the predictions ``scores > threshold`` (the default 0 is
    a probability of 0.5 for logits), pooled over all (sample, class) pairs or averaged over
    classes (scikit-learn's ``f1_score``, ``zero_division=0``).

    Raises:
        ValueError: shapes differ or are not 2-D, no rows, NaN scores, or targets outside {0, 1}.
    """
    from sklearn.metrics import average_precision_score, f1_score

    s, t = _np(scores).astype(np.float64), _np(targets)
    if s.ndim != 2 or t.shape != s.shape:
        raise ValueError(f"scores and targets must both be (N, C), got {s.shape} and {t.shape}")
    if s.shape[0] == 0:
        raise ValueError("scores is empty")
    if np.isnan(s).any():
        raise ValueError("scores holds NaN")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("targets must be multi-hot: every entry 0 or 1")
    t = t.astype(np.int64)
    has_pos = t.sum(axis=0) > 0
    ap = average_precision_score(t[:, has_pos], s[:, has_pos], average=None) if has_pos.any() else np.array([np.nan])
    pred = (s > threshold).astype(np.int64)
    return {
        "mAP": float(np.mean(ap)),
        "micro-F1": float(f1_score(t, pred, average="micro", zero_division=0)),
        "macro-F1": float(f1_score(t, pred, average="macro", zero_division=0)),
    }
