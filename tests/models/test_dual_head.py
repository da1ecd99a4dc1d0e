"""Tests of the dual-head student of Dual-Head Knowledge Distillation (Yang et al., KDD 2025)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paperzoo.models.dual_head import DualHeadClassifier


def make(aux: str = "linear", seed: int = 0) -> DualHeadClassifier:
    torch.manual_seed(seed)
    return DualHeadClassifier(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), 8, 5, aux_head=aux)


@pytest.mark.parametrize("aux", ["linear", "nonlinear"])
def test_train_mode_returns_both_heads_eval_mode_head_one(aux: str) -> None:
    model = make(aux)
    x = torch.randn(7, 6)
    main, second = model(x)
    assert main.shape == second.shape == (7, 5)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (7, 5)
    torch.testing.assert_close(out, model.fc(model.features(x)))
    assert model(x, return_aux=True)[1].shape == (7, 5)
    model.train()
    assert isinstance(model(x, return_aux=False), torch.Tensor)


def test_heads_read_the_same_feature_and_official_nonlinear_head() -> None:
    model = make("nonlinear")
    kinds = [type(m) for m in model.fc2]
    assert kinds == [nn.Linear, nn.Dropout, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert model.fc2[0].out_features == 200 and model.fc2[1].p == 0.1
    h = torch.randn(4, 8, requires_grad=True)
    model.fc(h).sum().backward()
    assert h.grad is not None


def test_head_one_initialisation_does_not_depend_on_the_aux_head() -> None:
    a, b = make("linear"), make("nonlinear")
    torch.testing.assert_close(a.fc.weight, b.fc.weight)
    torch.testing.assert_close(a.backbone[0].weight, b.backbone[0].weight)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="DualHeadClassifier: aux_head"):
        DualHeadClassifier(nn.Identity(), 4, 3, aux_head="mlp")
    with pytest.raises(ValueError, match="DualHeadClassifier: num_classes"):
        DualHeadClassifier(nn.Identity(), 4, 1)
    with pytest.raises(ValueError, match=r"backbone must return features of shape \(N, 4\)"):
        DualHeadClassifier(nn.Identity(), 4, 3)(torch.randn(2, 5))
