"""The sorted-softmax membership-inference attack of the LAF evaluation (paper 42): features,
limiting cases (a constant model is at chance, a separable one is found), the official split and
bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from paperzoo.unlearning.attacks import (
    attack_sorted_softmax,
    mia_sorted_softmax_attack,
    mia_splits,
    sorted_softmax_features,
)


def test_features_are_sorted_probabilities_and_class_agnostic() -> None:
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    f = sorted_softmax_features(logits)
    assert f.shape == (6, 5) and f.dtype == np.float64
    np.testing.assert_allclose(f.sum(1), 1.0)
    assert (np.diff(f, axis=1) <= 0).all()
    np.testing.assert_allclose(sorted_softmax_features(logits[:, [4, 2, 0, 1, 3]]), f)
    with pytest.raises(ValueError, match="logits"):
        sorted_softmax_features(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        sorted_softmax_features(torch.full((2, 3), float("nan")))


class _Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([2.0, 0.0, -1.0]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.bias.expand(x.shape[0], 3), x  # (logits, embedding), as the official model


@pytest.mark.parametrize("attacker", ["hgb", "logreg"])
def test_constant_model_is_at_chance(attacker: str) -> None:
    x = torch.randn(40, 2)
    model = _Constant().train()
    out = mia_sorted_softmax_attack(model, x[:10], x[10:20], x[20:30], x[30:40], attacker=attacker)
    assert out["mia_accuracy"] == pytest.approx(0.5)
    assert out["mia_forget_member_rate"] in (0.0, 1.0)
    assert model.training  # the mode is restored


def test_separable_members_are_found() -> None:
    g = np.random.default_rng(0)
    confident = np.sort(g.dirichlet([20, 1, 1], size=60), axis=1)[:, ::-1]
    flat = np.sort(g.dirichlet([3, 3, 3], size=60), axis=1)[:, ::-1]
    out = attack_sorted_softmax(confident[:30], flat[:30], confident[30:], flat[30:], attacker="logreg")
    assert out["mia_accuracy"] > 0.9 and out["mia_forget_member_rate"] > 0.9
    again = attack_sorted_softmax(confident[:30], flat[:30], confident[30:], flat[30:], attacker="logreg")
    assert again == out


def test_official_splits() -> None:
    member, nonmember, evaluation = mia_splits(n_forget=50, n_retain=400, n_test=300, seed=1)
    assert len(member) == len(nonmember) == 50 and len(evaluation) == 50
    assert not set(nonmember) & set(evaluation) and max(member) < 400 and max(evaluation) < 300
    assert len(np.unique(member)) == 50
    again = mia_splits(50, 400, 300, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(again, (member, nonmember, evaluation)))
    m, n, e = mia_splits(n_forget=500, n_retain=400, n_test=300, seed=0)  # capped by the sets' sizes
    assert len(m) == len(n) == 150 and len(e) == 150
    assert len(mia_splits(9000, 9000, 20000, max_ref=5000)[0]) == 5000


def test_bad_input() -> None:
    a = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match="attacker"):
        attack_sorted_softmax(a, a, a, a, attacker="svm")
    with pytest.raises(ValueError, match="forget"):
        attack_sorted_softmax(a, a, a[:0], a)
    with pytest.raises(ValueError, match="same number of classes"):
        attack_sorted_softmax(a, a, a, np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="n_test"):
        mia_splits(5, 5, 1)
    with pytest.raises(ValueError, match="n_forget"):
        mia_splits(0, 5, 10)
    try:
        import xgboost  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="xgboost"):
            attack_sorted_softmax(a, a, a, a, attacker="xgboost")
