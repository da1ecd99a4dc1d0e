"""Tests of Metrix (paper 32): golden values from the official recipe (embedding positive-negative mixing
+ the mixed contrastive loss with PML reducers, lam = 0.7), the paper's limiting cases (lam = 1 / 0,
w = 0), index generation, agreement of the Gram-matrix forward with a naive triple-by-triple reference,
the weighted multi-similarity form, utilisation and input errors. The generic metric-loss behaviour
(input errors, gradcheck, permutation, dtypes, round trips, miners, reducers, ``DistributedLossWrapper``)
is covered by :func:`paperzoo.testing.metric_loss_checks` with a fixed ``lam``."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity, SNRDistance
from pytorch_metric_learning.losses import ContrastiveLoss, TripletMarginLoss

from paperzoo.losses import MetrixContrastiveLoss, MetrixLoss, MetrixMultiSimilarityLoss, MultiSimilarityLoss
from paperzoo.losses.metrix import _reference_metrix_contrastive, metrix_mixed_loss, mix_pairs, utilization
from paperzoo.testing import metric_loss_checks

F64 = torch.float64

# Golden case: rows L2-normalised, labels [0, 0, 1, 1, 2, 2]
E = torch.tensor(
    [
        [0.98058068, 0.19611614, 0.0],
        [0.90913729, 0.40406102, 0.10101525],
        [0.09759001, 0.97590007, 0.19518001],
        [0.0, 0.8479983, 0.52999894],
        [0.28603878, 0.09534626, 0.95346259],
        [0.20628425, 0.30942637, 0.92827912],
    ],
    dtype=F64,
)
Y = torch.tensor([0, 0, 1, 1, 2, 2])


def pk_batch(classes: int = 4, per_class: int = 3, dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)[torch.randperm(classes * per_class, generator=g)]
    return torch.randn(classes * per_class, dim, generator=g, dtype=F64), labels


def naive_triples(labels: torch.Tensor) -> list[tuple[int, int, int]]:
    y = labels.tolist()
    return [
        (a, p, n)
        for a in range(len(y))
        for p in range(len(y))
        if p != a and y[p] == y[a]
        for n in range(len(y))
        if y[n] != y[a]
    ]


def naive_ms_mixed(emb: torch.Tensor, labels: torch.Tensor, lam: float, alpha=2.0, beta=50.0, base=0.5) -> torch.Tensor:
    """The paper's weighted multi-similarity mixed loss, one anchor at a time (oracle)."""
    e = F.normalize(emb, dim=1)
    total = emb.new_zeros(())
    for a in range(len(labels)):
        trip = [(p, n) for (aa, p, n) in naive_triples(labels) if aa == a]
        if not trip:
            continue
        s = torch.stack([e[a] @ F.normalize(lam * emb[p] + (1 - lam) * emb[n], dim=0) for p, n in trip])
        total = total + torch.log(1 + lam * torch.exp(-alpha * (s - base)).sum()) / alpha
        total = total + torch.log(1 + (1 - lam) * torch.exp(beta * (s - base)).sum()) / beta
    return total / len(labels)


# --------------------------------------------------------------------------- conformance
CHECKS = [
    (f"{cls.__name__}-{name}", check)
    for cls in (MetrixContrastiveLoss, MetrixMultiSimilarityLoss)
    for name, check in metric_loss_checks(partial(cls, lam=0.7), dim=6, classes=3, per_class=3)
]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[n for n, _ in CHECKS])
def test_conformance(name, check):
    check()


# --------------------------------------------------------------------------- golden values
def test_golden_clean_and_total():
    assert ContrastiveLoss(neg_margin=0.5)(E, Y).item() == pytest.approx(0.281090788, abs=1e-8)
    x = E.clone().requires_grad_(True)
    total = MetrixContrastiveLoss(lam=0.7)(x, Y)
    assert total.item() == pytest.approx(0.40965577, abs=1e-8)
    total.backward()
    torch.testing.assert_close(x.grad[0], torch.tensor([0.0647454, -0.319384, -0.151769], dtype=F64), atol=1e-6, rtol=0)


