"""NegGrad and advanced NegGrad (NegGrad+) as benchmarked by paper 36."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from paperzoo.testing import toy_unlearning_problem as toy
from paperzoo.testing import unlearner_checks
from paperzoo.unlearning.base import UnlearningData
from paperzoo.unlearning.neggrad import AdvancedNegGrad, NegGrad, NegGradPlus


def forget_loss(model: nn.Module, data: UnlearningData) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(data.x_forget), data.y_forget))


def test_defaults_are_the_benchmark_recipe():
    for cls in (NegGrad, NegGradPlus):
        m = cls()
        assert (m.lr, m.epochs, m.batch_size, m.momentum) == (1e-3, 2, 64, 0.0)
    assert (NegGradPlus().retain_weight, NegGradPlus().forget_weight) == (1.0, 1.0)
    assert AdvancedNegGrad is NegGradPlus


def test_one_neggrad_step_raises_the_forget_loss():
    model, data, ctx = toy()
    before = forget_loss(model, data)
    # one step: one retain batch (batch 180 >= |retain|) paired with an equally sized forget batch
    data_eq = UnlearningData(data.x, data.y, torch.arange(0, 60), torch.arange(60, 120), data.test_idx, 4)
    NegGrad(lr=0.05, epochs=1, batch_size=60).unlearn(model, data_eq, ctx)
    assert forget_loss(model, data_eq) > before


def test_neggrad_step_is_the_gradient_of_minus_ce_on_the_forget_batch():
    model, data, ctx = toy()
    data_eq = UnlearningData(data.x, data.y, torch.arange(0, 60), torch.arange(60, 120), data.test_idx, 4)
    ref = copy.deepcopy(model)
    NegGrad(lr=0.1, epochs=1, batch_size=60).unlearn(model, data_eq, ctx)
    loss = -F.cross_entropy(ref(data_eq.x_forget), data_eq.y_forget)  # one full batch: order is irrelevant
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    for p, p0, g in zip(model.parameters(), ref.parameters(), grads):
        assert torch.allclose(p, p0 - 0.1 * g, atol=1e-6)


def test_neggrad_plus_step_combines_retain_and_forget():
    model, data, ctx = toy()
    data_eq = UnlearningData(data.x, data.y, torch.arange(0, 60), torch.arange(60, 120), data.test_idx, 4)
    ref = copy.deepcopy(model)
    NegGradPlus(lr=0.1, epochs=1, batch_size=60, retain_weight=0.7, forget_weight=0.3).unlearn(model, data_eq, ctx)
    loss = 0.7 * F.cross_entropy(ref(data_eq.x_retain), data_eq.y_retain) - 0.3 * F.cross_entropy(
        ref(data_eq.x_forget), data_eq.y_forget
    )
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    for p, p0, g in zip(model.parameters(), ref.parameters(), grads):
        assert torch.allclose(p, p0 - 0.1 * g, atol=1e-6)


def test_steps_with_unequal_batches_are_skipped():
    # retain 180 in batches of 64: 64, 64, 52; forget 60 cycles as 60 (!= 64, skipped) -> no step at all
    model, data, ctx = toy()
    before = copy.deepcopy(model.state_dict())
    NegGrad(lr=0.1, epochs=1, batch_size=64).unlearn(model, data, ctx)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_lr_zero_leaves_the_model():
    model, data, ctx = toy()
    before = copy.deepcopy(model.state_dict())
    NegGradPlus(lr=0.0, batch_size=20).unlearn(model, data, ctx)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


CHECKS = [
    (f"{type(make()).__name__}: {name}", check)
    for make in (lambda: NegGrad(lr=0.01, batch_size=20), lambda: NegGradPlus(batch_size=20, lr=0.01))
    for name, check in unlearner_checks(make)
]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_unlearner_suite(name, check):
    check()


def test_neggrad_plus_keeps_retain_better_than_neggrad():
    m1, data, ctx = toy()
    m2, _, _ = toy()
    NegGrad(lr=0.05, epochs=3, batch_size=20).unlearn(m1, data, ctx)
    NegGradPlus(lr=0.05, epochs=3, batch_size=20).unlearn(m2, data, ctx)
    with torch.no_grad():
        r1 = F.cross_entropy(m1(data.x_retain), data.y_retain)
        r2 = F.cross_entropy(m2(data.x_retain), data.y_retain)
    assert r2 < r1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lr": -1.0}, "lr must be"), ({"epochs": -1}, "epochs must be"), ({"batch_size": 0}, "batch_size must be"),
     ({"momentum": 1.0}, "momentum must be"), ({"forget_weight": -0.5}, "forget_weight must be")],
)  # fmt: skip
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NegGradPlus(**kwargs)


def test_is_not_called():
    with pytest.raises(TypeError, match="unlearn"):
        NegGrad()(torch.zeros(1))
