"""Tests of UNPG (paper 8): the box-and-whisker filter, the batch negatives, the loss on logits and the
PML losses. Golden values were produced with the official ``UNPG``, ``ArcFace``, ``CosFace`` classes and
``box_and_whisker_algorithm`` of ``Jung-Jun-Uk/UNPG`` (float64). The generic metric-loss behaviour
(input errors, gradcheck, permutation, dtypes, round trips, miners, reducers, ``DistributedLossWrapper``)
is covered by :func:`paperzoo.testing.metric_loss_checks`."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss

from paperzoo.losses import UNPGArcFaceLoss, UNPGCosFaceLoss
from paperzoo.losses.unpg import (
    batch_negative_similarities,
    box_whisker_filter,
    box_whisker_mask,
    unpg_cross_entropy,
)
from paperzoo.testing import metric_loss_checks

F64 = torch.float64
ARC = math.degrees(0.5)

SN = [0.05, -0.10, 0.12, 0.02, -0.03, 0.08, 0.95, -0.60, 0.00, 0.04, 0.10, -0.05]
COS_M = [[0.30, 0.10, -0.20], [0.05, 0.40, 0.20], [-0.10, 0.00, 0.50]]
X = [
    [-2.3104118, -0.37325086, -1.06081668, 0.99950935],
    [-0.884025, -1.27554693, -0.62322458, -0.8664416],
    [-1.29562714, 1.52363162, 0.32366057, 2.01772603],
    [1.13574234, -1.22688134, 0.07138847, 0.3380174],
    [0.15351884, -0.63327461, -1.26092466, -0.72695106],
    [-0.01996475, 0.21029989, 0.17718935, -0.83051005],
    [1.01118921, -0.24267938, -0.77301128, -1.59518149],
    [-0.68700369, 1.48807432, -0.4484158, -0.89100304],
]
W = [
    [0.19199507, 0.54277135, -2.21877937, 0.25898454],
    [-1.02970218, -0.50075841, 0.27336774, -0.91809997],
    [-0.04042109, 0.28811683, -0.00753731, -0.91449545],
]
Y8 = [0, 1, 2, 0, 1, 2, 0, 1]


def t(v: list) -> torch.Tensor:
    return torch.tensor(v, dtype=F64)


def with_w(loss: torch.nn.Module) -> torch.nn.Module:
    loss = loss.double()
    loss.W.data = t(W).T.clone()
    return loss


def naive_unpg(cos_m: torch.Tensor, sn: torch.Tensor, labels: torch.Tensor, s: float) -> torch.Tensor:
    """The paper's formula written literally: the kept negatives concatenated to every row, cross-entropy."""
    logits = torch.cat([cos_m, sn.expand(cos_m.shape[0], -1)], dim=1) * s
    return torch.nn.functional.cross_entropy(logits, labels)


# --------------------------------------------------------------------------- filter
@pytest.mark.parametrize(
    ("k", "kept"),
    [
        (1.5, [-0.10, -0.05, -0.03, 0.00, 0.02, 0.04, 0.05, 0.08, 0.10, 0.12]),
        (1.0, [-0.10, -0.05, -0.03, 0.00, 0.02, 0.04, 0.05, 0.08, 0.10, 0.12]),
        (0.5, [-0.05, -0.03, 0.00, 0.02, 0.04, 0.05, 0.08, 0.10, 0.12]),
        (0.0, [-0.03, 0.00, 0.02, 0.04, 0.05, 0.08, 0.10]),
    ],
)
def test_filter_golden(k: float, kept: list) -> None:
    out = box_whisker_filter(t(SN), k)
    assert sorted(out.tolist()) == pytest.approx(kept)


