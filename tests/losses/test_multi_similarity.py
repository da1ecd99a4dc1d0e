"""Tests of the Multi-Similarity loss (paper 28): properties, golden values (from the official
implementation, msight-tech/research-ms-loss, and pytorch-metric-learning 2.9.0, which agree),
equality with pytorch-metric-learning, PML interoperability and input errors. The generic
metric-loss behaviour (input errors, gradcheck, permutation, dtypes, round trips, miners,
reducers, ``DistributedLossWrapper``) is covered by :func:`paperzoo.testing.metric_loss_checks`."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances, losses, miners, reducers, regularizers
from pytorch_metric_learning.losses import BaseMetricLossFunction

from paperzoo.losses import MultiSimilarityLoss
from paperzoo.losses.multi_similarity import ms_pair_masks, multi_similarity_loss
from paperzoo.testing import metric_loss_checks

F64 = torch.float64
HYP = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------- helpers
def case_a() -> tuple[torch.Tensor, torch.Tensor]:
    """Golden-value case A: unit vectors at the given angles (degrees), labels [0,0,0,1,1,2,2]."""
    deg = torch.tensor([0.0, 10.0, 60.0, 90.0, 100.0, 200.0, 45.0], dtype=F64)
    rad = deg * math.pi / 180.0
    return torch.stack([rad.cos(), rad.sin()], dim=1), torch.tensor([0, 0, 0, 1, 1, 2, 2])


# Golden-value case B: torch.manual_seed(0); F.normalize(torch.randn(6, 4, dtype=float64), dim=1)
CASE_B_X = [
    [-0.83798238906075606, -0.13537744587526085, -0.38475638609256252, 0.36252032513130827],
    [-0.46934712193619044, -0.67721419358842716, -0.33088279331864145, -0.46001173052243405],
    [0.11831142494067715, 0.36354512591475385, -0.65513989184186372, 0.65163568830256957],
    [-0.7532011913356188, -0.36132260360858615, 0.263304041512676, -0.48249862509152081],
    [0.46159237547289533, 0.71604011950100133, 0.1055355737096732, -0.5129144849310181],
    [-0.33494609531597308, 0.039991249787523601, -0.80862570056211514, 0.4820127483412065],
]


def general_path(loss: MultiSimilarityLoss, *args: object, **kwargs: object) -> torch.Tensor:
    """Force the general (PML distance + reducer) path, bypassing the fused one."""
    return BaseMetricLossFunction.forward(loss, *args, **kwargs)


def naive_ms(S: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float, base: float, eps: float) -> torch.Tensor:
    """A per-anchor loop transcribing the official algorithm (the paper's mining step and
    Eq. (15)), as an oracle."""
    m = S.shape[0]
    total = S.new_zeros(())
    for i in range(m):
        same = labels == labels[i]
        pos_all = S[i][same]
        pos_all = pos_all[pos_all < 1 - 1e-5]
        neg_all = S[i][~same]
        if len(pos_all) == 0 or len(neg_all) == 0:
            continue
        neg = neg_all[neg_all + eps > pos_all.min()]
        pos = pos_all[pos_all - eps < neg_all.max()]
        if len(neg) == 0 or len(pos) == 0:
            continue
        total = total + torch.log(1 + torch.exp(-alpha * (pos - base)).sum()) / alpha
        total = total + torch.log(1 + torch.exp(beta * (neg - base)).sum()) / beta
    return total / m


def pml_ms(emb: torch.Tensor, labels: torch.Tensor, mining: bool = True, **kw: float) -> torch.Tensor:
    eps = kw.pop("epsilon", 0.1)
    loss = losses.MultiSimilarityLoss(**kw)
    if not mining:
        return loss(emb, labels)
    return loss(emb, labels, miners.MultiSimilarityMiner(eps)(emb, labels))


def pml_degenerate(emb: torch.Tensor, labels: torch.Tensor) -> bool:
    """PML returns 0 when at most one pair of each kind is mined (a shortcut we do not copy)."""
    return all(len(t) <= 1 for t in miners.MultiSimilarityMiner(0.1)(emb, labels))


compositions = st.sampled_from(["pk", "random", "singletons", "one_class", "all_distinct", "pairs"])


def make_labels(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "pk":
        return torch.arange(n) // 4
    if kind == "random":
        return torch.randint(0, max(2, n // 3), (n,), generator=gen)
    if kind == "singletons":  # half the anchors have no positive
        return torch.cat([torch.arange(n // 2) // 2, 100 + torch.arange(n - n // 2)])
    if kind == "one_class":  # no negatives at all
        return torch.zeros(n, dtype=torch.long)
    if kind == "all_distinct":  # no positives at all
        return torch.arange(n)
    return torch.arange(n) // 2


# --------------------------------------------------------------------------- golden values
@pytest.mark.parametrize(
    ("beta", "value", "g0", "g6"),
    [
        (40.0, 0.780357626, (0.0393196, -0.00582846), (0.678521, 0.361872)),
        (50.0, 0.780301542, (0.0393389, -0.00580915), (0.679233, 0.363525)),
    ],
)
def test_golden_case_a_loss_and_gradients(beta: float, value: float, g0: tuple, g6: tuple) -> None:
    X, y = case_a()
    X.requires_grad_(True)
    # reference function of S = X X^T (no re-normalisation in the graph, as the official code)
    loss = multi_similarity_loss(X @ X.T, y, alpha=2.0, beta=beta, base=0.5, epsilon=0.1)
    (g,) = torch.autograd.grad(loss, X)
    assert loss.item() == pytest.approx(value, abs=1e-9)
    assert g[0].tolist() == pytest.approx(g0, abs=1e-7)
    assert g[6].tolist() == pytest.approx(g6, abs=1e-6)
    # fused path and general path of the module, dot-product similarity (no normalisation)
    dot = MultiSimilarityLoss(beta=beta, distance=distances.DotProductSimilarity(normalize_embeddings=False))
    for fn in (dot, lambda e, t: general_path(dot, e, t)):
        out = fn(X, y)
        (gm,) = torch.autograd.grad(out, X)
        assert out.item() == pytest.approx(value, abs=1e-9)
        assert gm[0].tolist() == pytest.approx(g0, abs=1e-7)
        assert gm[6].tolist() == pytest.approx(g6, abs=1e-6)


@pytest.mark.parametrize(("beta", "g0", "g6"), [(40.0, (0.0393196, -0.00582846), (0.678521, 0.361872))])
def test_golden_case_a_cosine_gradient_is_the_tangential_part(beta: float, g0: tuple, g6: tuple) -> None:
    """With the default cosine similarity, normalisation is in the graph: on unit inputs the
    gradient is the golden one projected on the tangent space, g - (g . x) x."""
    X, y = case_a()
    X.requires_grad_(True)
    out = MultiSimilarityLoss(beta=beta)(X, y)
    (g,) = torch.autograd.grad(out, X)
    assert out.item() == pytest.approx(0.780357626, abs=1e-9)
    for i, gold in ((0, g0), (6, g6)):
        gold_t = torch.tensor(gold, dtype=F64)
        tangential = gold_t - (gold_t @ X[i].detach()) * X[i].detach()
        assert g[i].tolist() == pytest.approx(tangential.tolist(), abs=2e-6)


def test_golden_case_a_mined_sets() -> None:
    X, y = case_a()
    pos, neg = ms_pair_masks(X @ X.T, y, epsilon=0.1)
    expected = {
        0: ({2}, {6}),
        1: ({2}, {6}),
        2: ({0, 1}, {3, 4, 6}),
        3: (set(), set()),
        4: (set(), set()),
        5: ({6}, {0, 1, 2, 3, 4}),
        6: ({5}, {0, 1, 2, 3, 4}),
    }
    for i, (p, n) in expected.items():
        assert set(torch.nonzero(pos[i]).flatten().tolist()) == p, i
        assert set(torch.nonzero(neg[i]).flatten().tolist()) == n, i


@pytest.mark.parametrize(("beta", "value"), [(40.0, 0.942994178), (50.0, 0.942931403)])
def test_golden_case_a_without_mining(beta: float, value: float) -> None:
    X, y = case_a()
    assert multi_similarity_loss(X @ X.T, y, beta=beta, mining=False).item() == pytest.approx(value, abs=1e-9)
    assert MultiSimilarityLoss(beta=beta, mining=False)(X, y).item() == pytest.approx(value, abs=1e-9)
    assert pml_ms(X, y, mining=False, beta=beta).item() == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize(
    ("beta", "base", "value"),
    [(40.0, 0.5, 1.11181271), (50.0, 0.5, 1.11159761), (40.0, 1.0, 1.30182973), (50.0, 1.0, 1.30182386)],
)
def test_golden_case_b(beta: float, base: float, value: float) -> None:
    X = torch.tensor(CASE_B_X, dtype=F64)
    assert X[0].tolist() == pytest.approx([-0.837982389, -0.135377446, -0.384756386, 0.362520325], abs=1e-9)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    assert MultiSimilarityLoss(alpha=2.0, beta=beta, base=base)(X, y).item() == pytest.approx(value, abs=1e-8)
    assert multi_similarity_loss(X @ X.T, y, 2.0, beta, base).item() == pytest.approx(value, abs=1e-8)
    # mining keeps every anchor and every positive; the 6 negatives it drops (of 24) have
    # similarity < min positive - 0.1 and weigh < 1e-9, so the unmined loss rounds the same
    pos, neg = ms_pair_masks(X @ X.T, y)
    assert int(pos.sum()) == 6 and bool(pos.any(1).all()) and int(neg.sum()) == 18
    assert multi_similarity_loss(X @ X.T, y, 2.0, beta, base, mining=False).item() == pytest.approx(value, abs=1e-8)


def test_defaults_are_the_papers_and_official_values() -> None:
    loss = MultiSimilarityLoss()
    assert (loss.alpha, loss.beta, loss.base, loss.epsilon) == (2.0, 50.0, 0.5, 0.1)
    assert loss.mining and loss.exclude_duplicates
    assert isinstance(loss, BaseMetricLossFunction)
    assert isinstance(loss.distance, distances.CosineSimilarity)


# --------------------------------------------------------------------------- equality with PML
@HYP
@given(
    kind=compositions, n=st.integers(2, 40), dim=st.integers(2, 16), seed=st.integers(0, 10_000), mining=st.booleans()
)
def test_equals_pml_float64(kind: str, n: int, dim: int, seed: int, mining: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = make_labels(kind, n, gen)
    emb = torch.randn(n, dim, dtype=F64, generator=gen) * 3.0
    assume(not (mining and pml_degenerate(emb, labels)))
    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    # PML keeps near-duplicate positives (S >= 1 - 1e-5, likely in 2-D): compare like with like
    ours = MultiSimilarityLoss(mining=mining, exclude_duplicates=False)(e1, labels)
    ref = pml_ms(e2, labels, mining=mining)
    assert ours.item() == pytest.approx(ref.item(), abs=1e-10)
    x = F.normalize(emb, dim=1)
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(n, dtype=torch.bool)
    if not bool(((x @ x.T >= 1 - 1e-5) & same).any()):
        assert MultiSimilarityLoss(mining=mining)(emb, labels).item() == pytest.approx(ref.item(), abs=1e-10)
    if ref.requires_grad:
        (g1,) = torch.autograd.grad(ours, e1)
        (g2,) = torch.autograd.grad(ref, e2)
        torch.testing.assert_close(g1, g2, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("kind", ["pk", "random", "singletons", "pairs"])
@pytest.mark.parametrize("mining", [True, False])
def test_equals_pml_float32(kind: str, mining: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    labels = make_labels(kind, 96, gen)
    emb = torch.randn(96, 32, generator=gen)
    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    ours = MultiSimilarityLoss(mining=mining)(e1, labels)
    ref = pml_ms(e2, labels, mining=mining)
    assert abs(ours.item() - ref.item()) < 1e-6
    (g1,) = torch.autograd.grad(ours, e1)
    (g2,) = torch.autograd.grad(ref, e2)
    torch.testing.assert_close(g1, g2, atol=1e-7, rtol=1e-4)


@HYP
@given(kind=compositions, n=st.integers(2, 24), seed=st.integers(0, 10_000))
def test_equals_naive_official_algorithm(kind: str, n: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = make_labels(kind, n, gen)
    x = F.normalize(torch.randn(n, 5, dtype=F64, generator=gen), dim=1)
    expected = naive_ms(x @ x.T, labels, 2.0, 50.0, 0.5, 0.1)
    assert MultiSimilarityLoss()(x, labels).item() == pytest.approx(expected.item(), abs=1e-12)


def test_pml_shortcut_is_not_copied() -> None:
    """One positive and one negative pair mined in the whole batch: PML returns 0, the
    official algorithm (and this class) the loss of those two pairs."""
    X, y = case_a()
    X, y = X[[0, 2, 3]], torch.tensor([0, 0, 1])  # angles 0, 60 (class 0) and 90 (class 1)
    X = X.clone()
    assert pml_ms(X, y).item() == 0.0
    ours = MultiSimilarityLoss()(X, y).item()
    assert ours > 0 and ours == pytest.approx(naive_ms(X @ X.T, y, 2.0, 50.0, 0.5, 0.1).item(), abs=1e-12)


# --------------------------------------------------------------------------- duplicates (official code)
def test_exclude_duplicates_reproduces_official_behaviour() -> None:
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(12, 6, dtype=F64, generator=gen)
    labels = torch.arange(12) // 3
    emb[1] = emb[0] * 2.0  # an exact duplicate (same direction) of anchor 0, same class
    emb[4] = emb[3]
    emb[6] = emb[0] + 0.05 * emb[6]  # a hard negative of anchor 0: the duplicate passes mining
    x = F.normalize(emb, dim=1)
    official = naive_ms(x @ x.T, labels, 2.0, 50.0, 0.5, 0.1).item()
    ours = MultiSimilarityLoss()(emb, labels).item()
    assert ours == pytest.approx(official, abs=1e-12)
    assert ours == pytest.approx(general_path(MultiSimilarityLoss(), emb, labels).item(), abs=1e-12)
    kept = MultiSimilarityLoss(exclude_duplicates=False)(emb, labels).item()
    assert kept == pytest.approx(pml_ms(emb, labels).item(), abs=1e-12)
    assert abs(kept - ours) > 1e-6
    # without mining the duplicate pairs always count unless excluded
    no_mining = MultiSimilarityLoss(mining=False, exclude_duplicates=False)(emb, labels).item()
    assert no_mining == pytest.approx(pml_ms(emb, labels, mining=False).item(), abs=1e-12)
    assert abs(no_mining - MultiSimilarityLoss(mining=False)(emb, labels).item()) > 1e-6


# --------------------------------------------------------------------------- properties
@HYP
@given(kind=compositions, n=st.integers(2, 30), seed=st.integers(0, 10_000), eps=st.floats(0.0, 1.0))
def test_property1_kept_sets_empty_together(kind: str, n: int, seed: int, eps: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = make_labels(kind, n, gen)
    x = F.normalize(torch.randn(n, 3, dtype=F64, generator=gen), dim=1)
    pos, neg = ms_pair_masks(x @ x.T, labels, epsilon=eps)
    assert torch.equal(pos.any(1), neg.any(1))


@HYP
@given(kind=st.sampled_from(["pk", "pairs", "random"]), n=st.integers(4, 30), seed=st.integers(0, 10_000))
def test_property2_infinite_epsilon_is_no_mining(kind: str, n: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = make_labels(kind, n, gen)
    same = labels[:, None] == labels[None, :]
    assume(bool((same.sum(1) > 1).all()) and bool((~same).any(1).all()))  # every anchor has both kinds
    emb = torch.randn(n, 8, dtype=F64, generator=gen)
    ref = pml_ms(emb, labels, mining=False).item()
    assert MultiSimilarityLoss(epsilon=math.inf)(emb, labels).item() == pytest.approx(ref, abs=1e-12)
    assert MultiSimilarityLoss(mining=False)(emb, labels).item() == pytest.approx(ref, abs=1e-12)


def test_property4_hinge_limit() -> None:
    # three samples: anchors 0 and 1 have one positive and one negative each
    S = torch.tensor([[1.0, 0.3, 0.8], [0.3, 1.0, -0.2], [0.8, -0.2, 1.0]], dtype=F64)
    labels = torch.tensor([0, 0, 1])
    base = 0.5
    per_anchor = multi_similarity_loss(S, labels, alpha=1e5, beta=1e5, base=base, mining=False, reduction="none")
    hinge = [max(0.0, base - 0.3) + max(0.0, 0.8 - base), max(0.0, base - 0.3) + max(0.0, -0.2 - base)]
    assert per_anchor[:2].tolist() == pytest.approx(hinge, abs=1e-4)
    # anchor 2 has no positive: without mining only its negative term, with mining nothing
    assert per_anchor[2].item() == pytest.approx(max(0.0, 0.8 - base), abs=1e-4)
    mined = multi_similarity_loss(S, labels, alpha=1e5, beta=1e5, base=base, epsilon=10.0, reduction="none")
    assert mined[:2].tolist() == pytest.approx(hinge, abs=1e-4) and mined[2].item() == 0.0


@HYP
@given(kind=compositions, n=st.integers(2, 30), seed=st.integers(0, 10_000), mining=st.booleans())
def test_property5_nonnegative(kind: str, n: int, seed: int, mining: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = make_labels(kind, n, gen)
    emb = torch.randn(n, 4, generator=gen)
    assert MultiSimilarityLoss(mining=mining)(emb, labels).item() >= 0.0


def test_property5_exactly_zero_when_nothing_is_mined() -> None:
    # three tight, well-separated clusters: min positive >= max negative + epsilon everywhere
    centres = torch.eye(3, dtype=F64)
    emb = centres.repeat_interleave(4, 0) + 0.01 * torch.randn(
        12, 3, dtype=F64, generator=torch.Generator().manual_seed(0)
    )
    emb.requires_grad_(True)
    labels = torch.arange(12) // 4
    loss = MultiSimilarityLoss()(emb, labels)
    assert loss.item() == 0.0
    loss.backward()
    assert emb.grad is not None and torch.count_nonzero(emb.grad) == 0
    assert general_path(MultiSimilarityLoss(), emb, labels).item() == 0.0


@HYP
@given(kind=compositions, n=st.integers(2, 30), seed=st.integers(0, 10_000), mining=st.booleans())
def test_property6_permutation_invariance(kind: str, n: int, seed: int, mining: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = make_labels(kind, n, gen)
    emb = torch.randn(n, 6, dtype=F64, generator=gen)
    perm = torch.randperm(n, generator=gen)
    loss = MultiSimilarityLoss(mining=mining)
    assert loss(emb[perm], labels[perm]).item() == pytest.approx(loss(emb, labels).item(), abs=1e-12)


def test_no_positive_pairs_gives_zero_with_zero_gradient() -> None:
    emb = torch.randn(8, 4, requires_grad=True)
    loss = MultiSimilarityLoss()(emb, torch.arange(8))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(emb.grad) == 0


def test_large_scales_stay_finite() -> None:
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(64, 8, generator=gen, requires_grad=True)
    labels = torch.arange(64) // 4
    loss = MultiSimilarityLoss(alpha=200.0, beta=2000.0, base=-0.5)(emb, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    ref = multi_similarity_loss(
        F.normalize(emb.detach().double(), dim=1) @ F.normalize(emb.detach().double(), dim=1).T,
        labels,
        200.0,
        2000.0,
        -0.5,
    )
    assert loss.item() == pytest.approx(ref.item(), rel=1e-4)


# --------------------------------------------------------------------------- gradients
def test_fused_backward_matches_autograd_of_the_reference() -> None:
    gen = torch.Generator().manual_seed(5)
    emb = torch.randn(40, 7, dtype=F64, generator=gen)
    labels = torch.randint(0, 8, (40,), generator=gen)
    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    MultiSimilarityLoss()(e1, labels).backward()
    x = F.normalize(e2, dim=1)
    multi_similarity_loss(x @ x.T, labels).backward()
    torch.testing.assert_close(e1.grad, e2.grad, atol=1e-13, rtol=1e-10)


def test_gradcheck_general_path_and_reference() -> None:
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(10, 4, dtype=F64, generator=gen, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 4])
    loss = MultiSimilarityLoss(beta=10.0, distance=distances.LpDistance())
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (emb,))
    S = (F.normalize(emb.detach(), dim=1) @ F.normalize(emb.detach(), dim=1).T).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: multi_similarity_loss(s, labels, beta=10.0), (S,))


def test_forward_under_no_grad() -> None:
    emb = torch.randn(16, 4)
    with torch.no_grad():
        out = MultiSimilarityLoss()(emb, torch.arange(16) // 4)
    assert out.ndim == 0 and not out.requires_grad


# --------------------------------------------------------------------------- PML interoperability
def _emb_labels(seed: int = 0, n: int = 32, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, dtype=F64, generator=gen), torch.arange(n) // 4


@pytest.mark.parametrize(
    "miner",
    [
        miners.MultiSimilarityMiner(0.1),
        miners.TripletMarginMiner(0.2, type_of_triplets="semihard"),
        miners.PairMarginMiner(0.2, 0.5),
    ],
)
def test_with_a_pml_miner_indices_tuple(miner: miners.BaseMiner) -> None:
    emb, labels = _emb_labels()
    tup = miner(emb, labels)
    assert not all(len(t) <= 1 for t in tup)  # not PML's zero shortcut
    ours = MultiSimilarityLoss()(emb, labels, tup)
    ref = losses.MultiSimilarityLoss()(emb, labels, tup)
    assert ours.item() > 0 and ours.item() == pytest.approx(ref.item(), abs=1e-12)


def test_indices_tuple_without_labels() -> None:
    emb, labels = _emb_labels(1)
    tup = miners.MultiSimilarityMiner(0.1)(emb, labels)
    assert MultiSimilarityLoss()(emb, None, tup).item() == pytest.approx(
        losses.MultiSimilarityLoss()(emb, labels, tup).item(), abs=1e-12
    )


@pytest.mark.parametrize(
    "reducer", [reducers.SumReducer(), reducers.AvgNonZeroReducer(), reducers.ThresholdReducer(low=0.1)]
)
def test_with_a_pml_reducer(reducer: reducers.BaseReducer) -> None:
    emb, labels = _emb_labels(2)
    ours = MultiSimilarityLoss(reducer=reducer)(emb, labels)
    pml = losses.MultiSimilarityLoss(reducer=reducer)
    ref = pml(emb, labels, miners.MultiSimilarityMiner(0.1)(emb, labels))
    assert ours.item() == pytest.approx(ref.item(), abs=1e-12)


@pytest.mark.parametrize(
    "distance", [distances.LpDistance(), distances.LpDistance(power=2), distances.DotProductSimilarity()]
)
def test_with_a_pml_distance(distance: distances.BaseDistance) -> None:
    emb, labels = _emb_labels(3)
    ours = MultiSimilarityLoss(distance=distance)(emb, labels)
    ref = losses.MultiSimilarityLoss(distance=distance)(
        emb, labels, miners.MultiSimilarityMiner(0.1, distance=distance)(emb, labels)
    )
    assert ours.item() == pytest.approx(ref.item(), abs=1e-12)


def test_with_ref_emb() -> None:
    emb, labels = _emb_labels(4, n=24)
    ref_emb, ref_labels = _emb_labels(5, n=40)
    ref_labels = ref_labels % 6
    ours = MultiSimilarityLoss()(emb, labels, ref_emb=ref_emb, ref_labels=ref_labels)
    tup = miners.MultiSimilarityMiner(0.1)(emb, labels, ref_emb, ref_labels)
    expected = losses.MultiSimilarityLoss()(emb, labels, tup, ref_emb, ref_labels)
    assert ours.item() == pytest.approx(expected.item(), abs=1e-12)


def test_with_an_embedding_regularizer() -> None:
    emb, labels = _emb_labels(6)
    reg = regularizers.LpRegularizer()
    ours = MultiSimilarityLoss(embedding_regularizer=reg)(emb, labels)
    pml = losses.MultiSimilarityLoss(embedding_regularizer=reg)
    ref = pml(emb, labels, miners.MultiSimilarityMiner(0.1)(emb, labels))
    assert ours.item() == pytest.approx(ref.item(), abs=1e-12)


def test_fused_and_general_paths_agree() -> None:
    emb, labels = _emb_labels(7, n=50)
    for mining in (True, False):
        loss = MultiSimilarityLoss(mining=mining)
        assert loss(emb, labels).item() == pytest.approx(general_path(loss, emb, labels).item(), abs=1e-12)


# --------------------------------------------------------------------------- check suite and bad input
CHECKS = [
    (f"mining={mining}-{name}", check)
    for mining in (True, False)
    for name, check in metric_loss_checks(partial(MultiSimilarityLoss, mining=mining))
]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_metric_loss_suite(name: str, check: Callable[[], None]) -> None:
    check()


def test_bad_inputs_beyond_the_suite_raise() -> None:
    loss = MultiSimilarityLoss()
    emb, labels = torch.randn(8, 4), torch.arange(8) // 2
    with pytest.raises(TypeError, match="floating-point"):
        loss(emb.long(), labels)
    with pytest.raises(ValueError, match="labels are required"):
        loss(emb)
    with pytest.raises(ValueError, match="ref_labels are required"):
        loss(emb, labels, ref_emb=torch.randn(5, 4))
    with pytest.raises(ValueError, match="columns"):
        loss(emb, labels, ref_emb=torch.randn(5, 3), ref_labels=torch.arange(5))
    with pytest.raises(ValueError, match="indices_tuple entries must lie"):
        loss(emb, labels, (torch.tensor([0]), torch.tensor([9]), torch.tensor([0]), torch.tensor([2])))
    with pytest.raises(ValueError, match="indices_tuple must be"):
        loss(emb, labels, (torch.tensor([0]), torch.tensor([1])))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, r"alpha must be a float in \(0, inf\), got 0.0$"),
        ({"beta": -1.0}, r"beta must be a float in \(0, inf\), got -1.0$"),
        ({"beta": math.inf}, r"beta must be a float in \(0, inf\), got inf$"),
        ({"base": math.nan}, r"base must be a float in \(-inf, inf\), got nan$"),
        ({"epsilon": -0.1}, r"epsilon must be a float in \[0, inf\], got -0.1$"),
    ],
)
def test_bad_hyperparameters_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match="^MultiSimilarityLoss: " + match):
        MultiSimilarityLoss(**kwargs)
    with pytest.raises(ValueError, match="^multi_similarity_loss: " + match):
        multi_similarity_loss(torch.eye(3), torch.arange(3), **kwargs)


def test_infinite_epsilon_is_accepted() -> None:
    assert MultiSimilarityLoss(epsilon=math.inf).epsilon == math.inf
    pos, _ = ms_pair_masks(torch.eye(3), torch.tensor([0, 0, 1]), epsilon=math.inf)
    assert pos.shape == (3, 3)


def test_functional_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="square"):
        multi_similarity_loss(torch.randn(3, 4), torch.arange(3))
    with pytest.raises(ValueError, match="labels must have shape"):
        multi_similarity_loss(torch.randn(3, 3), torch.arange(4))
    with pytest.raises(ValueError, match="NaN"):
        multi_similarity_loss(torch.full((3, 3), float("nan")), torch.arange(3))
    with pytest.raises(ValueError, match=r"^multi_similarity_loss: reduction must be one of \{'mean', 'sum', 'none'\}"):
        multi_similarity_loss(torch.randn(3, 3), torch.arange(3), reduction="max")
    with pytest.raises(ValueError, match=r"^ms_pair_masks: epsilon must be a float in \[0, inf\], got -1$"):
        ms_pair_masks(torch.randn(3, 3), torch.arange(3), epsilon=-1)
    with pytest.raises(ValueError, match="empty batch"):
        ms_pair_masks(torch.zeros(0, 0), torch.zeros(0, dtype=torch.long))
