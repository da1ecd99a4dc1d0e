"""CF-k and the benchmark's plain fine-tuning (paper 36)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from paperzoo.models import MLP
from paperzoo.testing import toy_unlearning_problem, unlearner_checks
from paperzoo.unlearning.base import UnlearningContext, UnlearningData
from paperzoo.unlearning.cfk import CFk, trainable_parameters


def toy(seed: int = 0) -> tuple[nn.Module, UnlearningData, UnlearningContext]:
    return toy_unlearning_problem(seed, model=MLP(8, (16, 16), 4))


def test_trainable_parameters_selection():
    model, _, _ = toy()
    assert trainable_parameters(model, 2) == ["net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias"]
    assert trainable_parameters(model, None) == [n for n, _ in model.named_parameters()]
    assert trainable_parameters(model, trainable=("net.4",)) == ["net.4.weight", "net.4.bias"]
    with pytest.raises(ValueError, match="k must be at most the 3 modules"):
        trainable_parameters(model, 4)
    with pytest.raises(ValueError, match="matches no parameter"):
        trainable_parameters(model, trainable=("layer4",))


def test_cfk_changes_no_frozen_parameter_and_restores_flags():
    model, data, ctx = toy()
    before = copy.deepcopy(model.state_dict())
    CFk(k=1, lr=0.1, batch_size=32).unlearn(model, data, ctx)
    after = model.state_dict()
    for name in ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"):
        assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["net.4.weight"], after["net.4.weight"])
    assert all(p.requires_grad for p in model.parameters())


def test_finetune_lr_zero_is_bit_identical_and_defaults():
    model, data, ctx = toy()
    before = copy.deepcopy(model.state_dict())
    CFk(k=None, lr=0.0).unlearn(model, data, ctx)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    c = CFk()
    assert (c.k, c.lr, c.epochs, c.batch_size, c.momentum) == (2, 1e-3, 2, 64, 0.0)


def test_finetune_lowers_the_retain_loss():
    model, data, ctx = toy()
    loss = nn.functional.cross_entropy
    with torch.no_grad():
        before = loss(model(data.x_retain), data.y_retain)
    CFk(k=None, lr=0.1, epochs=5, batch_size=32).unlearn(model, data, ctx)
    with torch.no_grad():
        assert loss(model(data.x_retain), data.y_retain) < before


def test_bad_parameters():
    with pytest.raises(ValueError, match="k must be"):
        CFk(k=0)
    with pytest.raises(ValueError, match="lr must be"):
        CFk(lr=-0.1)


CHECKS = unlearner_checks(lambda: CFk(k=1, lr=0.1, batch_size=32), model=lambda: MLP(8, (16, 16), 4))


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_unlearner_suite(name: str, check: object) -> None:
    check()  # type: ignore[operator]
