"""The sorted-softmax membership-inference attack of the Label-Agnostic Forgetting evaluation
(Shen et al., ICLR 2024; official code ``ShaofeiShen768/LAF``), shared by the unlearning papers
that report an attack success rate.

Features are each sample's softmax vector sorted in descending order (class-agnostic). An
attacker (gradient-boosted trees) learns "member" from remaining-set samples against
"non-member" from test samples, then labels the forget set and unseen test samples:
``mia_accuracy`` is its accuracy on that evaluation set (the official "attack success rate"),
``mia_forget_member_rate`` the share of forget samples it calls members. An unlearner should
match the retrained oracle's values. The official attacker is XGBoost with 100 trees;
scikit-learn's ``HistGradientBoostingClassifier(max_iter=100)`` is the default substitute here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from paperzoo._validation import Options, check_finite, validate_params

__all__ = ["attack_sorted_softmax", "mia_sorted_softmax_attack", "mia_splits", "sorted_softmax_features"]

_ATTACKERS = ("hgb", "xgboost", "logreg")


def sorted_softmax_features(logits: torch.Tensor) -> np.ndarray:
    """The softmax of ``logits`` (N, C), each row sorted in descending order, as float64 (N, C)."""
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"sorted_softmax_features: logits must be (N, C) with C >= 2, got {tuple(logits.shape)}")
    check_finite(logits, "logits")
    probs = torch.softmax(logits.detach().double(), dim=1)
    return probs.sort(dim=1, descending=True).values.cpu().numpy()


def _attacker(name: str, seed: int) -> Any:
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000)
    try:
        import xgboost
    except ImportError as err:  # optional extra
        raise ImportError("attacker='xgboost' needs the xgboost package; use attacker='hgb' (the default)") from err
    return xgboost.XGBClassifier(n_estimators=100, objective="binary:logistic", random_state=seed, n_jobs=1)


def attack_sorted_softmax(
    member_ref: np.ndarray,
    nonmember_ref: np.ndarray,
    forget: np.ndarray,
    nonmember_eval: np.ndarray,
    attacker: str = "hgb",
    seed: int = 0,
) -> dict[str, float]:
    """The attack on precomputed features (rows of :func:`sorted_softmax_features`): train on
    ``member_ref`` (label 1) vs ``nonmember_ref`` (label 0), evaluate on ``forget`` (1) vs
    ``nonmember_eval`` (0). Returns ``mia_accuracy`` and ``mia_forget_member_rate``."""
    validate_params({"attacker": [Options(_ATTACKERS)]}, {"attacker": attacker}, owner="attack_sorted_softmax")
    named = {
        "member_ref": member_ref,
        "nonmember_ref": nonmember_ref,
        "forget": forget,
        "nonmember_eval": nonmember_eval,
    }
    widths = set()
    for name, a in named.items():
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(f"attack_sorted_softmax: {name} must be a non-empty (N, C) array, got shape {a.shape}")
        widths.add(a.shape[1])
    if len(widths) != 1:
        raise ValueError(
            f"attack_sorted_softmax: all feature sets need the same number of classes, got {sorted(widths)}"
        )
    x = np.concatenate([member_ref, nonmember_ref])
    y = np.r_[np.ones(len(member_ref)), np.zeros(len(nonmember_ref))].astype(np.int64)
    clf = _attacker(attacker, seed)
    clf.fit(x, y)
    pred_f = clf.predict(forget)
    pred_n = clf.predict(nonmember_eval)
    correct = int((pred_f == 1).sum()) + int((pred_n == 0).sum())
    return {
        "mia_accuracy": correct / (len(forget) + len(nonmember_eval)),
        "mia_forget_member_rate": float((pred_f == 1).mean()),
    }


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    outs = []
    for i in range(0, x.shape[0], batch_size):
        out = model(x[i : i + batch_size])
        outs.append(out[0] if isinstance(out, tuple) else out)
    return torch.cat(outs)


def mia_sorted_softmax_attack(
    model: nn.Module,
    member_ref: torch.Tensor,
    nonmember_ref: torch.Tensor,
    forget: torch.Tensor,
    nonmember_eval: torch.Tensor,
    attacker: str = "hgb",
    *,
    seed: int = 0,
    batch_size: int = 1024,
) -> dict[str, float]:
    """The sorted-softmax attack on ``model`` (in eval mode; its mode is restored): inputs of
    members the attacker trains on (a sample of the remaining set), non-members it trains on
    (test samples), the forget set, and non-members it is evaluated on (other test samples).
    A model may return ``logits`` or ``(logits, embedding)``. See :func:`attack_sorted_softmax`."""
    was_training = model.training
    model.eval()
    try:
        feats = [
            sorted_softmax_features(_logits(model, x, batch_size))
            for x in (member_ref, nonmember_ref, forget, nonmember_eval)
        ]
    finally:
        model.train(was_training)
    return attack_sorted_softmax(*feats, attacker=attacker, seed=seed)


def mia_splits(
    n_forget: int, n_retain: int, n_test: int, seed: int = 0, max_ref: int = 5000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions for the official attack protocol: ``(member_ref, nonmember_ref,
    nonmember_eval)``, with ``member_ref`` in the remaining set and the other two disjoint parts
    of the test set. The attacker trains on ``k = min(n_forget, max_ref, n_retain, n_test // 2)``
    members and as many non-members, and is evaluated against up to ``n_forget`` other test
    samples."""
    for name, n in (("n_forget", n_forget), ("n_retain", n_retain)):
        if n < 1:
            raise ValueError(f"mia_splits: {name} must be >= 1, got {n}")
    if n_test < 2:
        raise ValueError(f"mia_splits: n_test must be >= 2 (training and evaluation non-members), got {n_test}")
    rng = np.random.default_rng([seed, 42])
    k = min(n_forget, max_ref, n_retain, n_test // 2)
    test_perm = rng.permutation(n_test)
    member = np.sort(rng.choice(n_retain, size=k, replace=False))
    nonmember = np.sort(test_perm[:k])
    evaluation = np.sort(test_perm[k : k + min(n_forget, n_test - k)])
    return member, nonmember, evaluation
