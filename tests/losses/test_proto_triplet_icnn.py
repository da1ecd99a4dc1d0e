"""Tests of the Proto-Triplet and ICNN few-shot losses (paper 37)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
from pytorch_metric_learning import distances, miners, reducers

from paperzoo.losses import (
    FewShotLossCombo,
    ICNNLoss,
    ProtoTripletLoss,
    SusanaDistance,
    episode_prototypes,
    icnn_loss,
    icnn_score,
    proto_triplet_loss,
    protonet_logits,
    susana_distance,
)
from paperzoo.losses.proto_triplet_icnn import (
    _icnn_terms,
    _reference_icnn_score,
    _reference_proto_triplet,
    _resolve_k,
)
from paperzoo.testing import metric_loss_checks

F64 = torch.float64
GOLD = 1e-8  # the golden values are given to 9 significant digits

# the golden episode: 3-way 2-shot, 2 queries per class
SUPPORT = torch.tensor([[0.0, 0.0], [0.2, 0.1], [2.0, 0.0], [2.1, 0.3], [0.0, 2.0], [0.3, 1.8]], dtype=F64)
QUERY = torch.tensor([[0.1, 0.3], [1.2, 0.2], [1.9, 0.1], [0.9, 0.9], [0.2, 2.2], [1.0, 1.5]], dtype=F64)
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])
PROTOS = torch.tensor([[0.1, 0.05], [2.05, 0.15], [0.15, 1.9]], dtype=F64)


def _episode(seed: int, way: int = 5, shot: int = 3, query: int = 4, dim: int = 8, spread: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(way, dim, generator=g, dtype=F64)
    s = centres.repeat_interleave(shot, 0) + spread * torch.randn(way * shot, dim, generator=g, dtype=F64)
    q = centres.repeat_interleave(query, 0) + spread * torch.randn(way * query, dim, generator=g, dtype=F64)
    return s, torch.arange(way).repeat_interleave(shot), q, torch.arange(way).repeat_interleave(query)


# --------------------------------------------------------------------------- golden values
def test_golden_prototypes_and_protonet_ce() -> None:
    protos, classes = episode_prototypes(SUPPORT, LABELS)
    torch.testing.assert_close(protos, PROTOS, atol=1e-15, rtol=0)
    assert classes.tolist() == [0, 1, 2]
    ce = torch.nn.functional.cross_entropy(protonet_logits(QUERY, protos), LABELS)
    assert ce.item() == pytest.approx(0.464900675, abs=GOLD)


def test_golden_icnn_scores() -> None:
    assert icnn_score(SUPPORT, LABELS).item() == pytest.approx(0.904547643, abs=GOLD)
    assert icnn_loss(SUPPORT, LABELS).item() == pytest.approx(0.100320302, abs=GOLD)
    assert icnn_score(QUERY, LABELS, SUPPORT, LABELS).item() == pytest.approx(0.801579472, abs=GOLD)
    assert icnn_score(QUERY, LABELS, PROTOS, torch.arange(3)).item() == pytest.approx(0.808799825, abs=GOLD)


def test_golden_fullicnn_value_and_gradient() -> None:
    x = torch.cat([SUPPORT, QUERY]).requires_grad_(True)
    y = torch.cat([LABELS, LABELS])
    assert icnn_score(x.detach(), y, ipc=4).item() == pytest.approx(0.608624074, abs=GOLD)
    loss = icnn_loss(x, y, k=4, ipc=4)
    assert loss.item() == pytest.approx(0.496554486, abs=GOLD)
    loss.backward()
    assert x.grad[0].tolist() == pytest.approx([-0.012185, -0.00741491], abs=2e-6)
    assert x.grad[7].tolist() == pytest.approx([0.0984324, 0.00632661], abs=2e-6)


def test_golden_proto_triplet_value_and_gradient() -> None:
    q = QUERY.clone().requires_grad_(True)
    loss = proto_triplet_loss(q, LABELS, PROTOS)
    assert loss.item() == pytest.approx(0.244066986, abs=GOLD)
    loss.backward()
    assert q.grad[1].tolist() == pytest.approx([0.331517, 0.0127319], abs=2e-6)


def test_golden_combo_and_module_forms() -> None:
    combo = FewShotLossCombo(("cross", "prototriplet", "fullicnn"))
    assert combo(SUPPORT, LABELS, QUERY, LABELS).item() == pytest.approx(0.401840716, abs=GOLD)
    assert FewShotLossCombo("cross,prototriplet,fullicnn").terms == combo.terms
    values = FewShotLossCombo(("suppicnn", "queryicnn")).term_values(SUPPORT, LABELS, QUERY, LABELS)
    assert values["suppicnn"].item() == pytest.approx(0.100320302, abs=GOLD)
    assert values["queryicnn"].item() == pytest.approx(-math.log(0.801579472), abs=GOLD)
    qp = FewShotLossCombo(("queryicnn",), query_protos=True)(SUPPORT, LABELS, QUERY, LABELS)
    assert qp.item() == pytest.approx(-math.log(0.808799825), abs=GOLD)
    pt = ProtoTripletLoss()(QUERY, LABELS, ref_emb=SUPPORT, ref_labels=LABELS)
    assert pt.item() == pytest.approx(0.244066986, abs=GOLD)
    assert ProtoTripletLoss()(QUERY, LABELS, ref_emb=PROTOS, ref_labels=torch.arange(3)).item() == pytest.approx(
        0.244066986, abs=GOLD
    )
    qi = ICNNLoss()(QUERY, LABELS, ref_emb=SUPPORT, ref_labels=LABELS)
    assert qi.item() == pytest.approx(-math.log(0.801579472), abs=GOLD)
    full = ICNNLoss(ipc=4)(torch.cat([SUPPORT, QUERY]), torch.cat([LABELS, LABELS]))
    assert full.item() == pytest.approx(0.496554486, abs=GOLD)


# --------------------------------------------------------------------------- naive references
@pytest.mark.parametrize("seed", range(4))
def test_icnn_matches_the_naive_reference(seed: int) -> None:
    s, ys, q, yq = _episode(seed)
    x, y = torch.cat([s, q]), torch.cat([ys, yq])
    for kwargs in ({}, {"k": 3}, {"k": 4, "ipc": 7}, {"k": 40}):
        assert icnn_score(x, y, **kwargs).item() == pytest.approx(
            _reference_icnn_score(x, y, **kwargs).item(), abs=1e-12
        )
    ref = _reference_icnn_score(q, yq, s, ys).item()
    assert icnn_score(q, yq, s, ys).item() == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_proto_triplet_matches_the_naive_reference(seed: int) -> None:
    s, ys, q, yq = _episode(seed, spread=6.0)
    protos, _ = episode_prototypes(s, ys)
    ours = proto_triplet_loss(q, yq, protos).item()
    assert ours > 0 and ours == pytest.approx(_reference_proto_triplet(q, yq, protos).item(), abs=1e-12)


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("seed", range(6))
def test_score_in_unit_interval(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(4, 30, (1,), generator=g))
    x = torch.randn(n, 3, generator=g, dtype=F64)
    y = torch.randint(0, int(torch.randint(1, 5, (1,), generator=g)), (n,), generator=g)
    score = icnn_score(x, y).item()
    assert 0.0 < score <= 1.0 + 1e-12 and icnn_loss(x, y).item() >= -1e-12


def test_tight_separated_clusters_score_near_one() -> None:
    s, ys, q, yq = _episode(0, spread=1e-3)
    x, y = torch.cat([s, q]), torch.cat([ys, yq])
    assert icnn_score(x, y, ipc=7).item() > 0.99
    assert icnn_score(*_episode(0, spread=10.0)[:2]).item() < icnn_score(s, ys).item()


def test_proto_triplet_zero_beyond_margin_and_sparse_gradient() -> None:
    s, ys, q, yq = _episode(1, spread=1e-2)
    protos = episode_prototypes(s, ys)[0].requires_grad_(True)
    qq = q.clone().requires_grad_(True)
    loss = proto_triplet_loss(qq, yq, protos)
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(qq.grad) == 0 and torch.count_nonzero(protos.grad) == 0
    # an active query: the gradient reaches only its own and its nearest other prototype
    q1 = ((protos.detach()[0] + protos.detach()[1]) / 2)[None].requires_grad_(True)
    p1 = protos.detach().clone().requires_grad_(True)
    proto_triplet_loss(q1, torch.tensor([0]), p1).backward()
    d = susana_distance(q1.detach(), p1.detach())[0]
    nearest_other = int(d[1:].argmin()) + 1
    touched = set(torch.nonzero(p1.grad.abs().sum(1)).flatten().tolist())
    assert touched == {0, nearest_other}


def _terms(x: torch.Tensor, y: torch.Tensor, k: int = 4) -> tuple[float, float, float]:
    kk, ipc = _resolve_k(k, None, x.shape[0], True, "test")
    vals, idx = torch.topk(susana_distance(x, x), ipc + 1, dim=1, largest=False)
    return tuple(t.item() for t in _icnn_terms(vals, idx, y, y, kk, x.shape[0], True))


def test_gamma_is_knn_purity_when_k_is_not_reduced() -> None:
    s, ys, q, yq = _episode(2, spread=2.5)
    x, y = torch.cat([s, q]), torch.cat([ys, yq])
    nbr = torch.cdist(x, x).argsort(1)[:, 1:5]  # the 4 nearest neighbours, self excluded
    purity = (y[nbr] == y[:, None]).double().mean().item()
    assert 0.0 < purity < 1.0
    lam_pos, lam_neg, gamma = _terms(x, y)
    assert gamma == pytest.approx(purity, abs=1e-12)
    assert icnn_score(x, y).item() == pytest.approx(((lam_pos + lam_neg) / 2 + gamma) / 2, abs=1e-12)
    # 4 targets: k is cut to 2 and Gamma is 1 although no neighbour shares the class (purity 0)
    x4, y4 = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=F64), torch.tensor([0, 1, 2, 3])
    lam_pos, lam_neg, gamma = _terms(x4, y4)
    assert gamma == 1.0 and lam_pos == pytest.approx(1.0)  # no same-class neighbour: Lambda+ = 1
    # every neighbour differs: Lambda- = mean over origins of the mean of the 2 max-normalised distances
    vals = torch.cdist(x4, x4).sort(1).values[:, 1:3]
    assert lam_neg == pytest.approx((vals / vals.max()).mean().item(), abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_invariances(seed: int) -> None:
    s, ys, q, yq = _episode(seed, dim=3, spread=2.0)
    x, y = torch.cat([s, q]), torch.cat([ys, yq])
    g = torch.Generator().manual_seed(seed)
    rot, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=F64))
    shift = torch.randn(1, 3, generator=g, dtype=F64)
    protos = episode_prototypes(s, ys)[0]
    base_icnn, base_pt = icnn_score(x, y).item(), proto_triplet_loss(q, yq, protos).item()
    moved = x @ rot + shift
    assert icnn_score(moved, y).item() == pytest.approx(base_icnn, abs=1e-9)
    assert proto_triplet_loss(q @ rot + shift, yq, protos @ rot + shift).item() == pytest.approx(base_pt, abs=1e-9)
    # global scaling: only the ICNN score (ratios / max-normalised distances), up to the epsilons
    assert icnn_score(7.0 * x, y).item() == pytest.approx(base_icnn, abs=1e-6)


def test_drop_self_only_variant() -> None:
    ref = icnn_score(QUERY, LABELS, SUPPORT, LABELS).item()
    kept = icnn_score(QUERY, LABELS, SUPPORT, LABELS, drop_self_only=True).item()
    assert kept != pytest.approx(ref, abs=1e-6)
    # when targets are the origins both variants drop the self-match
    assert icnn_score(SUPPORT, LABELS, drop_self_only=True).item() == icnn_score(SUPPORT, LABELS).item()
    assert ICNNLoss(drop_self_only=True)(QUERY, LABELS, ref_emb=SUPPORT, ref_labels=LABELS).item() == pytest.approx(
        -math.log(kept), abs=1e-12
    )


def test_proto_triplet_batch_form_and_reduction() -> None:
    s, ys, q, yq = _episode(3, spread=3.0)
    protos, _ = episode_prototypes(q, yq)
    per = proto_triplet_loss(q, yq, protos, reduction="none")
    assert per.shape == (len(q),)
    assert proto_triplet_loss(q, yq, protos, reduction="sum").item() == pytest.approx(per.sum().item())
    assert ProtoTripletLoss()(q, yq).item() == pytest.approx(per.mean().item(), abs=1e-12)
    # prototype ids need not be 0..N-1
    assert proto_triplet_loss(q, yq + 10, protos, torch.arange(5) + 10).item() == pytest.approx(per.mean().item())


# --------------------------------------------------------------------------- gradients
def test_gradcheck_functional_forms() -> None:
    s, ys, q, yq = _episode(4, way=3, shot=2, query=2, dim=3, spread=2.0)
    x, y = torch.cat([s, q]).requires_grad_(True), torch.cat([ys, yq])
    assert torch.autograd.gradcheck(lambda e: icnn_loss(e, y, ipc=4), (x,))
    qq, ss = q.clone().requires_grad_(True), s.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: icnn_loss(a, yq, b, ys), (qq, ss))
    protos = episode_prototypes(s, ys)[0].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, p: proto_triplet_loss(a, yq, p), (qq, protos))
    combo = FewShotLossCombo(("cross", "prototriplet", "fullicnn", "suppicnn", "queryicnn"))
    assert torch.autograd.gradcheck(lambda a, b: combo(b, ys, a, yq), (qq, ss))


# --------------------------------------------------------------------------- PML interoperability
CHECKS = [
    (f"{cls.__name__}-{name}", check) for cls in (ProtoTripletLoss, ICNNLoss) for name, check in metric_loss_checks(cls)
]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_metric_loss_suite(name: str, check: Callable[[], None]) -> None:
    check()


class _MatrixSusana(SusanaDistance):
    """A subclass, so ICNNLoss takes the general (full distance matrix) path."""


def test_icnn_fast_path_matches_the_matrix_path() -> None:
    s, ys, q, yq = _episode(6, spread=2.0)
    x, y = torch.cat([s, q]), torch.cat([ys, yq])
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    fast, general = ICNNLoss()(x1, y), ICNNLoss(distance=_MatrixSusana())(x2, y)
    assert fast.item() == pytest.approx(general.item(), abs=1e-12)
    fast.backward()
    general.backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-10, rtol=1e-8)


def test_pml_distance_reducer_and_miner() -> None:
    s, ys, q, yq = _episode(5, spread=3.0)
    x, y = torch.cat([s, q]), torch.cat([ys, yq])
    assert torch.equal(SusanaDistance()(x), susana_distance(x, x))
    per = proto_triplet_loss(x, y, episode_prototypes(x, y, k_shot=7)[0], reduction="none")
    assert ProtoTripletLoss(reducer=reducers.SumReducer())(x, y).item() == pytest.approx(per.sum().item())
    # a similarity flips the hinge: max(0, s_neg - s_pos + m)
    cos = ProtoTripletLoss(margin=0.1, distance=distances.CosineSimilarity())(x, y)
    assert torch.isfinite(cos)
    tup = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")(x, y)
    anchors = torch.unique(tup[0])
    mined = ProtoTripletLoss()(x, y, tup)
    assert mined.item() == pytest.approx(per[anchors].mean().item(), abs=1e-12)
    with pytest.raises(ValueError, match="similarity"):
        ICNNLoss(distance=distances.CosineSimilarity())


# --------------------------------------------------------------------------- bad input
def test_bad_episodes_raise() -> None:
    combo = FewShotLossCombo(("cross", "fullicnn"), k_shot=2)
    with pytest.raises(ValueError, match=r"support_labels: every class needs exactly K = 2"):
        combo(SUPPORT[:5], LABELS[:5], QUERY, LABELS)
    with pytest.raises(ValueError, match=r"support_labels: every class needs exactly K = 3"):
        episode_prototypes(SUPPORT, LABELS, k_shot=3)
    with pytest.raises(ValueError, match=r"query_labels has classes \[7\] that are absent from support_labels"):
        combo(SUPPORT, LABELS, QUERY, torch.tensor([0, 0, 1, 1, 2, 7]))
    with pytest.raises(ValueError, match=r"query_labels has classes \[5\] that are absent from prototype_labels"):
        proto_triplet_loss(QUERY, torch.tensor([0, 0, 1, 1, 2, 5]), PROTOS)
    with pytest.raises(ValueError, match=r"labels has classes \[3\] that are absent from ref_labels"):
        ProtoTripletLoss()(QUERY, torch.tensor([0, 0, 1, 1, 2, 3]), ref_emb=SUPPORT, ref_labels=LABELS)
    with pytest.raises(ValueError, match="prototype_labels must be distinct"):
        proto_triplet_loss(QUERY, LABELS, PROTOS, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="query must have 2 columns"):
        combo(SUPPORT, LABELS, torch.randn(6, 3, dtype=F64), LABELS)
    with pytest.raises(ValueError, match="empty set: query has 0 rows"):
        combo(SUPPORT, LABELS, QUERY[:0], LABELS[:0])
    nan = QUERY.clone()
    nan[0, 0] = math.nan
    with pytest.raises(ValueError, match="query"):
        combo(SUPPORT, LABELS, nan, LABELS)


def test_bad_icnn_inputs_raise() -> None:
    with pytest.raises(ValueError, match="at least 3 target embeddings"):
        icnn_score(SUPPORT[:2], LABELS[:2])
    with pytest.raises(ValueError, match="ipc = 9 needs 10 target embeddings"):
        icnn_score(SUPPORT, LABELS, ipc=9)
    with pytest.raises(ValueError, match="ipc must be >= k"):
        icnn_score(torch.cat([SUPPORT, QUERY]), torch.cat([LABELS, LABELS]), k=4, ipc=2)
    with pytest.raises(ValueError, match="target_labels are required"):
        icnn_score(QUERY, LABELS, SUPPORT)
    with pytest.raises(ValueError, match="target must have 2 columns"):
        icnn_score(QUERY, LABELS, torch.randn(6, 3, dtype=F64), LABELS)
    with pytest.raises(ValueError, match=r"target_labels must have shape \(6,\)"):
        icnn_score(QUERY, LABELS, SUPPORT, LABELS[:4])
    with pytest.raises(ValueError, match="ref_labels are required with ref_emb"):
        ICNNLoss()(QUERY, LABELS, ref_emb=SUPPORT)
    with pytest.raises(ValueError, match="labels are required"):
        ProtoTripletLoss()(QUERY)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (partial(ProtoTripletLoss, margin=-0.1), r"^ProtoTripletLoss: margin must be a float in \[0, inf\)"),
        (partial(ICNNLoss, k=0), r"^ICNNLoss: k must be an int in \[1, inf\)"),
        (partial(ICNNLoss, ipc=0), r"^ICNNLoss: ipc must be"),
        (partial(FewShotLossCombo, temperature=0.0), r"^FewShotLossCombo: temperature must be a float in \(0, inf\)"),
        (partial(FewShotLossCombo, k_shot=0), r"^FewShotLossCombo: k_shot must be"),
        (partial(FewShotLossCombo, terms=("cross", "bogus")), "terms must be distinct names"),
        (partial(FewShotLossCombo, terms=("cross", "cross")), "terms must be distinct names"),
        (partial(FewShotLossCombo, terms=()), "terms must be distinct names"),
    ],
)
def test_bad_hyperparameters_raise(factory: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()
