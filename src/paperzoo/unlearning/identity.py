"""The identity-level unlearning benchmark of Choi & Na (2023), "Towards Machine Unlearning
Benchmarks: Forgetting the Personal Identities in Facial Recognition Systems" (MUFAC / MUCAC).

A model is trained for a task whose labels do not depend on any single person (age group,
facial attributes); unlearning must remove *all* photos of some training identities. Every
split is disjoint at the identity level:

- :class:`IdentitySplits`: train / forget / retain / test / unseen masks over the samples, with
  the paper's two ways of choosing them (identity ranges as in MUCAC, the first rows of the
  training table as in MUFAC) and a random identity draw;
- :func:`membership_inference_attack`: the paper's loss-based attack (the reference ``cal_mia``):
  a default scikit-learn ``LogisticRegression`` on the 1-D per-sample loss, telling forget-set
  samples (label 1) from samples of identities never seen in training (the *unseen* set,
  label 0), scored by 10-split ``StratifiedShuffleSplit`` accuracy; 0.5 is ideal;
- :func:`forgetting_gap` = ``|MIA - 0.5|`` and :func:`nomus`, the Normalized Machine Unlearning
  Score ``lam * acc_test + (1 - lam) * (1 - 2 |MIA - 0.5|)``;
- :class:`IdentityProtocol`: the shared :class:`~paperzoo.unlearning.protocol.UnlearningProtocol`
  (original model, retrain-from-scratch oracle, ``run``) whose ``evaluate`` adds the paper's
  columns (top-2 accuracy, unseen accuracy, the forget-vs-unseen MIA, its gap, NoMUS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from paperzoo._validation import Interval, Options, validate_params
from paperzoo.unlearning.base import TrainFn, UnlearningData
from paperzoo.unlearning.protocol import UnlearningProtocol, predict_logits

__all__ = [
    "IdentityData",
    "IdentityProtocol",
    "IdentitySplits",
    "PAPER_METRICS",
    "evaluate_unlearning",
    "forgetting_gap",
    "logistic_attack_accuracy",
    "membership_inference_attack",
    "nomus",
    "per_sample_losses",
]

_MIA_CONSTRAINTS = {
    "n_splits": [Interval(int, 2, math.inf, closed="left")],
    "cv_seed": [Interval(int, 0, 2**32 - 1, closed="both")],
    "shuffle_seed": [Interval(int, 0, 2**32 - 1, closed="both")],
    "balance": [Options(("min", "reference"))],
}
_LOSS_KINDS = {"kind": [Options(("ce", "bce_mean"))]}
_LAM = {"lam": [Interval(float, 0, 1, closed="both")]}


# --------------------------------------------------------------------------- splits
def _ids(name: str, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    out = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
    if out.size == 0:
        raise ValueError(f"IdentitySplits: {name} is empty; every split needs at least one identity")
    return out


@dataclass(frozen=True, eq=False)
class IdentityData:
    """An :class:`UnlearningData` (forget / retain / test, ``groups`` = identities) plus the
    paper's *unseen* split: samples of identities in neither training nor test, the
    non-members of the membership-inference attack."""

    data: UnlearningData
    unseen_idx: torch.Tensor

    @property
    def x_unseen(self) -> torch.Tensor:
        return self.data.x[self.unseen_idx]

    @property
    def y_unseen(self) -> torch.Tensor:
        return self.data.y[self.unseen_idx]


class IdentitySplits:
    """Boolean masks over N samples: ``train`` / ``forget`` / ``retain`` / ``test`` / ``unseen``.

    ``identities`` (N,) names the person of each sample; ``train_ids`` / ``test_ids`` /
    ``unseen_ids`` are pairwise disjoint identity sets and ``forget_ids`` a subset of
    ``train_ids``. ``forget`` holds every sample of the forget identities and ``retain = train \\
    forget``. A MUFAC-style row cut (:meth:`first_n_rows` with ``whole_identities=False``) may
    instead split one identity between forget and retain: ``forget_rows`` then overrides the
    identity-level forget mask and :attr:`shared_identities` counts the identities split.

    Raises:
        ValueError: a split is empty, ``identities`` is not 1-D integers, two of train / test /
            unseen share an identity, a forget identity is not a training identity (the forget
            set would overlap no training data or the retain set would not be ``train \\ forget``),
            or a listed identity has no sample.
    """

    def __init__(
        self,
        identities: Sequence[int] | np.ndarray | torch.Tensor,
        train_ids: Sequence[int] | np.ndarray,
        forget_ids: Sequence[int] | np.ndarray,
        test_ids: Sequence[int] | np.ndarray,
        unseen_ids: Sequence[int] | np.ndarray,
        *,
        forget_rows: np.ndarray | None = None,
    ) -> None:
        ident = np.asarray(identities)
        if ident.ndim != 1 or ident.size == 0 or not np.issubdtype(ident.dtype, np.integer):
            raise ValueError(
                f"IdentitySplits: identities must be a non-empty 1-D integer array, got shape {ident.shape} "
                f"and dtype {ident.dtype}"
            )
        train, forget, test, unseen = (
            _ids(n, v)
            for n, v in (
                ("train_ids", train_ids),
                ("forget_ids", forget_ids),
                ("test_ids", test_ids),
                ("unseen_ids", unseen_ids),
            )
        )
        for (a, sa), (b, sb) in (
            (("train_ids", train), ("test_ids", test)),
            (("train_ids", train), ("unseen_ids", unseen)),
            (("test_ids", test), ("unseen_ids", unseen)),
        ):
            shared = np.intersect1d(sa, sb)
            if shared.size:
                raise ValueError(
                    f"IdentitySplits: {a} and {b} share {shared.size} identities (e.g. {int(shared[0])}); "
                    "the splits must be identity-disjoint"
                )
        outside = np.setdiff1d(forget, train)
        if outside.size:
            raise ValueError(
                f"IdentitySplits: forget_ids must be training identities; {outside.size} are not "
                f"(e.g. {int(outside[0])})"
            )
        present = np.unique(ident)
        for name, s in (("train_ids", train), ("test_ids", test), ("unseen_ids", unseen)):
            missing = np.setdiff1d(s, present)
            if missing.size:
                raise ValueError(
                    f"IdentitySplits: {name} lists {missing.size} identities with no sample (e.g. {int(missing[0])})"
                )
        self.identities = ident.astype(np.int64)
        self.train = np.isin(ident, train)
        self.test = np.isin(ident, test)
        self.unseen = np.isin(ident, unseen)
        if forget_rows is None:
            self.forget = np.isin(ident, forget)
        else:
            self.forget = np.asarray(forget_rows, dtype=bool)
            if self.forget.shape != ident.shape or (self.forget & ~self.train).any():
                raise ValueError("IdentitySplits: forget_rows must be an (N,) mask inside the training rows")
        self.retain = self.train & ~self.forget
        for name in ("forget", "retain"):
            if not getattr(self, name).any():
                raise ValueError(f"IdentitySplits: the {name} split is empty")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_ranges(
        cls,
        identities: Sequence[int] | np.ndarray | torch.Tensor,
        *,
        test: tuple[int, int],
        forget: tuple[int, int],
        retain: tuple[int, int],
        unseen: tuple[int, int | None],
    ) -> IdentitySplits:
        """MUCAC style: identity-number ranges ``[lo, hi)`` (``hi=None``: no upper end), e.g.
        ``test=(0, 190), forget=(190, 1250), retain=(1250, 4855), unseen=(4855, None)``; the
        training identities are forget + retain."""
        ident = np.asarray(identities)
        ids = np.unique(ident)

        def pick(lo: int, hi: int | None) -> np.ndarray:
            return ids[(ids >= lo) & (ids < (hi if hi is not None else np.iinfo(np.int64).max))]

        f, r = pick(*forget), pick(*retain)
        return cls(ident, np.union1d(f, r), f, pick(*test), pick(*unseen))

    @classmethod
    def first_n_rows(
        cls,
        identities: Sequence[int] | np.ndarray | torch.Tensor,
        train_ids: Sequence[int] | np.ndarray,
        n_forget: int,
        test_ids: Sequence[int] | np.ndarray,
        unseen_ids: Sequence[int] | np.ndarray,
        *,
        whole_identities: bool = True,
    ) -> IdentitySplits:
        """MUFAC style: the forget set is the first ``n_forget`` training rows, in row order.

        With ``whole_identities`` (default) only the identities whose rows all lie among those
        first rows are forgotten, so forget and retain stay identity-disjoint; ``False`` keeps
        the exact row cut of the reference table, which may split the last identity."""
        validate_params(
            {"n_forget": [Interval(int, 1, math.inf, closed="left")]},
            {"n_forget": n_forget},
            owner="IdentitySplits.first_n_rows",
        )
        ident = np.asarray(identities)
        train_rows = np.flatnonzero(np.isin(ident, np.asarray(train_ids)))
        if n_forget >= train_rows.size:
            raise ValueError(
                f"IdentitySplits.first_n_rows: n_forget must be below the {train_rows.size} training rows, got {n_forget}"
            )
        head = train_rows[:n_forget]
        if whole_identities:
            cut = np.unique(ident[head])
            rest = np.unique(ident[train_rows[n_forget:]])
            forget_ids = np.setdiff1d(cut, rest)
            if forget_ids.size == 0:
                raise ValueError("IdentitySplits.first_n_rows: no identity lies wholly in the first n_forget rows")
            return cls(ident, train_ids, forget_ids, test_ids, unseen_ids)
        rows = np.zeros(ident.shape, dtype=bool)
        rows[head] = True
        return cls(ident, train_ids, np.unique(ident[head]), test_ids, unseen_ids, forget_rows=rows)

    @classmethod
    def random_identities(
        cls,
        identities: Sequence[int] | np.ndarray | torch.Tensor,
        n_train: int,
        n_forget: int,
        n_test: int,
        n_unseen: int,
        seed: int = 0,
    ) -> IdentitySplits:
        """Draw identities at random (``numpy.random.default_rng(seed).permutation`` of the
        distinct identities): the first ``n_train`` train (of which the first ``n_forget`` are
        forgotten), the next ``n_test`` test, the next ``n_unseen`` unseen."""
        params = {"n_train": n_train, "n_forget": n_forget, "n_test": n_test, "n_unseen": n_unseen, "seed": seed}
        validate_params(
            {
                **{k: [Interval(int, 1, math.inf, closed="left")] for k in params},
                "seed": [Interval(int, 0, math.inf, closed="left")],
            },
            params,
            owner="IdentitySplits.random_identities",
        )
        ident = np.asarray(identities)
        ids = np.unique(ident)
        if n_forget >= n_train:
            raise ValueError(
                f"IdentitySplits.random_identities: n_forget must be below n_train={n_train}, got {n_forget}"
            )
        if n_train + n_test + n_unseen > ids.size:
            raise ValueError(
                f"IdentitySplits.random_identities: n_train + n_test + n_unseen = {n_train + n_test + n_unseen} "
                f"exceeds the {ids.size} identities"
            )
        perm = ids[np.random.default_rng(seed).permutation(ids.size)]
        train = perm[:n_train]
        return cls(
            ident,
            train,
            train[:n_forget],
            perm[n_train : n_train + n_test],
            perm[n_train + n_test : n_train + n_test + n_unseen],
        )

    # ------------------------------------------------------------------ views
    @property
    def shared_identities(self) -> int:
        """Identities with samples in both forget and retain (0 unless a row cut split one)."""
        return int(np.intersect1d(self.identities[self.forget], self.identities[self.retain]).size)

    def sizes(self) -> dict[str, int]:
        """Samples per split."""
        return {n: int(getattr(self, n).sum()) for n in ("train", "forget", "retain", "test", "unseen")}

    def build(self, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, num_classes: int) -> IdentityData:
        """The :class:`IdentityData` of samples ``x`` (N, ...) with labels ``y`` (N,): forget /
        retain / test index sets in row order, ``groups`` = the identities, and the unseen split."""
        x_t, y_t = torch.as_tensor(x), torch.as_tensor(y)
        if x_t.shape[0] != self.identities.shape[0]:
            raise ValueError(f"IdentitySplits.build: x must have {self.identities.shape[0]} rows, got {x_t.shape[0]}")
        data = UnlearningData(
            x=x_t,
            y=y_t,
            forget_idx=np.flatnonzero(self.forget),
            retain_idx=np.flatnonzero(self.retain),
            test_idx=np.flatnonzero(self.test),
            num_classes=num_classes,
            groups=torch.as_tensor(self.identities),
        )
        return IdentityData(data, torch.as_tensor(np.flatnonzero(self.unseen), dtype=torch.long))


# --------------------------------------------------------------------------- membership inference
def per_sample_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str = "ce") -> np.ndarray:
    """Per-sample loss (N,) float64 of ``model`` in evaluation mode: cross-entropy
    (``kind="ce"``, ``y`` integer labels) or the mean over attributes of the binary
    cross-entropy with logits (``kind="bce_mean"``, ``y`` (N, A) in {0, 1}), as the reference."""
    validate_params(_LOSS_KINDS, {"kind": kind}, owner="per_sample_losses")
    logits = predict_logits(model, x)
    if kind == "ce":
        out = F.cross_entropy(logits, y, reduction="none")
    else:
        out = F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), reduction="none").mean(1)
    return out.double().numpy()


def _check_losses(name: str, v: np.ndarray | Sequence[float] | torch.Tensor, n_splits: int) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size < n_splits:
        raise ValueError(f"membership_inference_attack: {name} needs at least n_splits={n_splits} losses, got {a.size}")
    if not np.isfinite(a).all():
        raise ValueError(f"membership_inference_attack: {name} holds NaN or inf")
    return a


def logistic_attack_accuracy(
    unseen_losses: np.ndarray | Sequence[float] | torch.Tensor,
    forget_losses: np.ndarray | Sequence[float] | torch.Tensor,
    n_splits: int = 10,
    cv_seed: int = 0,
) -> float:
    """The attack itself, on the given losses as they are: samples ``[unseen, forget]`` (labels
    0 then 1), a default ``LogisticRegression``, the mean accuracy over
    ``StratifiedShuffleSplit(n_splits, random_state=cv_seed)`` (test size 0.1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
    from threadpoolctl import threadpool_limits

    validate_params(
        {k: _MIA_CONSTRAINTS[k] for k in ("n_splits", "cv_seed")},
        {"n_splits": n_splits, "cv_seed": cv_seed},
        owner="logistic_attack_accuracy",
    )
    u = _check_losses("unseen_losses", unseen_losses, n_splits)
    f = _check_losses("forget_losses", forget_losses, n_splits)
    samples = np.concatenate([u, f]).reshape(-1, 1)
    labels = np.r_[np.zeros(u.size, dtype=np.int64), np.ones(f.size, dtype=np.int64)]
    cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=cv_seed)
    with threadpool_limits(limits=1):  # a 1-D logistic regression: BLAS threads only add overhead
        scores = cross_val_score(LogisticRegression(), samples, labels, cv=cv, scoring="accuracy")
    return float(np.mean(scores))