def test_golden_triples_order():
    a, p, n = mix_pairs(Y)
    assert len(a) == 24
    got = list(zip(a.tolist(), p.tolist(), n.tolist()))
    assert got[:6] == [(0, 1, 2), (0, 1, 3), (0, 1, 4), (0, 1, 5), (1, 0, 2), (1, 0, 3)]
    assert got == naive_triples(Y)
    # one positive per anchor: legacy and intended modes coincide
    assert got == list(zip(*(t.tolist() for t in mix_pairs(Y, legacy_first_positive=True))))


@pytest.mark.parametrize(
    ("normalize", "pos", "neg", "nonzero"),
    [(True, 0.262554516, 0.0588579386, 17), (False, 0.269259760, 0.049690156, 18)],
)
def test_golden_mixed_parts(normalize, pos, neg, nonzero):
    a, p, n = mix_pairs(Y)
    lam = 0.7
    loss = MetrixContrastiveLoss(lam=lam, normalize_mixed=normalize)
    mixed = lam * E[p] + (1 - lam) * E[n]
    v = F.normalize(mixed, dim=1) if normalize else mixed
    d = (E[a] - v).norm(dim=1)
    assert int(((0.5 - d) > 0).sum()) == nonzero
    assert loss.mixed_loss(E[a], mixed, lam, anchor_idx=a).item() == pytest.approx(pos + neg, abs=1e-8)
    total = loss(E, Y).item()
    assert total == pytest.approx(0.281090788 + 0.4 * (pos + neg), abs=1e-8)


# --------------------------------------------------------------------------- limiting cases
def test_w_zero_is_the_clean_loss():
    emb, labels = pk_batch()
    assert torch.equal(MetrixContrastiveLoss(w=0.0)(emb, labels), ContrastiveLoss(neg_margin=0.5)(emb, labels))
    assert torch.equal(MetrixMultiSimilarityLoss(w=0.0)(emb, labels), MultiSimilarityLoss()(emb, labels))


def test_lam_one_keeps_the_positive_term_only():
    emb, labels = pk_batch()  # balanced: every anchor has the same |N(a)|, so repetition does not reweight
    mixed = MetrixContrastiveLoss(lam=1.0, w=1.0)(emb, labels) - ContrastiveLoss(neg_margin=0.5)(emb, labels)
    pos_only = ContrastiveLoss(pos_margin=0.0, neg_margin=-10.0)(emb, labels)  # negative part switched off
    torch.testing.assert_close(mixed, pos_only)


def test_lam_zero_keeps_the_negative_term_only():
    emb, labels = pk_batch(dim=3)
    e = F.normalize(emb, dim=1)
    emb = e  # unit inputs so some negatives fall inside the 0.5 margin
    mixed = MetrixContrastiveLoss(lam=0.0, w=1.0)(emb, labels) - ContrastiveLoss(neg_margin=0.5)(emb, labels)
    neg_only = ContrastiveLoss(pos_margin=10.0, neg_margin=0.5)(emb, labels)  # positive part switched off
    torch.testing.assert_close(mixed, neg_only)


def test_ms_lam_one_and_zero_limits():
    emb, labels = pk_batch()
    e = F.normalize(emb, dim=1)
    s = e @ e.T
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    n_neg = (~same).sum(1, keepdim=True).to(F64)
    loss = MetrixMultiSimilarityLoss(w=1.0, lam=1.0)
    mixed = loss(emb, labels) - MultiSimilarityLoss()(emb, labels)
    # lam = 1: mixed = positive; each positive repeated |N(a)| times in the positive log-sum-exp
    expect = (torch.log1p((n_neg * torch.exp(-2.0 * (s - 0.5))).masked_fill(~pos, 0).sum(1)) / 2.0).mean()
    torch.testing.assert_close(mixed, expect)
    loss0 = MetrixMultiSimilarityLoss(w=1.0, lam=0.0)
    mixed0 = loss0(emb, labels) - MultiSimilarityLoss()(emb, labels)
    n_pos = pos.sum(1, keepdim=True).to(F64)
    expect0 = (torch.log1p((n_pos * torch.exp(50.0 * (s - 0.5))).masked_fill(same, 0).sum(1)) / 50.0).mean()
    torch.testing.assert_close(mixed0, expect0)


