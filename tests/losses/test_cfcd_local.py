"""Tests of CFCD's fine-stage attentive local triplet loss (paper 29): the golden tuple (from the official
``SuperfeatureTripletLoss`` with single-GPU stubs), a naive per-pair reference, the paper's invariants,
float64 gradcheck and input errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses.cfcd_local import (
    AttentiveLocalTripletLoss,
    attentive_local_triplet_loss,
    maps_to_tuples,
    match_local_descriptors,
)

F64 = torch.float64
Q = [
    [-0.21774879, 0.14667713, -2.22363656],
    [-0.4724361, -1.34643569, -0.28416926],
    [0.16794475, 0.75805733, 1.07843524],
    [0.3436338, 1.00379372, -0.22139637],
    [-0.58400988, -1.22498537, -0.26971874],
    [0.20366863, 0.02875287, 0.2424371],
]
P = [
    [0.04224019, 0.25860174, 1.41038596],
    [-0.44951635, 0.44099414, -1.79679211],
    [-0.47772511, -1.49617846, -0.00228722],
    [0.52746746, 0.39607496, 0.60723397],
    [-0.56537437, -0.98386832, 0.00481271],
    [0.11702001, 1.02374554, -0.22289444],
]
N1 = [
    [-1.50142258, -0.73443075, -0.49112874],
    [0.46660531, -0.0427571, -1.40015875],
    [0.17976726, 0.47174583, -0.92295316],
    [0.36189525, 0.69928381, -0.9703418],
    [-2.33249251, 0.49102793, 1.16761742],
    [1.13735112, 1.05937541, 0.67213485],
]
N2 = [
    [-1.24617425, -1.68053663, -1.21045249],
    [0.11587606, -0.22161343, -2.40963968],
    [-1.65066276, 1.19683359, 0.24274225],
    [0.93592097, -1.31154995, 1.15508158],
    [-1.1553696, 0.29939079, 0.22761367],
    [1.16790454, 1.80218119, 2.22822039],
]
ATT = [0.73675768, 0.65293745, 0.28512206, 0.22737768, 0.20744415, 0.45221953]


def golden() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([Q, P, N1, N2], dtype=F64), torch.tensor(ATT, dtype=F64)


def naive(local: torch.Tensor, att: torch.Tensor, margin: float = 0.1, ratio: float = 0.9) -> torch.Tensor:
    """The official per-tuple formula written with Python loops over tuples, positions and negatives."""
    total = local.new_zeros(())
    for u in range(local.shape[0]):
        x = F.normalize(local[u], dim=-1)
        q, p, negs = x[0], x[1], x[2:]
        n = q.shape[0]
        top = set(torch.argsort(att[u], descending=True)[: n // 2].tolist())
        dist = torch.cdist(q.detach(), p.detach())
        for j in range(n):
            col = dist[:, j]
            i = int(col.argmin())
            if int(dist[i].argmin()) != j or j not in top:
                continue
            second = sorted(col.tolist())[1]
            if col[i] / second > ratio:
                continue
            for neg in negs:
                k = int(torch.cdist(q[i : i + 1].detach(), neg.detach()).argmin())
                total = total + torch.relu((q[i] - p[j]).pow(2).sum() - (q[i] - neg[k]).pow(2).sum() + margin)
    return total


def random_tuples(u: int = 5, t: int = 5, n: int = 9, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    local = torch.randn(u, t, n, d, generator=g, dtype=F64)
    local[:, 1] = local[:, 0] + 0.3 * torch.randn(u, n, d, generator=g, dtype=F64)  # positives resemble anchors
    return local, torch.rand(u, n, generator=g, dtype=F64)


def test_golden_matches_loss_and_gradient() -> None:
    local, att = golden()
    x = F.normalize(local, dim=-1)
    qidx, valid = match_local_descriptors(x[None, 0], x[None, 1], att[None])
    assert [(int(qidx[0, j]), j) for j in range(6) if valid[0, j]] == [(2, 0), (0, 1), (3, 5)]
    local.requires_grad_(True)
    loss = attentive_local_triplet_loss(local, att)  # a single tuple (T, N, D)
    assert float(loss.detach()) == pytest.approx(0.323187571, abs=1e-8)
    loss.backward()
    torch.testing.assert_close(
        local.grad[0, 2], torch.tensor([0.512308, 0.553825, -0.469078], dtype=F64), atol=1e-6, rtol=0
    )
    assert float(AttentiveLocalTripletLoss(weight=0.05)(local.detach(), att)) == pytest.approx(0.05 * 0.323187571)


def test_agrees_with_naive_reference_and_gradcheck() -> None:
    local, att = random_tuples()
    ours = attentive_local_triplet_loss(local, att)
    assert float(ours) > 0
    torch.testing.assert_close(ours, naive(local, att))
    per = attentive_local_triplet_loss(local, att, reduction="none")
    assert per.shape == (5,)
    torch.testing.assert_close(per.mean(), attentive_local_triplet_loss(local, att, reduction="mean"))
    x = local[:2].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: attentive_local_triplet_loss(v, att[:2]), (x,), eps=1e-6, atol=1e-5)


def test_invariants() -> None:
    local, att = random_tuples(seed=1)
    base = attentive_local_triplet_loss(local, att)
    # order of the negative images does not matter
    perm = torch.tensor([0, 1, 4, 2, 3])
    torch.testing.assert_close(attentive_local_triplet_loss(local[:, perm], att), base)
    # the scale of each descriptor does not matter (normalised inside)
    torch.testing.assert_close(attentive_local_triplet_loss(local * 3.0, att), base)
    # the attention of the anchor/negatives does not matter, only the positive's; default attention = L1 norm
    full = torch.rand(5, 5, 9, dtype=F64)
    full[:, 1] = att
    torch.testing.assert_close(attentive_local_triplet_loss(local, full), base)
    l1 = local[:, 1].abs().sum(-1)
    torch.testing.assert_close(attentive_local_triplet_loss(local), attentive_local_triplet_loss(local, l1))


def test_zero_when_negatives_far_and_only_top_attention_matches() -> None:
    # anchor == positive (every position matches itself, d_pos = 0); anchor descriptors around +z, every negative
    # descriptor at -z: d_neg > 2 >> margin, so the loss is zero
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(1, 8, 3, generator=g, dtype=F64) + torch.tensor([0.0, 0.0, 4.0], dtype=F64), dim=-1)
    far = torch.tensor([0.0, 0.0, -1.0], dtype=F64).expand(8, 3)
    local = torch.stack([a[0], a[0], far, far])[None]
    loss = attentive_local_triplet_loss(local, margin=0.1)
    assert float(loss) == 0.0
    # only positive positions in the top half of attention are matched
    att = torch.arange(8, dtype=F64)[None]
    _, valid = match_local_descriptors(F.normalize(a, dim=-1), F.normalize(a, dim=-1), att)
    assert valid[0].tolist() == [False] * 4 + [True] * 4
    # no matches at all -> exactly zero, still in the graph
    x = local.clone().requires_grad_(True)
    out = attentive_local_triplet_loss(x, attention_top_frac=0.1)  # floor(8 * 0.1) = 0 positions kept
    out.backward()
    assert float(out.detach()) == 0.0 and x.grad is not None and float(x.grad.abs().sum()) == 0.0


def test_module_on_feature_maps_and_num_matches() -> None:
    g = torch.Generator().manual_seed(2)
    maps = torch.randn(16, 6, 3, 3, generator=g)  # 2 tuples of 8 images, 9 positions, 6 channels
    maps[1::8] = maps[0::8] + 0.1 * torch.randn(2, 6, 3, 3, generator=g)
    loss_fn = AttentiveLocalTripletLoss(weight=1.0, tuple_size=8)
    out = loss_fn(maps)
    local = maps_to_tuples(maps, 8)
    assert local.shape == (2, 8, 9, 6)
    torch.testing.assert_close(local[1, 3, 4], maps[11, :, 1, 1])
    torch.testing.assert_close(out, attentive_local_triplet_loss(local))
    assert loss_fn.num_matches > 0
    assert "margin=0.1" in repr(loss_fn)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"margin": -0.1}, "margin"),
        ({"lowe_ratio": 0.0}, "lowe_ratio"),
        ({"attention_top_frac": 1.5}, "attention_top_frac"),
        ({"weight": -1.0}, "weight"),
        ({"reduction": "max"}, "reduction"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    local, att = random_tuples(u=1)
    with pytest.raises(ValueError, match=match):
        attentive_local_triplet_loss(local, att, **kwargs)
    with pytest.raises(ValueError, match=match):
        AttentiveLocalTripletLoss(**kwargs)


def test_bad_inputs() -> None:
    local, att = random_tuples(u=2)
    with pytest.raises(ValueError, match="tuple_size >= 3"):
        attentive_local_triplet_loss(local[:, :2], att)
    with pytest.raises(ValueError, match="local must have shape"):
        attentive_local_triplet_loss(local[0, 0, 0], None)
    with pytest.raises(ValueError, match="non-empty"):
        attentive_local_triplet_loss(local[:0], att[:0])
    bad = local.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="local contains NaN"):
        attentive_local_triplet_loss(bad, att)
    with pytest.raises(ValueError, match="attention"):
        attentive_local_triplet_loss(local, att[:, :3])
    with pytest.raises(ValueError, match="attention contains NaN"):
        attentive_local_triplet_loss(local, att * float("nan"))
    with pytest.raises(TypeError, match="floating"):
        attentive_local_triplet_loss(local.long(), att)
    with pytest.raises(ValueError, match="tuple_size"):
        maps_to_tuples(torch.randn(10, 4, 2, 2), 8)
    with pytest.raises(ValueError, match="tuple_size"):
        AttentiveLocalTripletLoss(tuple_size=2)
