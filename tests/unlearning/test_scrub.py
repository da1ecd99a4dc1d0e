"""SCRUB as benchmarked by paper 36 (teacher-student max-min distillation)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from paperzoo.testing import toy_unlearning_problem as toy
from paperzoo.testing import unlearner_checks
from paperzoo.unlearning.scrub import SCRUB, distill_kl


def test_defaults_are_the_benchmark_recipe():
    s = SCRUB()
    assert (s.lr, s.epochs, s.batch_size, s.momentum, s.temperature) == (1e-3, 2, 64, 0.0, 4.0)
    assert (s.kl_weight, s.ce_weight, s.forget_epochs) == (1.0, 1.0, None)


def test_distill_kl_matches_the_reference_formula():
    s, t = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    p, q = F.softmax(t / 4, 1), F.softmax(s / 4, 1)
    naive = (p * (p.log() - q.log())).sum() * 16 / 5
    assert torch.allclose(distill_kl(s, t, 4.0), naive)
    assert float(distill_kl(t, t)) == pytest.approx(0.0, abs=1e-12)
    assert torch.autograd.gradcheck(lambda a: distill_kl(a, t, 2.0), (s.clone().requires_grad_(True),))


def test_student_equal_to_teacher_starts_at_kl_zero():
    # no forget pass and no CE: the retain KL is 0 with a zero gradient, so nothing moves
    model, data, ctx = toy()
    before = copy.deepcopy(model.state_dict())
    SCRUB(lr=0.5, epochs=1, ce_weight=0.0, forget_epochs=0).unlearn(model, data, ctx)
    assert all(torch.allclose(before[k], v, atol=1e-7) for k, v in model.state_dict().items())


def test_forget_pass_moves_away_from_the_teacher_on_the_forget_set():
    model, data, ctx = toy()
    no_max, _, _ = toy()
    teacher = copy.deepcopy(model)
    SCRUB(lr=0.05, epochs=2, batch_size=30).unlearn(model, data, ctx)
    SCRUB(lr=0.05, epochs=2, batch_size=30, forget_epochs=0).unlearn(no_max, data, ctx)
    with torch.no_grad():
        kl_f = distill_kl(model(data.x_forget), teacher(data.x_forget))
        kl_f0 = distill_kl(no_max(data.x_forget), teacher(data.x_forget))
    assert kl_f > kl_f0 > 0


def test_lr_zero_leaves_the_model():
    model, data, ctx = toy()
    before = copy.deepcopy(model.state_dict())
    SCRUB(lr=0.0).unlearn(model, data, ctx)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


CHECKS = unlearner_checks(lambda: SCRUB(lr=0.01, batch_size=32))


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_unlearner_suite(name, check):
    check()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"temperature": 0.0}, "temperature must be"), ({"forget_epochs": -1}, "forget_epochs must be"),
     ({"kl_weight": -1.0}, "kl_weight must be"), ({"lr": float("nan")}, "lr must be")],
)  # fmt: skip
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SCRUB(**kwargs)