def test_filter_properties() -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(301, generator=g, dtype=F64) ** 3
    assert box_whisker_mask(v, math.inf).all()
    s = v.sort().values
    q1, q3 = s[301 // 4], s[(3 * 301) // 4]
    for k in (0.0, 0.7, 1.5):
        kept = box_whisker_filter(v, k)
        inside = v[(v >= q1) & (v <= q3)]
        assert set(inside.tolist()) <= set(kept.tolist())
        perm = torch.randperm(301, generator=g)
        assert sorted(box_whisker_filter(v[perm], k).tolist()) == sorted(kept.tolist())
    assert box_whisker_filter(v[:0], 1.5).numel() == 0


def test_filter_errors() -> None:
    with pytest.raises(ValueError, match="wisk"):
        box_whisker_mask(t(SN), -1.0)
    with pytest.raises(ValueError, match="values"):
        box_whisker_mask(t([[0.1]]), 1.0)
    with pytest.raises(ValueError, match="values"):
        box_whisker_mask(t([0.1, math.nan]), 1.0)


# --------------------------------------------------------------------------- loss on logits
def test_logits_golden_and_gradients() -> None:
    cm = t(COS_M).requires_grad_(True)
    sn = t(SN).requires_grad_(True)
    y = torch.tensor([0, 1, 2])
    plain = unpg_cross_entropy(cm, sn[:0], y, 10.0)
    (g,) = torch.autograd.grad(plain, cm)
    assert plain.item() == pytest.approx(0.0983993085, abs=1e-9)
    assert g[0].tolist() == pytest.approx([-0.414665, 0.394999, 0.0196658], abs=1e-6)
    loss = unpg_cross_entropy(cm, box_whisker_filter(sn, 1.5), y, 10.0)
    gc, gs = torch.autograd.grad(loss, (cm, sn))
    assert loss.item() == pytest.approx(0.373592468, abs=1e-9)
    assert gc[0].tolist() == pytest.approx([-1.58434, 0.2367, 0.0117846], abs=1e-5)
    golden = [0.246435, 0.0549871, 0.49626, 0.182564, 0.11073, 0.332653, 0, 0, 0.14947, 0.222984, 0.406303, 0.0906584]
    assert gs.tolist() == pytest.approx(golden, abs=1e-5)
    # kept negatives get a positive gradient, removed ones exactly 0
    assert (gs[[6, 7]] == 0).all() and (gs[box_whisker_mask(sn.detach(), 1.5)] > 0).all()
    assert unpg_cross_entropy(cm, sn[:0], y, 64.0).item() == pytest.approx(1.84057484e-06, rel=1e-7)
    assert unpg_cross_entropy(cm, box_whisker_filter(sn, 1.5), y, 64.0).item() == pytest.approx(
        6.39867195e-06, rel=1e-7
    )


def test_logits_match_naive_concatenation_and_invariants() -> None:
    g = torch.Generator().manual_seed(1)
    cm, sn = torch.randn(7, 5, generator=g, dtype=F64) * 0.4, torch.randn(30, generator=g, dtype=F64) * 0.3
    y = torch.randint(0, 5, (7,), generator=g)
    for s in (1.0, 10.0, 64.0):
        ours = unpg_cross_entropy(cm, sn, y, s)
        assert ours.item() == pytest.approx(naive_unpg(cm, sn, y, s).item(), rel=1e-12)
        base = unpg_cross_entropy(cm, sn[:0], y, s)
        assert ours.item() > base.item()  # extra positive terms in the denominator
        assert base.item() == pytest.approx(torch.nn.functional.cross_entropy(cm * s, y).item(), rel=1e-12)
        # shift invariance
        assert unpg_cross_entropy(cm + 0.3, sn + 0.3, y, s).item() == pytest.approx(ours.item(), rel=1e-10)
    per = unpg_cross_entropy(cm, sn, y, 10.0, reduction="none")
    assert per.shape == (7,) and unpg_cross_entropy(cm, sn, y, 10.0, reduction="sum").item() == pytest.approx(
        per.sum().item()
    )


def test_logits_gradcheck() -> None:
    g = torch.Generator().manual_seed(2)
    cm = (torch.randn(4, 3, generator=g, dtype=F64) * 0.3).requires_grad_(True)
    sn = (torch.randn(6, generator=g, dtype=F64) * 0.3).requires_grad_(True)
    y = torch.tensor([0, 2, 1, 2])
    assert torch.autograd.gradcheck(lambda a, b: unpg_cross_entropy(a, b, y, 8.0), (cm, sn))


def test_logits_errors() -> None:
    cm, y = t(COS_M), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="labels"):
        unpg_cross_entropy(cm, t(SN), torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="labels"):
        unpg_cross_entropy(cm, t(SN), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="margin_logits"):
        unpg_cross_entropy(cm[:0], t(SN), y[:0])
    with pytest.raises(ValueError, match="margin_logits"):
        unpg_cross_entropy(cm * math.nan, t(SN), y)
    with pytest.raises(ValueError, match="neg_sims"):
        unpg_cross_entropy(cm, t([[0.1]]), y)
    with pytest.raises(ValueError, match="scale"):
        unpg_cross_entropy(cm, t(SN), y, scale=0.0)


