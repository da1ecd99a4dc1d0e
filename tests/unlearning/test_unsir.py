"""UNSIR (error-maximising noise, impair, repair) as a baseline of paper 36."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from paperzoo.testing import toy_unlearning_problem as toy
from paperzoo.testing import unlearner_checks
from paperzoo.unlearning.unsir import UNSIR, error_maximising_noise


def test_noise_maximises_the_error_and_leaves_the_model():
    model, data, _ = toy()
    before = copy.deepcopy(model.state_dict())
    y = data.y_forget
    g0, g1 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    start = error_maximising_noise(model, y, (8,), steps=0, generator=g0)
    noise = error_maximising_noise(model, y, (8,), steps=20, generator=g1)
    assert noise.shape == (60, 8) and not noise.requires_grad
    with torch.no_grad():
        assert F.cross_entropy(model(noise), y) > F.cross_entropy(model(start), y)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters()) and model.training


def test_defaults_and_stage_lengths():
    u = UNSIR()
    assert (u.impair_epochs, u.repair_epochs, u.epochs, u.lr, u.batch_size, u.momentum) == (1, 1, 2, 1e-3, 64, 0.0)
    assert UNSIR(repair_epochs=0).epochs == 1


def test_impair_step_is_sgd_on_retain_plus_labelled_noise():
    # one full batch: a single SGD step on CE over the retain set joined by every noise sample
    model, data, ctx = toy()
    ref = copy.deepcopy(model)
    UNSIR(repair_epochs=0, lr=0.1, batch_size=200, noise_steps=5).unlearn(model, data, ctx)
    g = torch.Generator().manual_seed(ctx.seed)  # the noise is the method's first draw
    noise = error_maximising_noise(ref, data.y_forget, (8,), steps=5, generator=g)
    x, y = torch.cat([data.x_retain, noise]), torch.cat([data.y_retain, data.y_forget])
    grads = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
    for p, p0, gr in zip(model.parameters(), ref.parameters(), grads):
        assert torch.allclose(p, p0 - 0.1 * gr, atol=1e-6)


def test_lr_zero_leaves_the_model():
    model, data, ctx = toy()
    before = copy.deepcopy(model.state_dict())
    UNSIR(lr=0.0).unlearn(model, data, ctx)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


CHECKS = unlearner_checks(lambda: UNSIR(lr=0.01, batch_size=32))


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_unlearner_suite(name, check):
    check()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"impair_epochs": 0}, "impair_epochs must be"), ({"noise_lr": 0.0}, "noise_lr must be"),
     ({"noise_l2": -1.0}, "noise_l2 must be"), ({"repair_epochs": -1}, "repair_epochs must be")],
)  # fmt: skip
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNSIR(**kwargs)