def membership_inference_attack(
    forget_losses: np.ndarray | Sequence[float] | torch.Tensor,
    unseen_losses: np.ndarray | Sequence[float] | torch.Tensor,
    *,
    n_splits: int = 10,
    cv_seed: int = 0,
    shuffle_seed: int = 42,
    balance: str = "min",
) -> float:
    """The paper's MIA accuracy from per-sample losses of the forget and unseen sets.

    ``balance="reference"`` is the reference ``cal_mia``: shuffle the forget losses with
    ``RandomState(shuffle_seed)`` (what ``np.random.seed(42); np.random.shuffle`` does) and keep
    the first ``|unseen|``; it assumes ``|forget| >= |unseen|``, otherwise the attack data stay
    imbalanced and a trivial classifier scores the majority rate. ``balance="min"`` (default)
    shuffles the larger side that way and truncates it to ``min(|forget|, |unseen|)``: identical to
    the reference when ``|forget| >= |unseen|``.

    Returns:
        the mean attack accuracy over the splits; 0.5 means the forget set looks unseen.
    """
    validate_params(
        _MIA_CONSTRAINTS,
        {"n_splits": n_splits, "cv_seed": cv_seed, "shuffle_seed": shuffle_seed, "balance": balance},
        owner="membership_inference_attack",
    )
    f = _check_losses("forget_losses", forget_losses, n_splits).copy()
    u = _check_losses("unseen_losses", unseen_losses, n_splits).copy()
    if balance == "reference" or f.size >= u.size:
        np.random.RandomState(shuffle_seed).shuffle(f)
        f = f[: u.size]
    else:
        np.random.RandomState(shuffle_seed).shuffle(u)
        u = u[: f.size]
    return logistic_attack_accuracy(u, f, n_splits=n_splits, cv_seed=cv_seed)


