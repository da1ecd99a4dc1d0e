"""Active GCD (Ma et al., CVPR 2024): query strategies, stable label mapping, EMA term, rounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from paperzoo.discovery.active import (
    STRATEGIES,
    ActiveLabelTerm,
    SimulatedOracle,
    active_gcd,
    map_labels,
    novel_margin_adaptive,
    novel_margin_query,
    novelty_metrics,
    stable_label_mapping,
    top2_margin,
)


def golden_probs() -> torch.Tensor:
    i = torch.arange(12, dtype=torch.float64)[:, None]
    k = torch.arange(1, 6, dtype=torch.float64)[None]
    return torch.softmax(torch.sin(0.9 * i * (k) + 0.4) / 0.1, dim=1)


# --------------------------------------------------------------------------- golden values
def test_golden_predictions_and_margins() -> None:
    pred, margin = top2_margin(golden_probs())
    assert pred.tolist() == [0, 0, 3, 4, 1, 2, 4, 4, 0, 3, 4, 1]
    expected = [0.0, 0.649953, 0.662377, 0.700099, 0.715487, 0.999845, 0.999142, 0.036693, 0.715452, 0.726187]
    np.testing.assert_allclose(margin.numpy()[:10], expected, atol=1e-6)
    np.testing.assert_allclose(margin.numpy()[10:], [0.802574, 0.818921], atol=1e-6)


def test_golden_adaptive_selection() -> None:
    p, ids = golden_probs(), np.arange(12)
    assert novel_margin_adaptive(p, ids, 1, 4, 2).tolist() == [5, 9, 6, 10]  # confident first
    assert novel_margin_adaptive(p, ids, 2, 4, 2).tolist() == [5, 2, 7, 3]  # uncertain first
    assert novel_margin_query(p, ids, 1, 4, 2).tolist() == [5, 2, 7, 3]  # novel-margin: uncertain every round


def test_golden_label_mapping() -> None:
    pred = [0, 0, 1, 1, 3, 3, 3, 4, 4, 2, 2, 2]
    target = [0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 3]
    assert stable_label_mapping(pred, target, 5) == {0: 0, 1: 1, 2: 3, 3: 4, 4: 2}


# --------------------------------------------------------------------------- properties
def random_pool(n: int = 300, k: int = 8, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, k, generator=g, dtype=torch.float64) * 3, dim=1)
    ids = np.random.default_rng(seed).permutation(10_000)[:n]
    return probs, ids


@pytest.mark.parametrize("rnd", [1, 2, 3])
def test_selection_properties(rnd: int) -> None:
    probs, ids = random_pool()
    n, n_old, k = 13, 3, 8
    sel = novel_margin_adaptive(probs, ids, rnd, n, n_old)
    assert sel.size == n and np.unique(sel).size == n and np.isin(sel, ids).all()
    pos = {int(v): i for i, v in enumerate(ids)}
    rows = np.array([pos[int(s)] for s in sel])
    pred, margin = top2_margin(probs)
    assert (pred[rows] >= n_old).all()
    q = n // (k - n_old)
    counts = np.bincount(pred[rows].numpy(), minlength=k)[n_old:]
    assert (counts >= q).all()  # every cluster has >= q candidates here: each gives its quota
    assert counts.sum() == n
    # within each cluster's quota: the extreme margins of that cluster
    for c in range(n_old, k):
        in_c = (pred == c).numpy()
        chosen = margin[rows[: q * (k - n_old)]][pred[rows[: q * (k - n_old)]] == c]
        ref = np.sort(margin[in_c].numpy())
        ref = ref[::-1][:q] if rnd < 2 else ref[:q]
        np.testing.assert_allclose(np.sort(chosen.numpy()), np.sort(ref))


def test_generic_strategies() -> None:
    probs, ids = random_pool()
    for name, fn in STRATEGIES.items():
        sel = fn(probs, ids, 1, 20, 3, rng=np.random.default_rng(0))
        assert sel.size == 20 and np.unique(sel).size == 20 and np.isin(sel, ids).all(), name
    pred, margin = top2_margin(probs)
    sel = STRATEGIES["margin"](probs, ids, 1, 5, 3)
    assert set(sel) == set(ids[np.argsort(margin.numpy())[:5]])
    nr = STRATEGIES["novel_random"](probs, ids, 1, 20, 3, rng=np.random.default_rng(1))
    pos = {int(v): i for i, v in enumerate(ids)}
    assert (pred[[pos[int(s)] for s in nr]] >= 3).all()


def test_shortfall_strict_and_fill() -> None:
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
    with pytest.raises(ValueError, match="only 1 candidates are predicted as new"):
        novel_margin_adaptive(probs, np.arange(4), 1, 2, 2)
    sel = novel_margin_adaptive(probs, np.arange(4), 1, 3, 2, strict=False)
    assert sel[0] == 2 and sel.size == 3 and np.unique(sel).size == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mapping_is_bijection_and_recovers_permutation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 7
    y = rng.integers(0, k, 200)
    perm = rng.permutation(k)
    m = stable_label_mapping(perm[y], y, k)
    assert sorted(m) == list(range(k)) and sorted(m.values()) == list(range(k))
    assert all(m[c] == perm[c] for c in np.unique(y))
    assert stable_label_mapping(y, y, k) == {c: c for c in range(k)}
    # a class that no sample names still gets a classifier index
    m2 = stable_label_mapping([0, 0, 1], [0, 0, 1], 4)
    assert sorted(m2.values()) == [0, 1, 2, 3]
    assert map_labels(torch.tensor([0, 1, 0]), m).tolist() == [m[0], m[1], m[0]]


def test_novelty_metrics() -> None:
    uni = novelty_metrics([3, 4, 5, 3, 4, 5], n_old=3, n_new=3)
    assert uni["coverage"] == 1.0 and uni["ratio"] == 1.0
    assert math.isclose(uni["entropy"], math.log(3))
    part = novelty_metrics([0, 1, 3, 3], n_old=3, n_new=3)
    assert part["coverage"] == pytest.approx(1 / 3) and part["ratio"] == 0.5 and part["entropy"] == 0.0
    assert novelty_metrics([0, 1], 3, 3) == {"coverage": 0.0, "ratio": 0.0, "entropy": 0.0}


# --------------------------------------------------------------------------- EMA term
class Tiny(nn.Module):
    def __init__(self, d: int = 4, k: int = 3) -> None:
        super().__init__()
        self.lin = nn.Linear(d, 5)
        self.cls = nn.Linear(5, k, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.lin(x)
        return h, torch.tanh(self.cls(h))


def test_identity_mapping_term_equals_supervised_terms() -> None:
    """With a perfect oracle and the identity mapping, the active CE is SimGCD's supervised CE."""
    from paperzoo.discovery.losses import supervised_classification, supervised_contrastive

    torch.manual_seed(0)
    model = Tiny()
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    term = ActiveLabelTerm(model, x, y, x, y, 3, lambda t: t, batch_size=8, use_mapping=False, lambda_sup=0.35)
    batch = type("B", (), {"logits": torch.zeros(2, 3)})()
    out = term(batch, 0)
    perm = term._chunks[0]
    z, logits = model(torch.cat([x[perm], x[perm]]))
    mask = torch.ones(8, dtype=torch.bool)
    torch.testing.assert_close(out["al_cls"], 0.35 * supervised_classification(logits, y[perm], mask))
    torch.testing.assert_close(out["al_sup"], 0.35 * supervised_contrastive(z, y[perm], mask))
    # the pass over the queried set is done for this epoch: zeros until the next epoch
    assert float(term(batch, 0)["al_cls"]) == 0.0
    assert float(term(batch, 1)["al_cls"].detach()) > 0.0


