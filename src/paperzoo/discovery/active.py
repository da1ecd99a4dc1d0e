"""Active generalized category discovery (AGCD; Ma, Zhu, Zhong, Zhang & Liu, CVPR 2024).

A SimGCD model (:mod:`paperzoo.discovery.trainer`) trained on a few labels queries an oracle for
the labels of a small, actively chosen set of unlabelled samples over several rounds. The paper's
new pieces, here on the GCD foundation (no copy of the trainer or of the base loss):

* **what to query** - :func:`novel_margin_adaptive`, the adaptive strategy of the official
  ``NovelMarginSamplingAdaptive``: only candidates predicted as *new* (novelty), an equal quota
  ``floor(n / K_new)`` from every predicted new cluster (diversity), ranked by the top-1 / top-2
  probability margin (informativeness): most confident first in the first round(s), most
  uncertain first afterwards; the shortfall is filled with the next new-predicted candidates in
  the same order. Also the generic strategies the paper compares with (:func:`random_query`,
  :func:`margin_query`, :func:`entropy_query`, :func:`least_confidence_query`,
  :func:`novel_random_query`). All are vectorised over the pool, no loop over samples.
* **how to use the answers** - :func:`stable_label_mapping`: the classifier's new-class indices
  are arbitrary cluster ids, so every ground-truth label is mapped into the classifier's label
  space by a Hungarian matching (:func:`paperzoo.metrics.cluster_mapping`) between an EMA
  ("stable") model's predictions and the labels of the labelled + queried samples, recomputed
  every epoch.
* :class:`ActiveLabelTerm`: an extra term for :class:`~paperzoo.discovery.trainer.GCDObjective`
  that keeps the EMA teacher (``torch.optim.swa_utils.AveragedModel`` with
  ``get_ema_multi_avg_fn(0.9)``: ``theta_ema <- 0.9 theta_ema + 0.1 theta``), recomputes the
  mapping once per epoch and adds the active-label loss
  ``w_al lambda (w_cls CE(s / 0.1, map(y)) + w_sc SupCon(z, y))`` on mini-batches of 8 queried
  samples (two views each).
* :func:`active_gcd`: the rounds (query with the student, ask the :class:`SimulatedOracle`, train
  ``epochs_per_round`` epochs with :func:`~paperzoo.discovery.trainer.train_gcd`), and
  :func:`novelty_metrics` (coverage, ratio and entropy of the queried new classes).

Where this differs from the official loop (the foundation has no per-step / per-epoch callback):
the EMA is updated at the start of every training step (so it sees the parameters after the
previous step; :meth:`ActiveLabelTerm.finish` applies the last update), and the pass over the
queried set is interleaved with the SimGCD pass - the first ``ceil(|A| / 8)`` steps of each epoch
each add one queried mini-batch - instead of following it; every queried sample is still used once
per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, validate_params

__all__ = [
    "STRATEGIES",
    "ActiveGCDResult",
    "ActiveLabelTerm",
    "SimulatedOracle",
    "active_gcd",
    "entropy_query",
    "least_confidence_query",
    "map_labels",
    "margin_query",
    "novel_margin_adaptive",
    "novel_margin_query",
    "novel_random_query",
    "novelty_metrics",
    "query_probabilities",
    "random_query",
    "stable_label_mapping",
    "top2_margin",
]

Strategy = Callable[..., np.ndarray]


# --------------------------------------------------------------------------- query strategies
def _check_pool(probs: torch.Tensor, candidate_ids: np.ndarray | torch.Tensor, n: int, n_old: int) -> np.ndarray:
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (N, K), got {tuple(probs.shape)}")
    ids = np.asarray(candidate_ids, dtype=np.int64).ravel()
    if ids.shape[0] != probs.shape[0]:
        raise ValueError(f"candidate_ids must have one id per row of probs, got {ids.shape[0]} and {probs.shape[0]}")
    if ids.size > 1 and not np.diff(np.sort(ids)).all():
        raise ValueError("candidate_ids must be distinct")
    if bool(torch.isnan(probs).any()):
        raise ValueError("probs holds NaN")
    validate_params(
        {
            "n": [Interval(int, 1, math.inf, closed="left")],
            "n_old": [Interval(int, 0, probs.shape[1] - 1, closed="both")],
        },
        {"n": n, "n_old": n_old},
        owner="query strategy",
    )
    if n > ids.size:
        raise ValueError(f"the query budget n={n} is larger than the pool of {ids.size} candidates")
    return ids


def top2_margin(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(argmax p, p_(1) - p_(2))`` of each row of ``probs`` (N, K); ties go to the first index
    (``torch.argmax``), as in the official code."""
    pred = probs.argmax(dim=1, keepdim=True)
    first = probs.gather(1, pred).squeeze(1)
    second = probs.scatter(1, pred, float("-inf")).amax(dim=1)  # cheaper than topk(2) on CPU
    return pred.squeeze(1), first - second


