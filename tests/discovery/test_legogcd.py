"""LegoGCD extra terms: golden values of the official code, the terms' invariants and limiting
cases, reduction to SimGCD, the EMA prior, gradcheck, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.discovery.legogcd import (
    DualViewKL,
    LocalEntropyRegularizer,
    OldAccuracyProbe,
    dual_view_kl,
    ema_prior_update,
    forgetting,
    legogcd_objective,
    local_entropy_regularizer,
)
from paperzoo.discovery.losses import SimGCDLoss
from paperzoo.discovery.trainer import GCDBatch, GCDObjective, train_gcd


def _golden() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    i = torch.arange(8, dtype=torch.float64)[:, None]
    logits = torch.sin(1.3 * i + 0.7 * torch.arange(4, dtype=torch.float64)[None] + 0.1)
    proj = torch.cos(0.9 * i - 1.1 * torch.arange(3, dtype=torch.float64)[None] + 0.3)
    return logits, proj, torch.tensor([0, 1, 0, 2]), torch.tensor([True, True, False, False])


def _batch(logits: torch.Tensor, z: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> GCDBatch:
    return GCDBatch(views=logits, z=z, logits=logits, labels=labels, mask_lab=mask)


# --------------------------------------------------------------------------- golden values
def test_golden_values_of_the_official_code() -> None:
    logits, proj, labels, mask = _golden()
    assert dual_view_kl(logits).item() == pytest.approx(0.561517, abs=1e-6)
    assert dual_view_kl(logits, mode="kl").item() == pytest.approx(5.27771, abs=1e-5)
    p = F.softmax(logits / 0.1, dim=1)
    np.testing.assert_allclose(
        p.max(1).values.numpy(),
        [0.825133, 0.771593, 0.998915, 0.993840, 0.992879, 0.776007, 0.933591, 0.998874],
        atol=1e-6,
    )
    assert p.argmax(1).tolist() == [2, 0, 0, 3, 3, 2, 0, 0]
    loss, sel = local_entropy_regularizer(logits, mask.repeat(2), n_old=2, threshold=0.7)
    assert sel.tolist() == [False, False, True, False, False, False, True, True]
    assert loss.item() == pytest.approx(0.00394731, abs=1e-8)
    prior = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    assert local_entropy_regularizer(logits, mask.repeat(2), 2, prior)[0].item() == pytest.approx(0.00395128, abs=1e-8)
    ler = LocalEntropyRegularizer(4, n_old=2)
    out = ler(_batch(logits, proj, labels, mask), 0)
    assert out["ler"].item() == pytest.approx(2 * 0.00394731, abs=1e-8)  # beta = 2; loss before the update
    np.testing.assert_allclose(ler.prior.numpy(), [0.25004460, 0.24999878, 0.24997809, 0.24997853], atol=1e-8)
    assert ler.last_selection_mask is not None and ler.last_selection_mask.sum() == 3
    # the official DKL is LegoGCD's distillation minus SimGCD's, weighed by 1 - lambda in the total
    terms = legogcd_objective(4, 2, beta=0.0)(_batch(logits, proj, labels, mask), 0)
    simgcd = SimGCDLoss()(proj, logits, labels, mask, 0)["total"]
    assert (terms["total"] - simgcd).item() == pytest.approx(0.65 * 0.561517, abs=1e-6)


# --------------------------------------------------------------------------- properties
def test_ler_with_uniform_prior_is_the_entropy_of_the_sharpened_prediction() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 6, generator=g, dtype=torch.float64).tanh() * 3
    lab = torch.rand(64, generator=g) < 0.3
    loss, sel = local_entropy_regularizer(logits, lab, n_old=3, threshold=0.5)
    r = F.softmax(logits / 0.05, dim=1)
    entropy = -(r * r.log()).sum(1)
    assert sel.any()
    assert loss.item() == pytest.approx(float((entropy * sel).sum() / 64), rel=1e-10)


def test_ler_is_zero_without_selection_and_never_reads_labels() -> None:
    logits, proj, labels, mask = _golden()
    all_lab = torch.ones(8, dtype=torch.bool)
    assert local_entropy_regularizer(logits, all_lab, 2)[0].item() == 0.0
    assert local_entropy_regularizer(logits, mask.repeat(2), 2, threshold=1.0)[0].item() == 0.0
    flat = torch.zeros(8, 4, dtype=torch.float64)  # max prob 0.25 < delta
    assert local_entropy_regularizer(flat, mask.repeat(2), 2)[0].item() == 0.0
    # all confident views predicted new (class 3): nothing selected
    new = torch.full((8, 4), -1.0, dtype=torch.float64)
    new[:, 3] = 1.0
    assert local_entropy_regularizer(new, mask.repeat(2), 2)[0].item() == 0.0
    ler = LocalEntropyRegularizer(4, n_old=2)
    ler.eval()
    a = ler(_batch(logits, proj, labels, mask), 0)["ler"]
    b = ler(_batch(logits, proj, torch.tensor([0, 1, 1, 0]), mask), 0)["ler"]  # other labels of unlabelled images
    assert a.item() == b.item()


def test_dkl_properties() -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(8, 5, generator=g, dtype=torch.float64)
    same = torch.cat([s, s])
    assert dual_view_kl(same, "kl").item() == pytest.approx(0.0, abs=1e-12)
    assert dual_view_kl(same, "official").item() == pytest.approx(0.0, abs=1e-12)
    other = torch.cat([s, torch.randn(8, 5, generator=g, dtype=torch.float64)])
    assert dual_view_kl(other, "kl").item() > 0
    shift = other + torch.randn(16, 1, generator=g, dtype=torch.float64)
    for mode in ("kl", "official"):
        assert dual_view_kl(shift, mode).item() == pytest.approx(dual_view_kl(other, mode).item(), rel=1e-10)
    # the official form is bounded (a second softmax of probabilities)
    extreme = torch.cat(
        [torch.eye(5, dtype=torch.float64) * 50, torch.roll(torch.eye(5, dtype=torch.float64), 1, 0) * 50]
    )
    assert 0 < dual_view_kl(extreme).item() <= 2.0 < dual_view_kl(extreme, "kl").item()
    # closed form: sum_k p1 (p1 - p2) - LSE(p1) + LSE(p2)
    p1, p2 = F.softmax(other[:8] / 0.1, 1), F.softmax(other[8:] / 0.1, 1)
    closed = ((p1 * (p1 - p2)).sum(1) - torch.logsumexp(p1, 1) + torch.logsumexp(p2, 1)).mean()
    assert dual_view_kl(other).item() == pytest.approx(closed.item(), rel=1e-10)


def test_dkl_detach_target_stops_the_gradient_of_view_two() -> None:
    s = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    dual_view_kl(s, "kl", detach_target=True).backward()
    assert s.grad is not None and s.grad[4:].abs().max() == 0 and s.grad[:4].abs().max() > 0


def test_prior_ema_closed_form_and_stays_a_distribution() -> None:
    logits = torch.randn(10, 4, dtype=torch.float64)
    m = F.softmax(logits, 1).mean(0)
    prior = torch.full((4,), 0.25, dtype=torch.float64)
    for _ in range(50):
        prior = ema_prior_update(prior, logits)
    np.testing.assert_allclose(prior.numpy(), (m + 0.999**50 * (0.25 - m)).numpy(), atol=1e-12)
    assert prior.sum().item() == pytest.approx(1.0) and (prior > 0).all()


def test_reduces_to_simgcd_and_infers_n_old() -> None:
    logits, proj, labels, mask = _golden()
    batch = _batch(logits, proj, labels, mask)
    plain = GCDObjective(SimGCDLoss())(batch, 3)
    reduced = legogcd_objective(4, 2, beta=0.0, dkl=False)(batch, 3)
    assert reduced.keys() == plain.keys() and reduced["total"].item() == plain["total"].item()
    inferred = LocalEntropyRegularizer(4)  # n_old from the labelled labels seen: max(0, 1) + 1
    assert inferred(batch, 0)["ler"].item() == pytest.approx(2 * 0.00394731, abs=1e-8) and inferred.current_n_old() == 2
    fresh = LocalEntropyRegularizer(4)
    none_lab = _batch(logits, proj, labels, torch.zeros(4, dtype=torch.bool))
    assert fresh(none_lab, 0)["ler"].item() == 0.0  # no old class known yet


def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(2)
    s = (torch.randn(8, 4, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    lab = torch.tensor([True, False, False, False] * 2)
    prior = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    assert local_entropy_regularizer(s, lab, 2, prior, threshold=0.3)[1].any()
    assert torch.autograd.gradcheck(lambda x: local_entropy_regularizer(x, lab, 2, prior, threshold=0.3)[0], (s,))
    for mode in ("official", "kl"):
        assert torch.autograd.gradcheck(lambda x, m=mode: dual_view_kl(x, m), (s,))


def test_forgetting_and_probe() -> None:
    assert forgetting([0.5, 0.9, 0.7]) == pytest.approx(0.2)
    assert forgetting([0.5, 0.6]) == 0.0
    with pytest.raises(ValueError, match="old_curve is empty"):
        forgetting([])
    torch.manual_seed(0)
    from paperzoo.discovery.heads import DINOHead

    x = torch.randn(64, 6)
    y = np.repeat(np.arange(4), 16)
    model = nn.Sequential(nn.Linear(6, 16), DINOHead(16, 4, hidden=16, bottleneck=8))
    targets = torch.where(torch.from_numpy(y < 2) & (torch.arange(64) % 2 == 0), torch.from_numpy(y), -1)
    un = (targets < 0).numpy()
    probe = OldAccuracyProbe(model, x[un], y[un], y[un] < 2)
    objective = legogcd_objective(4, 2, teacher_temp=(0.07, 0.04, 1))
    objective.extra_terms.append(probe)
    train_gcd(model, x, targets, lambda t: t + 0.1 * torch.randn_like(t), objective, epochs=3, batch_size=16)
    assert len(probe.curve) == 2  # after epochs 1 and 2
    model.train()
    probe.record()
    assert model.training and len(probe.curve) == 3  # the probe puts the model back in train mode
    assert all(0.0 <= c["Old"] <= 1.0 for c in probe.curve)


# --------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors() -> None:
    logits, proj, labels, mask = _golden()
    lab = mask.repeat(2)
    with pytest.raises(ValueError, match="odd"):
        dual_view_kl(logits[:7])
    with pytest.raises(ValueError, match="empty batch"):
        dual_view_kl(logits[:0])
    with pytest.raises(ValueError, match="mode"):
        dual_view_kl(logits, mode="js")
    with pytest.raises(ValueError, match="logits.*NaN|NaN.*logits|finite"):
        dual_view_kl(torch.full((4, 3), math.nan))
    with pytest.raises(ValueError, match="n_old"):
        local_entropy_regularizer(logits, lab, n_old=4)
    with pytest.raises(ValueError, match="threshold"):
        local_entropy_regularizer(logits, lab, 2, threshold=1.5)
    with pytest.raises(ValueError, match="labelled"):
        local_entropy_regularizer(logits, lab[:4], 2)
    with pytest.raises(TypeError, match="labelled"):
        local_entropy_regularizer(logits, lab.long(), 2)
    with pytest.raises(ValueError, match="prior"):
        local_entropy_regularizer(logits, lab, 2, prior=torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="prior"):
        local_entropy_regularizer(logits, lab, 2, prior=torch.ones(3))
    with pytest.raises(ValueError, match="num_classes"):
        LocalEntropyRegularizer(1)
    with pytest.raises(ValueError, match="n_old"):
        LocalEntropyRegularizer(4, n_old=0)
    with pytest.raises(ValueError, match="weight"):
        DualViewKL(weight=-1.0)
    with pytest.raises(ValueError, match="num_classes"):
        LocalEntropyRegularizer(5, n_old=2)(_batch(logits, proj, labels, mask), 0)
    with pytest.raises(ValueError, match="mask_lab"):
        LocalEntropyRegularizer(4, n_old=2)(_batch(logits, proj, labels, mask[:3]), 0)
    with pytest.raises(ValueError, match="labels of labelled images"):
        LocalEntropyRegularizer(4)(_batch(logits, proj, torch.tensor([0, 7, 0, 0]), mask), 0)
    with pytest.raises(ValueError, match="beta"):
        legogcd_objective(4, 2, beta=-1.0)