# --------------------------------------------------------------------------- negatives
def test_batch_negatives() -> None:
    x, y = t(X), torch.tensor(Y8)
    sn = batch_negative_similarities(x, y)
    assert sn.numel() == 21
    assert box_whisker_filter(sn, 1.5).numel() == 21 and box_whisker_filter(sn, 0.0).numel() == 11
    xn = torch.nn.functional.normalize(x, dim=1)
    naive = [float(xn[a] @ xn[b]) for a in range(8) for b in range(a + 1, 8) if Y8[a] != Y8[b]]
    assert sn.tolist() == pytest.approx(naive, abs=1e-12)
    assert batch_negative_similarities(x, torch.zeros(8, dtype=torch.long)).numel() == 0
    cross = batch_negative_similarities(x[:3], y[:3], x[3:], y[3:])
    assert cross.numel() == sum(Y8[a] != Y8[b] for a in range(3) for b in range(3, 8))
    with pytest.raises(ValueError, match="ref_labels"):
        batch_negative_similarities(x[:3], y[:3], x[3:])


# --------------------------------------------------------------------------- PML losses
@pytest.mark.parametrize(
    ("cls", "margin", "s", "plain", "unpg"),
    [
        (UNPGArcFaceLoss, ARC, 64.0, 35.5865663, 57.9405976),
        (UNPGCosFaceLoss, 0.35, 64.0, 30.0474722, 52.9036807),
        (UNPGArcFaceLoss, ARC, 8.0, 4.6064305, 8.09585631),
        (UNPGCosFaceLoss, 0.35, 8.0, 3.95090623, 7.45389289),
    ],
)
def test_end_to_end_golden(cls: type, margin: float, s: float, plain: float, unpg: float) -> None:
    x, y = t(X), torch.tensor(Y8)
    assert with_w(cls(3, 4, margin=margin, scale=s))(x, y).item() == pytest.approx(unpg, abs=1e-6)
    pml_cls = ArcFaceLoss if cls is UNPGArcFaceLoss else CosFaceLoss
    assert with_w(pml_cls(3, 4, margin=margin, scale=s))(x, y).item() == pytest.approx(plain, abs=1e-6)
    for extra in ({}, {"plain_arcface": True}) if cls is UNPGArcFaceLoss else ({},):
        one = torch.zeros(8, dtype=torch.long)  # one label: no negative pair -> the plain margin softmax
        ours = with_w(cls(3, 4, margin=margin, scale=s, **extra))(x, one)
        assert ours.item() == pytest.approx(with_w(pml_cls(3, 4, margin=margin, scale=s))(x, one).item(), rel=1e-12)


def test_end_to_end_gradient_and_filter() -> None:
    x = t(X).requires_grad_(True)
    loss = with_w(UNPGArcFaceLoss(3, 4, scale=8.0))(x, torch.tensor(Y8))
    (g,) = torch.autograd.grad(loss, x)
    assert g[0].tolist() == pytest.approx([-0.14585, -0.0489584, 0.356149, 0.022573], abs=1e-5)
    # k = 0 keeps 11 of the 21 negatives: between plain ArcFace and k = 1.5
    y = torch.tensor(Y8)
    k0 = with_w(UNPGArcFaceLoss(3, 4, scale=8.0, wisk=0.0))
    k0(x, y)
    assert k0.kept_negatives == 11 if k0.collect_stats else True
    assert 4.6064305 < k0(x, y).item() < 8.09585631


def test_plain_arcface_differs_only_beyond_pi_minus_m() -> None:
    pml, plain = UNPGArcFaceLoss(2, 2), UNPGArcFaceLoss(2, 2, plain_arcface=True)
    cos = torch.tensor([0.9, 0.0, -0.95, -0.99], dtype=F64)  # the last two: theta > pi - 0.5
    a, b = pml.modify_cosine_of_target_classes(cos), plain.modify_cosine_of_target_classes(cos)
    assert torch.allclose(a[:2], b[:2]) and not torch.allclose(a[2:], b[2:])
    assert b[2:].tolist() == pytest.approx(torch.cos(torch.acos(cos[2:]) + 0.5).tolist())


def test_pml_module_errors() -> None:
    loss = UNPGArcFaceLoss(3, 4)
    with pytest.raises(ValueError, match="labels"):
        loss(t(X), torch.tensor([0, 1, 2, 0, 1, 2, 0, 3]))
    with pytest.raises(ValueError, match="wisk"):
        UNPGCosFaceLoss(3, 4, wisk=-0.5)
    with pytest.raises(ValueError, match="ref_labels"):
        loss(t(X), torch.tensor(Y8), ref_emb=t(X))