def _stable_order(score: torch.Tensor, descending: bool) -> torch.Tensor:
    """Positions sorted by ``score`` with a *stable* sort (ties keep the pool order; the official
    code uses ``torch.sort``, whose tie order is unspecified)."""
    return torch.sort(score.double(), descending=descending, stable=True).indices


def novel_margin_adaptive(
    probs: torch.Tensor,
    candidate_ids: np.ndarray | torch.Tensor,
    round: int,
    n: int,
    n_old: int,
    *,
    adaptive_round: int = 2,
    strict: bool = True,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The AGCD query strategy (official ``NovelMarginSamplingAdaptive``).

    Args:
        probs: (N, K) ``softmax(logits / 0.1)`` of the candidates (student model, no augmentation).
        candidate_ids: (N,) the candidates' ids (the unlabelled pool minus what was queried).
        round: the active round, from 1.
        n: the query budget of the round.
        n_old: K_old; classifier indices ``>= n_old`` are the new clusters.
        adaptive_round: rounds ``< adaptive_round`` take the most confident (largest margin)
            candidates first, later rounds the most uncertain; 1 gives "novel-margin"
            (uncertain first in every round).
        strict: with fewer than ``n`` new-predicted candidates, raise (the official code
            asserts); ``False`` fills the shortfall with the old-predicted candidates in the same
            order (a model that predicts almost no new class, e.g. after a very short training).
        rng: unused (the strategy is deterministic).

    Returns:
        (n,) the selected ids: per new cluster ``K_old..K-1`` its first ``floor(n / K_new)``
        candidates, then the next new-predicted candidates in margin order.

    Raises:
        ValueError: ``n`` larger than the pool, or fewer than ``n`` candidates predicted new.
    """
    ids = _check_pool(probs, candidate_ids, n, n_old)
    pred, margin = top2_margin(probs)
    order = _stable_order(margin, descending=round < adaptive_round)
    cl = pred[order]
    novel = cl >= n_old
    if strict and int(novel.sum()) < n:
        raise ValueError(f"only {int(novel.sum())} candidates are predicted as new classes, fewer than n={n}")
    q = n // (probs.shape[1] - n_old)
    # rank of each ordered position inside its predicted cluster
    by_cluster = torch.sort(cl, stable=True).indices
    start = torch.searchsorted(cl[by_cluster], cl[by_cluster], side="left")
    rank = torch.empty_like(cl)
    rank[by_cluster] = torch.arange(cl.numel()) - start
    take = novel & (rank < q)
    first = torch.nonzero(take).squeeze(1)
    first = first[torch.from_numpy(np.lexsort((rank[first].numpy(), cl[first].numpy())))]  # cluster-major
    rest = torch.nonzero(novel & ~take).squeeze(1)
    fill = torch.nonzero(~novel).squeeze(1)  # only reached with strict=False
    return ids[order[torch.cat([first, rest, fill])[:n]].numpy()]


def novel_margin_query(
    probs: torch.Tensor, candidate_ids: Any, round: int, n: int, n_old: int, *, rng: Any = None
) -> np.ndarray:
    """ "Novel-margin": :func:`novel_margin_adaptive` with the uncertain-first order in every round."""
    return novel_margin_adaptive(probs, candidate_ids, round, n, n_old, adaptive_round=1)


def random_query(
    probs: torch.Tensor, candidate_ids: Any, round: int, n: int, n_old: int, *, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``n`` candidates uniformly at random (without replacement)."""
    ids = _check_pool(probs, candidate_ids, n, n_old)
    return (rng or np.random.default_rng(0)).choice(ids, n, replace=False)


def novel_random_query(
    probs: torch.Tensor, candidate_ids: Any, round: int, n: int, n_old: int, *, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``n`` candidates uniformly at random among those predicted as new."""
    ids = _check_pool(probs, candidate_ids, n, n_old)
    novel = ids[(probs.argmax(dim=1) >= n_old).numpy()]
    if novel.size < n:
        raise ValueError(f"only {novel.size} candidates are predicted as new classes, fewer than n={n}")
    return (rng or np.random.default_rng(0)).choice(novel, n, replace=False)


def _top_n(ids: np.ndarray, score: torch.Tensor, n: int, descending: bool) -> np.ndarray:
    return ids[_stable_order(score, descending)[:n].numpy()]


def margin_query(
    probs: torch.Tensor, candidate_ids: Any, round: int, n: int, n_old: int, *, rng: Any = None
) -> np.ndarray:
    """The ``n`` smallest top-1 / top-2 margins."""
    ids = _check_pool(probs, candidate_ids, n, n_old)
    return _top_n(ids, top2_margin(probs)[1], n, descending=False)


def entropy_query(
    probs: torch.Tensor, candidate_ids: Any, round: int, n: int, n_old: int, *, rng: Any = None
) -> np.ndarray:
    """The ``n`` largest prediction entropies."""
    ids = _check_pool(probs, candidate_ids, n, n_old)
    ent = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)
    return _top_n(ids, ent, n, descending=True)


def least_confidence_query(
    probs: torch.Tensor, candidate_ids: Any, round: int, n: int, n_old: int, *, rng: Any = None
) -> np.ndarray:
    """The ``n`` smallest top-1 probabilities."""
    ids = _check_pool(probs, candidate_ids, n, n_old)
    return _top_n(ids, probs.max(dim=1).values, n, descending=False)


#: Query strategies by name (the paper's AGCD strategy and the baselines it compares with).
STRATEGIES: dict[str, Strategy] = {
    "novel_margin_adaptive": novel_margin_adaptive,
    "novel_margin": novel_margin_query,
    "novel_random": novel_random_query,
    "random": random_query,
    "margin": margin_query,
    "entropy": entropy_query,
    "least_confidence": least_confidence_query,
}


@torch.no_grad()
def query_probabilities(model: nn.Module, x: torch.Tensor, temperature: float = 0.1, chunk: int = 4096) -> torch.Tensor:
    """``softmax(logits / temperature)`` of ``model(x) -> (z, logits)`` in eval mode (no augmentation)."""
    was = model.training
    model.eval()
    out = torch.cat([F.softmax(model(x[i : i + chunk])[1] / temperature, dim=1) for i in range(0, x.shape[0], chunk)])
    model.train(was)
    return out


# --------------------------------------------------------------------------- label mapping
def stable_label_mapping(pred: Any, target: Any, n_classes: int) -> dict[int, int]:
    """The official ``get_labeled_mapping``: true label ``y`` -> classifier index, a bijection on
    ``0..K-1``.

    The Hungarian matching of the (EMA) model's predictions ``pred`` with the labels ``target``
    (:func:`paperzoo.metrics.cluster_mapping`, maximising the number of agreements); labels and
    indices that no sample names are paired in increasing order (the official code matches the
    full K x K count matrix, where such zero rows / columns pair arbitrarily).

    Raises:
        ValueError: shapes differ, empty input, or a value outside ``0..n_classes-1``.
    """
    from paperzoo.metrics import cluster_mapping

    p, t = np.asarray(pred, dtype=np.int64).ravel(), np.asarray(target, dtype=np.int64).ravel()
    validate_params(
        {"n_classes": [Interval(int, 1, math.inf, closed="left")]},
        {"n_classes": n_classes},
        owner="stable_label_mapping",
    )
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same length, got {p.size} and {t.size}")
    if p.size == 0:
        raise ValueError("pred is empty: the mapping needs labelled samples")
    for name, a in (("pred", p), ("target", t)):
        if a.min() < 0 or a.max() >= n_classes:
            raise ValueError(f"{name} must hold indices in [0, {n_classes - 1}], got values in [{a.min()}, {a.max()}]")
    matched = {y: c for c, y in cluster_mapping(t, p).items()}
    free_y = [y for y in range(n_classes) if y not in matched]
    free_c = sorted(set(range(n_classes)) - set(matched.values()))
    matched.update(zip(free_y, free_c))
    return dict(sorted(matched.items()))


def map_labels(labels: torch.Tensor, mapping: dict[int, int]) -> torch.Tensor:
    """``labels`` through ``mapping`` (a lookup table, vectorised)."""
    table = torch.tensor([mapping[k] for k in range(len(mapping))], dtype=torch.int64, device=labels.device)
    return table[labels]


def novelty_metrics(labels: Any, n_old: int, n_new: int) -> dict[str, float]:
    """Diagnostics of a queried set's true ``labels`` (official ``novelty_metrics.py``):
    ``coverage`` = distinct new classes / K_new, ``ratio`` = share of new-class samples,
    ``entropy`` = entropy of the new-class histogram (at most ``log K_new``)."""
    y = np.asarray(labels, dtype=np.int64).ravel()
    validate_params(
        {"n_old": [Interval(int, 0, math.inf, closed="left")], "n_new": [Interval(int, 1, math.inf, closed="left")]},
        {"n_old": n_old, "n_new": n_new},
        owner="novelty_metrics",
    )
    if y.size == 0:
        raise ValueError("labels is empty")
    if y.min() < 0 or y.max() >= n_old + n_new:
        raise ValueError(f"labels must be in [0, {n_old + n_new - 1}], got values in [{y.min()}, {y.max()}]")
    new = y[y >= n_old] - n_old
    hist = np.bincount(new, minlength=n_new).astype(np.float64)
    p = hist[hist > 0] / max(hist.sum(), 1.0)
    return {
        "coverage": float((hist > 0).sum() / n_new),
        "ratio": float(new.size / y.size),
        "entropy": float(-(p * np.log(p)).sum()) if new.size else 0.0,
    }


# --------------------------------------------------------------------------- oracle, EMA term, loop
class SimulatedOracle:
    """The oracle, simulated from ground truth: ``oracle(ids) -> labels``; counts the queries.

    Raises:
        ValueError: an id out of range or asked twice.
    """

    def __init__(self, labels: Any) -> None:
        self.labels = np.asarray(labels, dtype=np.int64).ravel()
        self.asked: set[int] = set()

    def __call__(self, ids: Any) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.labels.size):
            raise ValueError(f"ids must be in [0, {self.labels.size - 1}], got values in [{ids.min()}, {ids.max()}]")
        again = self.asked.intersection(ids.tolist())
        if again or np.unique(ids).size != ids.size:
            raise ValueError(f"ids already queried: {sorted(again)[:5] or 'a repeated id'}")
        self.asked.update(ids.tolist())
        return self.labels[ids]

    @property
    def n_queries(self) -> int:
        return len(self.asked)


class ActiveLabelTerm(nn.Module):
    """The active-label loss as a :class:`~paperzoo.discovery.trainer.GCDObjective` extra term,
    with the EMA teacher that fixes the label mapping.

    ``term(batch, epoch) -> {"al_cls": ..., "al_sup": ...}``: on the first call of each step the
    EMA (``AveragedModel``, ``theta_ema <- decay theta_ema + (1 - decay) theta``, parameters only)
    takes the student's current parameters; on the first step of each epoch the mapping
    (:func:`stable_label_mapping`) is recomputed from the EMA model's predictions on
    ``x_map`` / ``y_map`` (the labelled + queried samples); then, while the epoch's shuffled pass
    over the queried set lasts (one mini-batch of ``batch_size`` per step), the student sees two
    views of the mini-batch and the term returns ``w_al lambda w_cls CE(logits / tau, map(y))``
    and ``w_al lambda w_sc SupCon(z, y)`` (SupCon on the raw labels: it needs only equality).

    Args:
        model: the student (``model(x) -> (z, logits)``), not registered as a submodule.
        x_active, y_active: the queried samples and their oracle labels.
        x_map, y_map: the samples whose EMA predictions fix the mapping (labelled + queried).
        n_classes: K.
        views: one random view of a batch (the trainer's).
        ema_decay: 0.9; batch_size: 8; lambda_sup: 0.35; weights: ``(w_al, w_cls, w_sc)``.
        use_mapping: False trains on the raw labels (the paper's "without mapping" ablation).
        seed: the shuffling of the queried set.
    """

    _parameter_constraints = {
        "ema_decay": [Interval(float, 0.0, 1.0, closed="left")],
        "batch_size": [Interval(int, 1, math.inf, closed="left")],
        "lambda_sup": [Interval(float, 0.0, 1.0, closed="both")],
        "temperature": [Interval(float, 0.0, math.inf, closed="neither")],
    }

    def __init__(
        self,
        model: nn.Module,
        x_active: torch.Tensor,
        y_active: torch.Tensor,
        x_map: torch.Tensor,
        y_map: torch.Tensor,
        n_classes: int,
        views: Callable[[torch.Tensor], torch.Tensor],
        *,
        ema_decay: float = 0.9,
        batch_size: int = 8,
        lambda_sup: float = 0.35,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        temperature: float = 0.1,
        use_mapping: bool = True,
        seed: int = 0,
    ) -> None:
        validate_params(
            self._parameter_constraints,
            {"ema_decay": ema_decay, "batch_size": batch_size, "lambda_sup": lambda_sup, "temperature": temperature},
            owner=type(self).__name__,
        )  # fmt: skip
        if x_active.shape[0] != y_active.shape[0] or x_active.shape[0] == 0:
            raise ValueError(
                f"x_active and y_active must have the same, non-zero length, got {x_active.shape[0]} and {y_active.shape[0]}"
            )
        if x_map.shape[0] != y_map.shape[0]:
            raise ValueError(f"x_map and y_map must have the same length, got {x_map.shape[0]} and {y_map.shape[0]}")
        if len(weights) != 3 or min(weights) < 0:
            raise ValueError(f"weights must be three non-negative numbers (w_al, w_cls, w_sc), got {tuple(weights)}")
        super().__init__()
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        from paperzoo.discovery.losses import SupervisedContrastiveLoss

        self._student = (model,)  # a tuple: not a submodule, not in this term's state
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=False)
        self.x_active, self.y_active = x_active, torch.as_tensor(y_active, dtype=torch.int64)
        self.x_map, self.y_map = x_map, torch.as_tensor(y_map, dtype=torch.int64)
        self.n_classes, self.views = int(n_classes), views
        self.batch_size, self.lambda_sup, self.temperature = int(batch_size), float(lambda_sup), float(temperature)
        self.weights = tuple(float(w) for w in weights)
        self.use_mapping = use_mapping
        self.supcon = SupervisedContrastiveLoss(0.07)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.mapping: dict[int, int] = {k: k for k in range(self.n_classes)}
        self._epoch, self._chunks, self._step = -1, [], 0

    def refresh_mapping(self) -> dict[int, int]:
        """Recompute the mapping from the EMA model (identity with ``use_mapping=False``)."""
        if self.use_mapping:
            pred = query_probabilities(self.ema.module, self.x_map).argmax(dim=1)
            self.mapping = stable_label_mapping(pred.numpy(), self.y_map.numpy(), self.n_classes)
        return self.mapping

    def finish(self) -> None:
        """The EMA update after the last optimiser step (call once training ends)."""
        self.ema.update_parameters(self._student[0])

    def forward(self, batch: Any, epoch: int) -> dict[str, torch.Tensor]:
        model = self._student[0]
        self.ema.update_parameters(model)
        if epoch != self._epoch:
            self._epoch, self._step = epoch, 0
            self.refresh_mapping()
            perm = torch.randperm(self.x_active.shape[0], generator=self.generator)
            self._chunks = list(perm.split(self.batch_size))
        if self._step >= len(self._chunks):
            zero = batch.logits.sum() * 0.0
            return {"al_cls": zero, "al_sup": zero}
        idx = self._chunks[self._step]
        self._step += 1
        xb, yb = self.x_active[idx], self.y_active[idx]
        z, logits = model(torch.cat([self.views(xb), self.views(xb)]))
        target = map_labels(yb, self.mapping) if self.use_mapping else yb
        w_al, w_cls, w_sc = self.weights
        ce = F.cross_entropy(logits / self.temperature, target.repeat(2))
        sc = self.supcon(z, yb, torch.ones_like(yb, dtype=torch.bool))
        scale = w_al * self.lambda_sup
        return {"al_cls": scale * w_cls * ce, "al_sup": scale * w_sc * sc}


@dataclass
class ActiveGCDResult:
    """What :func:`active_gcd` did: the ids queried in each round, their oracle labels, the final
    mapping and each round's training histories."""

    queried: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    mappings: list[dict[int, int]] = field(default_factory=list)
    histories: list[Any] = field(default_factory=list)
    ema: nn.Module | None = None

    @property
    def all_queried(self) -> np.ndarray:
        return np.concatenate(self.queried) if self.queried else np.zeros(0, dtype=np.int64)


def active_gcd(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    oracle: SimulatedOracle | Callable[[np.ndarray], np.ndarray],
    views: Callable[[torch.Tensor], torch.Tensor],
    *,
    n_old: int,
    n_classes: int,
    strategy: str | Strategy = "novel_margin_adaptive",
    n_rounds: int = 5,
    n_query: int = 100,
    epochs_per_round: int = 15,
    base_loss: nn.Module | None = None,
    lr: float = 0.1,
    batch_size: int = 128,
    ema_decay: float = 0.9,
    al_batch_size: int = 8,
    al_weights: Sequence[float] = (1.0, 1.0, 1.0),
    use_mapping: bool = True,
    query_temperature: float = 0.1,
    seed: int = 0,
) -> ActiveGCDResult:
    """The AGCD rounds on a trained GCD model (trained further in place).

    Each round: the student's ``softmax(logits / 0.1)`` on the candidates (unlabelled, not yet
    queried), ``strategy`` picks ``n_query`` ids, the oracle labels them, and
    :func:`~paperzoo.discovery.trainer.train_gcd` trains ``epochs_per_round`` epochs (a new SGD
    optimiser and cosine schedule per round) with ``GCDObjective(base_loss, [ActiveLabelTerm])``.
    Queried samples stay unlabelled in ``targets`` (they keep feeding the unsupervised terms).

    Args:
        targets: (N,) labels of the original labelled set, -1 elsewhere.
        oracle: ``oracle(ids) -> labels`` (:class:`SimulatedOracle` of the ground truth).
        base_loss: default ``SimGCDLoss(teacher_temp=(0.04, 0.04, 1))`` (the rounds' constant teacher).

    Raises:
        ValueError: ``n_rounds * n_query`` larger than the unlabelled pool, or an unknown strategy.
    """
    from paperzoo.discovery.losses import SimGCDLoss
    from paperzoo.discovery.trainer import GCDObjective, train_gcd

    validate_params(
        {"n_rounds": [Interval(int, 1, math.inf, closed="left")], "n_query": [Interval(int, 1, math.inf, closed="left")],
         "epochs_per_round": [Interval(int, 1, math.inf, closed="left")]},
        {"n_rounds": n_rounds, "n_query": n_query, "epochs_per_round": epochs_per_round},
        owner="active_gcd",
    )  # fmt: skip
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
        strategy = STRATEGIES[strategy]
    pool = torch.nonzero(targets < 0).squeeze(1).numpy()
    if n_rounds * n_query > pool.size:
        raise ValueError(
            f"the query budget n_rounds * n_query = {n_rounds * n_query} is larger than the pool of {pool.size} unlabelled samples"
        )
    base_loss = base_loss if base_loss is not None else SimGCDLoss(teacher_temp=(0.04, 0.04, 1))
    rng = np.random.default_rng(seed)
    lab = torch.nonzero(targets >= 0).squeeze(1)
    out = ActiveGCDResult()
    for r in range(1, n_rounds + 1):
        queried = out.all_queried
        cand = np.setdiff1d(pool, queried, assume_unique=True)
        probs = query_probabilities(model, x[torch.from_numpy(cand)], query_temperature)
        ids = np.asarray(strategy(probs, cand, r, n_query, n_old, rng=rng), dtype=np.int64)
        out.queried.append(ids)
        out.labels.append(np.asarray(oracle(ids), dtype=np.int64))
        a_ids = torch.from_numpy(out.all_queried)
        y_a = torch.from_numpy(np.concatenate(out.labels))
        term = ActiveLabelTerm(
            model, x[a_ids], y_a, torch.cat([x[lab], x[a_ids]]), torch.cat([targets[lab], y_a]), n_classes, views,
            ema_decay=ema_decay, batch_size=al_batch_size, weights=al_weights, use_mapping=use_mapping, seed=seed + r,
        )  # fmt: skip
        history, _ = train_gcd(
            model, x, targets, views, GCDObjective(base_loss, [term]),
            epochs=epochs_per_round, batch_size=batch_size, lr=lr, seed=seed + 1000 * r,
        )  # fmt: skip
        term.finish()
        out.mappings.append(term.refresh_mapping())
        out.histories.append(history)
        out.ema = term.ema.module
    return out