# --------------------------------------------------------------------------- agreement with naive references
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("normalize", [True, False])
def test_contrastive_matches_naive_reference(seed, normalize):
    emb, labels = pk_batch(classes=3, per_class=4, dim=3, seed=seed)
    emb = emb * 0.4  # raw (unnormalised) embeddings: mixing happens before the distance normalises
    x1, x2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    ours = MetrixContrastiveLoss(lam=0.35, normalize_mixed=normalize)(x1, labels)
    ref = _reference_metrix_contrastive(x2, labels, 0.35, normalize_mixed=normalize)
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("seed", [0, 1])
def test_ms_matches_naive_weighted_formula(seed):
    emb, labels = pk_batch(classes=3, per_class=3, dim=4, seed=seed)
    lam = 0.6
    got = MetrixMultiSimilarityLoss(w=1.0, lam=lam)(emb, labels) - MultiSimilarityLoss()(emb, labels)
    torch.testing.assert_close(got, naive_ms_mixed(emb, labels, lam))


def test_mixed_loss_of_explicit_triples_equals_embed_variant():
    emb, labels = pk_batch(classes=4, per_class=3, dim=6)
    for cls in (MetrixContrastiveLoss, MetrixMultiSimilarityLoss):
        loss = cls(lam=0.3, w=1.0)
        a, p, n = mix_pairs(labels)
        explicit = loss.mixed_loss(emb[a], 0.3 * emb[p] + 0.7 * emb[n], 0.3, anchor_idx=a, num_anchors=len(labels))
        torch.testing.assert_close(loss(emb, labels) - loss.loss(emb, labels), explicit)


def test_legacy_first_positive():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    a, p, n = mix_pairs(labels, legacy_first_positive=True)
    same = labels[:, None] == labels[None, :]
    expected_count = sum(int(((same[i]).sum() - 1) * (~same[i]).sum()) for i in range(len(labels)))
    assert len(a) == expected_count == len(mix_pairs(labels)[0]) == 26
    first = {0: 1, 1: 0, 2: 0, 3: 4, 4: 3}
    assert all(first[int(ai)] == int(pi) for ai, pi in zip(a, p))
    # the loss of the legacy mode equals the mixed loss of its explicit (repeated) triples
    emb = pk_batch(classes=3, per_class=2, dim=4)[0]
    loss = MetrixContrastiveLoss(lam=0.4, w=1.0, legacy_first_positive=True, anchor_negative=False)
    explicit = loss.mixed_loss(emb[a], 0.4 * emb[p] + 0.6 * emb[n], 0.4, anchor_idx=a)
    torch.testing.assert_close(loss(emb, labels) - loss.loss(emb, labels), explicit)


def test_mix_pairs_properties_and_top_k():
    emb, labels = pk_batch(classes=5, per_class=4, dim=3, seed=3)
    a, p, n = mix_pairs(labels)
    assert bool((labels[a] == labels[p]).all() and (labels[a] != labels[n]).all() and (a != p).all())
    same = labels[:, None] == labels[None, :]
    assert len(a) == int(((same.sum(1) - 1) * (~same).sum(1)).sum())
    dist = torch.cdist(emb, emb)
    a1, p1, n1 = mix_pairs(labels, top_k=1, clean_dist=dist)
    hardest = dist.masked_fill(same, math.inf).argmin(1)
    assert bool((n1 == hardest[a1]).all()) and len(a1) == int((same.sum(1) - 1).sum())


def test_anchor_negative_mixing():
    labels = torch.tensor([0, 0, 1, 2])  # anchors 2 and 3 have no positive
    a, p, n = mix_pairs(labels, mode="anc_neg")
    assert a.tolist() == p.tolist() == [2, 2, 2, 3, 3, 3] and n.tolist() == [0, 1, 3, 0, 1, 2]
    emb = pk_batch(classes=2, per_class=2, dim=3)[0]
    on = MetrixContrastiveLoss(lam=0.5, w=1.0)(emb, labels)
    off = MetrixContrastiveLoss(lam=0.5, w=1.0, anchor_negative=False)(emb, labels)
    assert not torch.equal(on, off)
    # off: only the positive-negative triples of anchors 0 and 1
    a2, p2, n2 = mix_pairs(labels)
    loss = MetrixContrastiveLoss(lam=0.5, w=1.0)
    torch.testing.assert_close(
        off - loss.loss(emb, labels), loss.mixed_loss(emb[a2], 0.5 * emb[p2] + 0.5 * emb[n2], 0.5)
    )


