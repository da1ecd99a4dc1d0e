"""SimGCD loss terms: golden values of the official code, the terms' invariants and limiting cases,
equality with pytorch-metric-learning and the hand formulas, gradcheck, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperzoo.discovery.losses import (
    TERMS,
    CrossViewSelfDistillationLoss,
    MeanEntropyRegularizer,
    SimGCDLoss,
    cross_view_self_distillation,
    linear_warmup_schedule,
    mean_entropy_regularizer,
    supervised_classification,
    supervised_contrastive,
    teacher_temperature,
    unsupervised_contrastive,
)


def _golden_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    i = torch.arange(8, dtype=torch.float64)[:, None]
    logits = torch.sin(1.3 * i + 0.7 * torch.arange(4, dtype=torch.float64)[None] + 0.1)
    proj = torch.cos(0.9 * i - 1.1 * torch.arange(3, dtype=torch.float64)[None] + 0.3)
    return logits, proj, torch.tensor([0, 1, 0, 2]), torch.tensor([True, True, False, False])


# --------------------------------------------------------------------------- golden values
def test_golden_values_of_the_official_code() -> None:
    logits, proj, labels, mask = _golden_inputs()
    assert supervised_classification(logits, labels, mask).item() == pytest.approx(7.40256, abs=1e-5)
    distill = CrossViewSelfDistillationLoss()
    for epoch, want in ((0, 4.62449), (10, 4.66257), (100, 4.74860)):
        assert distill(logits, epoch).item() == pytest.approx(want, abs=1e-5)
    assert mean_entropy_regularizer(logits).item() == pytest.approx(0.172412, abs=1e-6)
    assert unsupervised_contrastive(proj).item() == pytest.approx(2.91753, abs=1e-5)
    assert unsupervised_contrastive(proj, temperature=0.07).item() == pytest.approx(23.7031, abs=1e-4)
    assert supervised_contrastive(proj, labels, mask).item() == pytest.approx(21.1273, abs=1e-4)
    terms = SimGCDLoss(lambda_sup=0.35, memax_weight=2.0)(proj, logits, labels, mask, 0)
    assert set(terms) == {*TERMS, "total"}
    assert terms["total"].item() == pytest.approx(15.1119, abs=1e-4)


def test_teacher_schedule_is_linear_then_constant() -> None:
    assert teacher_temperature(0) == pytest.approx(0.07)
    assert teacher_temperature(10) == pytest.approx(0.0596552, abs=1e-7)
    assert teacher_temperature(29) == teacher_temperature(30) == teacher_temperature(199) == pytest.approx(0.04)
    sched = linear_warmup_schedule(0.07, 0.04, 30, 200)
    want = np.concatenate([np.linspace(0.07, 0.04, 30), np.full(170, 0.04)])
    np.testing.assert_allclose(sched, want, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------- properties
def test_mean_entropy_regulariser_bounds_and_invariance() -> None:
    k = 6
    assert mean_entropy_regularizer(torch.zeros(10, k, dtype=torch.float64)).item() == pytest.approx(0.0, abs=1e-12)
    one_class = torch.full((10, k), -50.0, dtype=torch.float64)
    one_class[:, 2] = 50.0
    assert mean_entropy_regularizer(one_class).item() == pytest.approx(math.log(k), abs=1e-9)
    s = torch.randn(12, k, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v = mean_entropy_regularizer(s).item()
    assert 0.0 <= v <= math.log(k)
    shifted = s + torch.randn(12, 1, dtype=torch.float64)
    assert mean_entropy_regularizer(shifted).item() == pytest.approx(v, abs=1e-12)
    assert MeanEntropyRegularizer(0.1)(s).item() == pytest.approx(v, abs=1e-12)


def test_self_distillation_teacher_is_detached_views_swap_and_entropy_limit() -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(10, 5, dtype=torch.float64, generator=g)
    teacher = s.clone().requires_grad_(True)
    student = s.clone().requires_grad_(True)
    cross_view_self_distillation(student, 0.05, 0.1, teacher_logits=teacher).backward()
    assert teacher.grad is None and student.grad is not None and student.grad.abs().sum() > 0
    swapped = torch.cat(s.chunk(2)[::-1])
    assert cross_view_self_distillation(swapped, 0.05).item() == pytest.approx(
        cross_view_self_distillation(s, 0.05).item(), abs=1e-12
    )
    same = torch.cat([s[:5], s[:5]])
    p = F.softmax(same / 0.1, dim=1)
    entropy = -(p * p.log()).sum(1).mean()
    assert cross_view_self_distillation(same, 0.1, 0.1).item() == pytest.approx(entropy.item(), abs=1e-12)


def test_self_distillation_matches_the_official_loop() -> None:
    s = torch.randn(8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    student, teacher = (s / 0.1).chunk(2), F.softmax(s / 0.06, dim=-1).chunk(2)
    total = sum(
        torch.sum(-q * F.log_softmax(student[v], dim=-1), dim=-1).mean()
        for iq, q in enumerate(teacher)
        for v in range(2)
        if v != iq
    )
    assert cross_view_self_distillation(s, 0.06).item() == pytest.approx(total.item() / 2, abs=1e-12)


def _info_nce_hand(z: torch.Tensor, tau: float) -> torch.Tensor:
    b = z.shape[0] // 2
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.T / tau
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool), float("-inf"))
    pos = torch.arange(2 * b).roll(b)
    return F.cross_entropy(sim, pos)


def test_contrastive_wrappers_equal_pml_and_the_hand_formulas() -> None:
    from pytorch_metric_learning.losses import NTXentLoss, SupConLoss

    g = torch.Generator().manual_seed(3)
    z = torch.randn(12, 5, dtype=torch.float64, generator=g)
    ids = torch.arange(6).repeat(2)
    for tau in (1.0, 0.07):
        ours = unsupervised_contrastive(z, tau)
        assert ours.item() == pytest.approx(NTXentLoss(temperature=tau)(F.normalize(z, dim=1), ids).item(), abs=1e-8)
        assert ours.item() == pytest.approx(_info_nce_hand(z, tau).item(), abs=1e-8)
    labels, mask = torch.tensor([0, 1, 0, 2, 1, 5]), torch.tensor([True, True, True, False, True, False])
    z1, z2 = F.normalize(z, dim=1).chunk(2)
    y = labels[mask]
    want = SupConLoss(temperature=0.07)(torch.cat([z1[mask], z2[mask]]), torch.cat([y, y]))
    assert supervised_contrastive(z, labels, mask).item() == pytest.approx(want.item(), abs=1e-8)


def test_supcon_with_one_image_per_class_is_infonce_on_the_labelled_subset() -> None:
    z = torch.randn(10, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    labels, mask = torch.tensor([3, 0, 1, 9, 2]), torch.tensor([True, True, False, True, True])
    sub = torch.cat([z[:5][mask], z[5:][mask]])
    assert supervised_contrastive(z, labels, mask, 0.3).item() == pytest.approx(
        unsupervised_contrastive(sub, 0.3).item(), abs=1e-10
    )


def test_no_labelled_image_gives_zero_supervised_terms_in_the_graph() -> None:
    logits = torch.randn(6, 4, requires_grad=True)
    z = torch.randn(6, 3, requires_grad=True)
    labels, mask = torch.full((3,), -1), torch.zeros(3, dtype=torch.bool)
    terms = SimGCDLoss()(z, logits, labels, mask, 0)
    assert terms["cls_sup"].item() == 0.0 and terms["rep_sup"].item() == 0.0
    terms["total"].backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------- gradcheck
def test_gradcheck_float64() -> None:
    logits, proj, labels, mask = _golden_inputs()
    lg = (0.3 * logits).clone().requires_grad_(True)
    pj = proj.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: mean_entropy_regularizer(s), (lg,))
    # the teacher is detached, so the student is checked against a fixed teacher
    teacher = logits.flip(0)
    assert torch.autograd.gradcheck(lambda s: cross_view_self_distillation(s, 0.07, teacher_logits=teacher), (lg,))
    assert torch.autograd.gradcheck(lambda s: supervised_classification(s, labels, mask), (lg,))
    assert torch.autograd.gradcheck(lambda z: unsupervised_contrastive(z), (pj,))
    assert torch.autograd.gradcheck(lambda z: supervised_contrastive(z, labels, mask, 0.5), (pj,))
    loss = SimGCDLoss()
    assert torch.autograd.gradcheck(lambda z: loss(z, logits, labels, mask, 3)["total"], (pj,))


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_named() -> None:
    logits, proj, labels, mask = _golden_inputs()
    loss = SimGCDLoss()
    with pytest.raises(ValueError, match="odd"):
        loss(proj[:7], logits[:7], labels, mask, 0)
    with pytest.raises(ValueError, match="mask_lab must have shape"):
        loss(proj, logits, labels, mask[:3], 0)
    with pytest.raises(ValueError, match="labels must have shape"):
        loss(proj, logits, labels[:3], mask, 0)
    with pytest.raises(ValueError, match=r"labels of labelled images must lie in \[0, 4\)"):
        loss(proj, logits, torch.tensor([0, 7, 0, 2]), mask, 0)
    with pytest.raises(ValueError, match="empty batch"):
        mean_entropy_regularizer(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="logits contains NaN"):
        loss(proj, logits.clone().fill_(float("nan")), labels, mask, 0)
    with pytest.raises(ValueError, match="same number of rows"):
        loss(proj[:4], logits, labels, mask, 0)
    with pytest.raises(ValueError, match="epoch must be a non-negative int"):
        loss(proj, logits, labels, mask, -1)
    with pytest.raises(ValueError, match="lambda_sup"):
        SimGCDLoss(lambda_sup=1.5)
    with pytest.raises(ValueError, match="teacher_temp must be"):
        SimGCDLoss(teacher_temp=(0.07, 0.04))
    with pytest.raises(TypeError, match="mask_lab must be a bool"):
        loss(proj, logits, labels, mask.long(), 0)