def seeded(cls: type, **kwargs: object) -> torch.nn.Module:
    """The loss with the same class weights on every call (the suite compares separately built losses)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return cls(4, 16, scale=16.0, **kwargs)


CHECKS = [
    (f"{cls.__name__}-{name}", check)
    for cls in (UNPGArcFaceLoss, UNPGCosFaceLoss)
    for name, check in metric_loss_checks(partial(seeded, cls))
]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_metric_loss_suite(name: str, check: Callable[[], None]) -> None:
    check()


@pytest.mark.parametrize("wisk", [0.0, 1.5, math.inf])
def test_fused_path_matches_the_composed_functions(wisk: float) -> None:
    """The module's fused B x B path equals unpg_cross_entropy on the filtered batch negatives."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(24, 6, generator=g, dtype=F64).requires_grad_(True)
    y = torch.randint(0, 5, (24,), generator=g)
    loss = UNPGCosFaceLoss(5, 6, scale=16.0, wisk=wisk).double()
    ours = loss(x, y)
    (g1,) = torch.autograd.grad(ours, x)
    xn = torch.nn.functional.normalize(x, dim=1)
    cm = xn @ torch.nn.functional.normalize(loss.W.detach(), dim=0)
    cm = cm - 0.35 * torch.nn.functional.one_hot(y, 5).to(F64)
    ref = unpg_cross_entropy(cm, box_whisker_filter(batch_negative_similarities(x, y), wisk), y, 16.0)
    (g2,) = torch.autograd.grad(ref, x)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(g1, g2, atol=1e-12)


# --------------------------------------------------------------------------- fast paths vs the old formula
def _old_formula(loss: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The module's loss composed as before the fused rows / vector paths: PML's target mask and
    ``cosine + mask * diff``, the filtered negatives via ``torch.kthvalue``, ``unpg_cross_entropy``."""
    mask = loss.get_target_mask(x, y)
    cosine = loss.get_cosine(x)
    target = cosine[mask == 1]
    margin_logits = cosine + mask * (loss.modify_cosine_of_target_classes(target) - target).unsqueeze(1)
    neg = box_whisker_filter(batch_negative_similarities(x, y), loss.wisk)
    return unpg_cross_entropy(margin_logits, neg, y, loss.scale)


@pytest.mark.parametrize("vector", [True, False])
@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [(UNPGArcFaceLoss, {}), (UNPGArcFaceLoss, {"plain_arcface": True}), (UNPGCosFaceLoss, {"wisk": 0.5})],
)
def test_fast_paths_match_the_old_formula(
    cls: type, kwargs: dict, vector: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float64, B = 400 (80k negatives: the sampled quartile selection runs): value and gradients in
    the embeddings and the class weights equal the composed formula, on both B x B paths."""
    import paperzoo.losses.unpg as unpg

    monkeypatch.setattr(unpg, "_VECTOR_ON_CPU", vector)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(400, 8, generator=g, dtype=F64)
    y = torch.randint(0, 30, (400,), generator=g)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        loss = cls(30, 8, scale=16.0, **kwargs).double()
    xa = x.clone().requires_grad_(True)
    ours = loss(xa, y)
    gx1, gw1 = torch.autograd.grad(ours, (xa, loss.W))
    xb = x.clone().requires_grad_(True)
    ref = _old_formula(loss, xb, y)
    gx2, gw2 = torch.autograd.grad(ref, (xb, loss.W))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    torch.testing.assert_close(gx1, gx2, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(gw1, gw2, rtol=1e-10, atol=1e-13)


def test_partition_quartiles_are_exact() -> None:
    """The sampled selection returns sorted[M // 4] and sorted[3 M // 4] for any order of the values,
    including ties and orders where the strided sample misleads (then it falls back)."""
    import numpy as np

    from paperzoo.losses.unpg import _partition_quartiles

    rng = np.random.default_rng(0)
    m = 200_003
    cases = [
        rng.standard_normal(m).astype(np.float32),
        np.sort(rng.standard_normal(m)),
        rng.integers(0, 7, m).astype(np.float64),  # heavy ties
        rng.standard_normal(17),
    ]
    fooled = rng.standard_normal(m)
    fooled[:: m // 8192] = 5.0  # the strided sample sees only one value
    cases.append(fooled)
    for v in cases:
        s = np.sort(v)
        q1, q3 = _partition_quartiles(v.copy())
        assert (q1, q3) == (s[len(v) // 4], s[(3 * len(v)) // 4])