def test_ema_update_rule() -> None:
    torch.manual_seed(0)
    model = Tiny()
    x, y = torch.randn(4, 4), torch.tensor([0, 1, 2, 0])
    term = ActiveLabelTerm(model, x, y, x, y, 3, lambda t: t, ema_decay=0.9)
    before = term.ema.module.lin.weight.detach().clone()
    with torch.no_grad():
        model.lin.weight.add_(1.0)
    term.ema.update_parameters(model)  # the first update copies (AveragedModel), the next ones average
    with torch.no_grad():
        model.lin.weight.add_(1.0)
    term.finish()
    torch.testing.assert_close(term.ema.module.lin.weight, 0.9 * (before + 1.0) + 0.1 * model.lin.weight)


# --------------------------------------------------------------------------- loop and bad input
def test_active_gcd_rounds_on_blobs() -> None:
    from paperzoo.discovery.heads import DINOHead

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 40)
    x = torch.from_numpy(rng.normal(size=(160, 6)).astype(np.float32) + 3 * np.eye(6, dtype=np.float32)[y])
    targets = torch.full((160,), -1)
    lab = np.flatnonzero(y < 2)[::2]
    targets[lab] = torch.from_numpy(y[lab])
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), DINOHead(16, 4, hidden=16, bottleneck=8))
    oracle = SimulatedOracle(y)
    res = active_gcd(
        model, x, targets, oracle, lambda t: t + 0.05 * torch.randn_like(t), n_old=2, n_classes=4,
        strategy="random", n_rounds=2, n_query=6, epochs_per_round=1, batch_size=32,
    )  # fmt: skip
    q = res.all_queried
    assert q.size == 12 and np.unique(q).size == 12 and (targets[torch.from_numpy(q)] == -1).all()
    assert oracle.n_queries == 12 and len(res.mappings) == 2
    assert sorted(res.mappings[-1].values()) == [0, 1, 2, 3]


def test_bad_input() -> None:
    probs, ids = random_pool(n=10)
    with pytest.raises(ValueError, match="larger than the pool of 10"):
        novel_margin_adaptive(probs, ids, 1, 11, 3)
    with pytest.raises(ValueError, match="one id per row"):
        novel_margin_adaptive(probs, ids[:5], 1, 2, 3)
    with pytest.raises(ValueError, match="NaN"):
        STRATEGIES["margin"](torch.full((10, 8), float("nan")), ids, 1, 2, 3)
    with pytest.raises(ValueError, match="n_old"):
        STRATEGIES["entropy"](probs, ids, 1, 2, 8)
    with pytest.raises(ValueError, match="same length"):
        stable_label_mapping([0, 1], [0], 2)
    with pytest.raises(ValueError, match="target must hold indices"):
        stable_label_mapping([0, 1], [0, 5], 3)
    with pytest.raises(ValueError, match="already queried"):
        o = SimulatedOracle([0, 1, 2])
        o([0])
        o([0])
    targets = torch.tensor([0, 1, -1, -1, -1])
    with pytest.raises(ValueError, match="larger than the pool of 3 unlabelled"):
        active_gcd(Tiny(), torch.randn(5, 4), targets, SimulatedOracle([0, 1, 2, 0, 1]), lambda t: t,
                   n_old=2, n_classes=3, n_rounds=2, n_query=2)  # fmt: skip
    with pytest.raises(ValueError, match="unknown strategy"):
        active_gcd(Tiny(), torch.randn(5, 4), targets, SimulatedOracle([0, 1, 2, 0, 1]), lambda t: t,
                   n_old=2, n_classes=3, strategy="badge", n_rounds=1, n_query=1)  # fmt: skip
