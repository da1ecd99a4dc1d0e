"""ProtoGCD components: DAPL targets and distillation, prototype separation, the objective, the
number-of-classes estimate (golden values in float64 from the official loss functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.discovery.heads import DINOHead
from paperzoo.discovery.losses import SimGCDLoss, cross_view_self_distillation, mean_entropy_regularizer
from paperzoo.discovery.prototypes import (
    AdaptivePseudoLabelDistillation,
    ProtoGCDLoss,
    PrototypeSeparationTerm,
    adaptive_pseudo_label_distillation,
    confidence_ratio,
    dapl_targets,
    estimate_num_classes,
    mean_prototype_cosine,
    ood_metrics,
    ood_scores,
    protogcd_objective,
    prototype_separation,
    ratio_schedule,
)
from paperzoo.discovery.trainer import GCDBatch, GCDObjective


def golden_logits() -> torch.Tensor:
    i = torch.arange(8, dtype=torch.float64)[:, None]
    k = torch.arange(4, dtype=torch.float64)[None]
    return torch.sin(1.3 * i + 0.7 * k + 0.1)


def golden_prototypes() -> torch.Tensor:
    k = torch.arange(4, dtype=torch.float64)[:, None]
    j = torch.arange(3, dtype=torch.float64)[None]
    return F.normalize(torch.cos(1.7 * k + 0.5 * j), dim=1)


# --------------------------------------------------------------------------- golden values
@pytest.mark.parametrize(
    ("epoch", "expected"), [(0, 4.70446), (25, 4.70446), (50, 4.70449), (99, 4.80203), (150, 4.80203)]
)
def test_dapl_golden(epoch: int, expected: float) -> None:
    loss = AdaptivePseudoLabelDistillation(teacher_temp=0.05, ramp=100)(golden_logits(), epoch)
    assert float(loss) == pytest.approx(expected, abs=1e-5)


def test_confidence_ratio_golden() -> None:
    q = F.softmax(golden_logits() / 0.05, dim=1)
    expected = [43.8128, 11.5282, 460807.6, 89259.3, 19108.1, 16.0935, 198.479, 448435.1]
    assert confidence_ratio(q).tolist() == pytest.approx(expected, rel=1e-5)


def test_entropy_and_separation_golden() -> None:
    assert float(mean_entropy_regularizer(golden_logits(), 0.1)) == pytest.approx(0.172412, abs=1e-6)
    p = golden_prototypes()
    assert p[0].tolist() == pytest.approx([0.696382, 0.611133, 0.376257], abs=1e-6)
    assert float(prototype_separation(p, 0.1, 0.1)) == pytest.approx(6.19405, abs=1e-5)


def test_ratio_schedule() -> None:
    assert ratio_schedule(0) == 0.0 and ratio_schedule(25) == pytest.approx(0.252525, abs=1e-6)
    assert ratio_schedule(99) == 1.0 and ratio_schedule(500) == 1.0
    assert ratio_schedule(3, wait=5) == 0.0 and ratio_schedule(5, wait=5, init=0.2) == pytest.approx(0.2)
    r = [ratio_schedule(e, ramp=10) for e in range(12)]
    assert all(a <= b for a, b in zip(r, r[1:]))


# --------------------------------------------------------------------------- properties
def test_dapl_targets_properties() -> None:
    g = torch.Generator().manual_seed(0)
    q = F.softmax(torch.randn(32, 6, generator=g, dtype=torch.float64) * 3, dim=1)
    assert torch.equal(dapl_targets(q, 0.0), q)
    one_hot = F.one_hot(q.argmax(1), 6).double()
    assert torch.equal(dapl_targets(q, 1.0), one_hot)
    t = dapl_targets(q, 0.3)
    hard = (t != q).any(dim=1)
    n_h = int(32 * 0.3)
    assert int(hard.sum()) <= n_h  # a row already one-hot would be unchanged
    top = set(confidence_ratio(q).topk(n_h).indices.tolist())
    changed = {i for i in range(32) if torch.equal(t[i], one_hot[i])}
    assert top <= changed and torch.equal(t[~hard], q[~hard])
    assert torch.allclose(t.sum(1), torch.ones(32, dtype=torch.float64))


def test_dapl_ratio_zero_is_simgcd_distillation() -> None:
    s = golden_logits()
    a = adaptive_pseudo_label_distillation(s, 0.0, teacher_temp=0.04)
    assert float(a) == pytest.approx(float(cross_view_self_distillation(s, 0.04, 0.1)), abs=1e-12)


def test_dapl_gradcheck() -> None:
    s = golden_logits().clone().requires_grad_(True)
    teacher = golden_logits()  # fixed: the teacher is a stop-gradient target
    assert torch.autograd.gradcheck(lambda x: adaptive_pseudo_label_distillation(x, 0.5, teacher_logits=teacher), (s,))
    p = golden_prototypes().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: prototype_separation(x, 0.1, 0.1), (p,))


def test_separation_invariances_and_optimum() -> None:
    p = golden_prototypes()
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    base = float(prototype_separation(p))
    assert float(prototype_separation(p @ q.T)) == pytest.approx(base, abs=1e-10)
    assert float(prototype_separation(p * torch.tensor([[2.0], [0.5], [3.0], [1.0]], dtype=torch.float64))) == (
        pytest.approx(base, abs=1e-10)
    )
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert float(prototype_separation(antipodal)) == pytest.approx(-10.0, abs=1e-10)
    assert float(prototype_separation(antipodal, 0.2, 0.1)) == pytest.approx(-10.0, abs=1e-10)  # (tau/tau_b)(-1/tau)
    # K = d + 1 = 4 in R^3: the regular simplex beats random configurations
    simplex = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    rand = torch.randn(200, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    best_random = min(float(prototype_separation(r)) for r in rand)
    assert float(prototype_separation(simplex)) < best_random
    assert mean_prototype_cosine(simplex) == pytest.approx(-1 / 3, abs=1e-12)


def test_gradient_descent_on_separation_spreads_prototypes() -> None:
    p = (torch.randn(6, 8, generator=torch.Generator().manual_seed(3)) * 0.1 + 1.0).requires_grad_(True)
    before = mean_prototype_cosine(p)
    opt = torch.optim.SGD([p], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        prototype_separation(p).backward()
        opt.step()
    assert mean_prototype_cosine(p) < before - 0.5


# --------------------------------------------------------------------------- objective
def _batch(head: DINOHead, seed: int = 0) -> GCDBatch:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(16, 12, generator=g)
    z, logits = head(h)
    labels = torch.tensor([0, 1, 2, 0, -1, -1, -1, -1])
    return GCDBatch(views=h, z=z, logits=logits, labels=labels, mask_lab=labels >= 0, model=head)


def test_protogcd_loss_is_simgcd_with_dapl() -> None:
    torch.manual_seed(0)
    head = DINOHead(12, 5, hidden=16, bottleneck=8)
    b = _batch(head)
    proto = ProtoGCDLoss(ramp=10)(b.z, b.logits, b.labels, b.mask_lab, 3)
    sim = SimGCDLoss()(b.z, b.logits, b.labels, b.mask_lab, 3)
    for name in ("cls_sup", "me_max", "rep_unsup", "rep_sup"):
        assert float(proto[name]) == pytest.approx(float(sim[name]), abs=1e-6)
    expected = adaptive_pseudo_label_distillation(b.logits, ratio_schedule(3, ramp=10), 0.05, 0.1)
    assert float(proto["cls_unsup"]) == pytest.approx(float(expected), abs=1e-6)


def test_objective_separation_term_from_head_and_from_the_batch_model() -> None:
    torch.manual_seed(0)
    head = DINOHead(12, 5, hidden=16, bottleneck=8)
    b = _batch(head)
    bound = PrototypeSeparationTerm(head.classifier, weight=1.0)(b, 0)["proto_sep"]
    found = PrototypeSeparationTerm(None, weight=1.0)(b, 0)["proto_sep"]
    assert float(found) == pytest.approx(float(bound), abs=1e-6)
    assert float(bound) == pytest.approx(float(prototype_separation(head.classifier.prototypes())), abs=1e-6)
    with pytest.raises(ValueError, match="no model"):
        PrototypeSeparationTerm(None)(GCDBatch(b.views, b.z, b.logits, b.labels, b.mask_lab), 0)
    with pytest.raises(ValueError, match="no CosineClassifier"):
        PrototypeSeparationTerm(None)(GCDBatch(b.views, b.z, b.logits, b.labels, b.mask_lab, model=nn.Linear(2, 2)), 0)
    obj = protogcd_objective(head.classifier, epochs=20)
    terms = obj(b, 0)
    assert set(terms) == {"cls_sup", "cls_unsup", "me_max", "rep_unsup", "rep_sup", "proto_sep", "total"}
    assert float(terms["proto_sep"]) == pytest.approx(0.65 * 0.1 * float(bound), abs=1e-6)
    terms["total"].backward()
    v = head.classifier.linear.parametrizations.weight.original1
    assert v.grad is not None and torch.isfinite(v.grad).all()
    # compare passes its epoch budget: the ramp covers half of it
    compare = protogcd_objective(epochs=27)
    assert isinstance(compare, GCDObjective) and compare.base.distill.schedule[3] == 14
    assert compare.base.distill.teacher_temp == 0.05


# --------------------------------------------------------------------------- number of classes
def test_estimate_num_classes_finds_blobs() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 5)) * 10
    y = np.repeat(np.arange(6), 40)
    x = centres[y] + rng.normal(size=(240, 5))
    lab = np.flatnonzero((y < 3) & (rng.random(240) < 0.5))
    k, scores = estimate_num_classes(x, lab, y, candidates=range(3, 11))
    assert set(scores) == set(range(3, 11))
    assert k == 6 or scores[6] == pytest.approx(max(scores.values()))
    # labels given for the labelled subset only
    k2, _ = estimate_num_classes(x, lab, y[lab], candidates=[3, 6, 9], score_fn=lambda f, i, yy, kk: -abs(kk - 6))
    assert k2 == 6


# --------------------------------------------------------------------------- bad input
def test_bad_input_errors() -> None:
    s = golden_logits()
    with pytest.raises(ValueError, match="odd"):
        adaptive_pseudo_label_distillation(s[:7], 0.5)
    with pytest.raises(ValueError, match="empty batch"):
        adaptive_pseudo_label_distillation(s[:0], 0.5)
    with pytest.raises(ValueError, match="logits"):
        adaptive_pseudo_label_distillation(torch.full_like(s, math.nan), 0.5)
    with pytest.raises(ValueError, match="ratio"):
        dapl_targets(F.softmax(s, 1), 1.5)
    with pytest.raises(ValueError, match="K >= 2"):
        dapl_targets(torch.ones(3, 1), 0.5)
    with pytest.raises(ValueError, match="epoch"):
        ratio_schedule(-1)
    with pytest.raises(ValueError, match="K >= 2"):
        prototype_separation(torch.ones(1, 3))
    with pytest.raises(ValueError, match="zero row"):
        prototype_separation(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="prototypes"):
        prototype_separation(torch.tensor([[1.0, math.inf], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="temperature"):
        prototype_separation(golden_prototypes(), temperature=0.0)
    x, y = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match=r"^k = 11 is larger than the number of samples \(10\)$"):
        estimate_num_classes(x, np.arange(4), y, candidates=[2, 11])
    with pytest.raises(ValueError, match="candidates"):
        estimate_num_classes(x, np.arange(4), y, candidates=[])
    with pytest.raises(ValueError, match="labelled_idx"):
        estimate_num_classes(x, np.array([0, 12]), y, candidates=[2])
    with pytest.raises(ValueError, match="labels"):
        estimate_num_classes(x, np.arange(4), y[:7], candidates=[2])
    with pytest.raises(ValueError, match="NaN"):
        estimate_num_classes(np.full((10, 2), np.nan), np.arange(4), y, candidates=[2])


# --------------------------------------------------------------------------- OOD scores
def test_ood_scores_and_metrics() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(50, 2, generator=g, dtype=torch.float64).tanh()
    msp, margin = ood_scores(s, "msp"), ood_scores(s, "margin")
    assert torch.allclose(margin, 2 * msp - 1)  # K = 2: margin = 2 msp - 1, a monotone transform
    assert torch.allclose(ood_scores(s, "energy", energy_T=1.0), torch.logsumexp(s, 1))
    assert torch.allclose(ood_scores(s, "mls"), s.max(1).values)
    p = torch.softmax(s / 0.1, 1)
    assert torch.allclose(ood_scores(s, "xent"), -(torch.log(p)).mean(1))  # cross-entropy to uniform
    proto = ood_scores(s, "proto")
    assert torch.equal(proto.argsort(), margin.argsort())
    m = ood_metrics(np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2]))
    assert m == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    m = ood_metrics(np.arange(100.0), np.array([50.0]))  # 95% TPR keeps scores >= 5: the OOD sample is in
    assert m["fpr95"] == 1.0 and m["auroc"] == pytest.approx(0.495)
    with pytest.raises(ValueError, match="kind"):
        ood_scores(s, "odin")
    with pytest.raises(ValueError, match="scores_out is empty"):
        ood_metrics(np.ones(3), np.array([]))