def test_cosine_distance_and_pml_ms():
    from pytorch_metric_learning.losses import MultiSimilarityLoss as PMLMS

    emb, labels = pk_batch()
    for clean in (ContrastiveLoss(pos_margin=1.0, neg_margin=0.5, distance=CosineSimilarity()), PMLMS()):
        loss = MetrixLoss(clean, lam=0.5, w=1.0)
        a, p, n = mix_pairs(labels)
        explicit = loss.mixed_loss(emb[a], 0.5 * emb[p] + 0.5 * emb[n], 0.5, anchor_idx=a, num_anchors=len(labels))
        torch.testing.assert_close(loss(emb, labels) - clean(emb, labels), explicit)


def test_lam_is_drawn_from_beta_per_call():
    loss = MetrixContrastiveLoss()
    torch.manual_seed(0)
    lams = [loss.sample_lam() for _ in range(2000)]
    assert all(0.0 < v < 1.0 for v in lams)
    mean = sum(lams) / len(lams)
    var = sum((v - mean) ** 2 for v in lams) / len(lams)
    assert mean == pytest.approx(0.5, abs=0.02) and var == pytest.approx(0.05, abs=0.006)  # Beta(2, 2)
    emb, labels = pk_batch()
    torch.manual_seed(1)
    v1 = loss(emb, labels)
    torch.manual_seed(1)
    assert torch.equal(v1, loss(emb, labels))


# --------------------------------------------------------------------------- utilisation
def test_utilization():
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(0))
    assert utilization(x[:5], x) == pytest.approx(0.0, abs=1e-6)
    q = torch.randn(7, 8)
    assert utilization(q, x) >= 0.0
    qn, xn = F.normalize(q, dim=1), F.normalize(x, dim=1)
    assert utilization(q, x) == pytest.approx(float(torch.cdist(qn, xn).pow(2).amin(1).mean()), abs=1e-5)
    with pytest.raises(ValueError, match="dimension"):
        utilization(q[:, :4], x)


# --------------------------------------------------------------------------- errors
def test_bad_parameters():
    with pytest.raises(ValueError, match="w must be"):
        MetrixContrastiveLoss(w=-0.1)
    with pytest.raises(ValueError, match="lam must be"):
        MetrixContrastiveLoss(lam=1.5)
    with pytest.raises(ValueError, match="mix_alpha must be"):
        MetrixMultiSimilarityLoss(mix_alpha=0.0)
    with pytest.raises(TypeError, match="loss must be"):
        MetrixLoss(TripletMarginLoss())
    with pytest.raises(ValueError, match="loss.distance"):
        MetrixLoss(ContrastiveLoss(distance=SNRDistance()))


def test_bad_inputs():
    emb, labels = pk_batch()
    with pytest.raises(ValueError, match="mode"):
        mix_pairs(labels, mode="both")
    with pytest.raises(ValueError, match="clean_dist"):
        mix_pairs(labels, top_k=1)
    with pytest.raises(ValueError, match="top_k must be"):
        mix_pairs(labels, top_k=0)
    with pytest.raises(ValueError, match="labels"):
        mix_pairs(labels.float())
    loss = MetrixContrastiveLoss(lam=0.5)
    with pytest.raises(ValueError, match="mixed_emb"):
        loss.mixed_loss(emb[:3], emb[:2], 0.5)
    with pytest.raises(ValueError, match="positivity"):
        metrix_mixed_loss(torch.rand(2, 3), 1.5, loss.loss)
    with pytest.raises(ValueError, match="multiplicity"):
        metrix_mixed_loss(torch.rand(2, 3), 0.5, loss.loss, multiplicity=-torch.ones(2, 3))
    with pytest.raises(TypeError, match="mixed form"):
        metrix_mixed_loss(torch.rand(2, 3), 0.5, TripletMarginLoss())
    with pytest.raises(ValueError, match="anchor_idx"):
        loss.mixed_loss(emb[:3], emb[:3], 0.5, anchor_idx=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="ref_emb"):
        loss(emb, labels, ref_emb=emb[:, :2], ref_labels=labels)