def forgetting_gap(mia: float | np.ndarray) -> float | np.ndarray:
    """The reference's "forgetting score" ``|MIA - 0.5|`` (0 is ideal)."""
    return abs(mia - 0.5) if isinstance(mia, float | int) else np.abs(np.asarray(mia) - 0.5)


def nomus(test_acc: float, mia: float, lam: float = 0.5) -> float:
    """Normalized Machine Unlearning Score: ``lam * test_acc + (1 - lam) * (1 - 2 |mia - 0.5|)``,
    in [0, 1] for accuracies and MIA in [0, 1]; higher is better. The paper uses ``lam = 0.5``."""
    validate_params(_LAM, {"lam": lam}, owner="nomus")
    for name, v in (("test_acc", test_acc), ("mia", mia)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"nomus: {name} must lie in [0, 1], got {v}")
    return float(lam * test_acc + (1.0 - lam) * (1.0 - 2.0 * abs(mia - 0.5)))


# --------------------------------------------------------------------------- evaluation
def _top_k(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    return float((logits.topk(k, dim=1).indices == y[:, None]).any(1).double().mean())


#: The columns :func:`evaluate_unlearning` adds, in the paper's order.
PAPER_METRICS = ("test acc", "top-2 acc", "forget acc", "retain acc", "unseen acc", "MIA", "|MIA - 0.5|", "NoMUS")


def evaluate_unlearning(
    model: nn.Module, idata: IdentityData, *, balance: str = "min", lam: float = 0.5, shuffle_seed: int = 42
) -> dict[str, float]:
    """The paper's table columns for ``model``: top-1 accuracy on test / forget / retain / unseen,
    top-2 test accuracy, the forget-vs-unseen MIA (:func:`membership_inference_attack` on the
    cross-entropy), its gap ``|MIA - 0.5|`` and NoMUS."""
    d = idata.data
    out: dict[str, float] = {}
    logits_test = predict_logits(model, d.x_test)
    out["test acc"] = _top_k(logits_test, d.y_test, 1)
    out["top-2 acc"] = _top_k(logits_test, d.y_test, 2)
    for name, x, y in (
        ("forget", d.x_forget, d.y_forget),
        ("retain", d.x_retain, d.y_retain),
        ("unseen", idata.x_unseen, idata.y_unseen),
    ):
        out[f"{name} acc"] = _top_k(predict_logits(model, x), y, 1)
    mia = membership_inference_attack(
        per_sample_losses(model, d.x_forget, d.y_forget),
        per_sample_losses(model, idata.x_unseen, idata.y_unseen),
        balance=balance,
        shuffle_seed=shuffle_seed,
    )
    out["MIA"] = mia
    out["|MIA - 0.5|"] = abs(mia - 0.5)
    out["NoMUS"] = nomus(out["test acc"], mia, lam)
    return out


class IdentityProtocol(UnlearningProtocol):
    """The shared protocol on identity-disjoint splits: ``original`` / ``oracle`` / ``run`` as in
    :class:`~paperzoo.unlearning.protocol.UnlearningProtocol`; ``evaluate`` returns its columns
    (``MIA AUC`` there is forget vs test) plus the paper's (:data:`PAPER_METRICS`, ``MIA`` here is
    forget vs unseen, the paper's attack)."""

    def __init__(
        self,
        idata: IdentityData,
        model_fn: object,
        train_fn: TrainFn,
        *,
        balance: str = "min",
        lam: float = 0.5,
    ) -> None:
        validate_params(
            {"balance": _MIA_CONSTRAINTS["balance"], **_LAM}, {"balance": balance, "lam": lam}, owner="IdentityProtocol"
        )
        super().__init__(idata.data, model_fn, train_fn)  # type: ignore[arg-type]
        self.idata = idata
        self.balance = balance
        self.lam = lam

    def evaluate(self, model: nn.Module, seed: int) -> dict[str, float]:
        return {
            **super().evaluate(model, seed),
            **evaluate_unlearning(model, self.idata, balance=self.balance, lam=self.lam),
        }
