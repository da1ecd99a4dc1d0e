"""Tests of GLC (paper 15): golden values from the official functions, the pseudo-label
invariants, the k-NN consensus term, the OPDA metrics and the trainers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from paperzoo.adaptation.glc import (
    FeatureBank,
    GLCConfig,
    KNNConsensusLoss,
    UniDANet,
    adapt_glc,
    entropy_rejection,
    estimate_category_ratio,
    glc_loss,
    knn_consensus_loss,
    normalized_entropy,
    one_vs_all_pseudo_labels,
    predict,
    pseudo_label_loss,
    train_source,
    universal_da_scores,
)

D64 = torch.float64
PROBS = torch.tensor(
    [[0.90, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.34, 0.33, 0.33], [0.4, 0.35, 0.25],
     [0.05, 0.9, 0.05], [0.5, 0.25, 0.25], [0.1, 0.1, 0.8]], dtype=D64,
)  # fmt: skip
LABELS = torch.tensor([0, 0, 1, 3, 3, 1, 3, 3])


def _bank() -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.arange(6, dtype=D64)[:, None]
    f = torch.nn.functional.normalize(torch.cos(n * torch.tensor([0.3, 0.7, 1.1], dtype=D64) + 0.1), dim=1)
    p = torch.sin(n * torch.tensor([1.0, 2.0, 3.0], dtype=D64)).softmax(1)
    return f, p


def _clusters(seed: int = 0, n_per: int = 40, noise: float = 0.05) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Well-separated clusters: 3 shared classes (confident, correct predictions) and 2 private
    clusters (diffuse predictions); features, probs, is_private."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(8, dtype=D64)[:5] * 5
    y = torch.arange(5).repeat_interleave(n_per)
    f = centres[y] + noise * torch.randn(len(y), 8, generator=g, dtype=D64)
    logits = torch.zeros(len(y), 3, dtype=D64)
    known = y < 3
    logits[known, y[known]] = 4.0
    logits[~known] = 0.3 * torch.randn(int((~known).sum()), 3, generator=g, dtype=D64)
    return f, logits.softmax(1), ~known


# --------------------------------------------------------------------------- golden values
def test_golden_normalized_entropy_and_scores() -> None:
    u = normalized_entropy(PROBS)
    want = [0.358969, 0.817318, 0.729819, 0.999882, 0.983511, 0.358969, 0.946367, 0.581645]
    torch.testing.assert_close(u, torch.tensor(want, dtype=D64), atol=1e-6, rtol=0)
    h, k, un, per = universal_da_scores(PROBS, LABELS, [0, 1], 3, threshold=0.55)
    assert h == pytest.approx(0.666659, abs=1e-6)
    assert k == pytest.approx(0.499998, abs=1e-6)
    assert un == pytest.approx(0.999998, abs=1e-6)
    assert per == pytest.approx([0.499998, 0.499998, 0.999998], abs=1e-6)


def test_golden_knn_consensus() -> None:
    f, p = _bank()
    bank = FeatureBank(f, p)
    assert bank.neighbours(f[:2], 2).tolist() == [[1, 2], [0, 2]]
    loss = knn_consensus_loss(p[:2], f[:2], f, p, k=2)
    assert float(loss) == pytest.approx(1.10684, abs=1e-5)


# --------------------------------------------------------------------------- pseudo-labels
@pytest.mark.parametrize("coeff", [0.5, 1.0, 2.0])
def test_targets_are_scaled_one_hot_or_uniform(coeff: float) -> None:
    g = torch.Generator().manual_seed(1)
    f, p = torch.randn(90, 6, generator=g, dtype=D64), torch.randn(90, 4, generator=g, dtype=D64).softmax(1)
    t, unknown = one_vs_all_pseudo_labels(f, p, coeff)
    c = p.shape[1]
    one_hot = (t > 0).sum(1) == 1
    assert bool((one_hot | unknown).all()) and not bool((one_hot & unknown).any())
    torch.testing.assert_close(t[one_hot].max(1).values, torch.full((int(one_hot.sum()),), 1 / (1 + 1e-4), dtype=D64))
    torch.testing.assert_close(t[unknown], torch.full((int(unknown.sum()), c), 1 / (c + 1e-4), dtype=D64))


def test_separated_clusters_shared_labelled_private_unknown() -> None:
    f, p, private = _clusters()
    # 5 target categories for 3 source classes: coeff 5/3 gives n_pos = N / C / coeff = one cluster
    t, unknown = one_vs_all_pseudo_labels(f, p, coeff=5 / 3, rho=0.75)
    assert torch.equal(unknown, private)
    y = torch.arange(5).repeat_interleave(40)
    assert torch.equal(t[~private].argmax(1), y[~private])


def test_rho_monotone() -> None:
    g = torch.Generator().manual_seed(2)
    f = torch.rand(120, 6, generator=g, dtype=D64) + 0.1  # positive features: positive similarities
    p = torch.randn(120, 4, generator=g, dtype=D64).softmax(1)
    counts = [int(one_vs_all_pseudo_labels(f, p, 1.0, rho=r)[1].sum()) for r in (0.0, 0.5, 0.75, 1.0)]
    assert counts == sorted(counts, reverse=True)
    # rho = 1 removes the prior: the same labels as a prior of exactly 1
    t1, _ = one_vs_all_pseudo_labels(f, p, 1.0, rho=1.0)
    assert torch.equal(t1, one_vs_all_pseudo_labels(f * 3.0, p, 1.0, rho=1.0)[0])  # scale-free (normalised)


def test_custom_kmeans_fn_and_kk_guard() -> None:
    f, p, _ = _clusters()
    calls: list[int] = []

    def first_k(x: np.ndarray, k: int, seed: int) -> np.ndarray:
        calls.append(k)
        return x[:k]

    one_vs_all_pseudo_labels(f, p, coeff=1.0, kmeans_fn=first_k)
    assert calls == [3, 3, 3]
    with pytest.raises(ValueError, match="leaves no negative samples"):  # int(3 * 0.1) = 0 clusters
        one_vs_all_pseudo_labels(f, p, coeff=0.1, kmeans_fn=first_k)


def test_pseudo_labels_bad_input() -> None:
    f, p, _ = _clusters()
    with pytest.raises(ValueError, match="coeff"):
        one_vs_all_pseudo_labels(f, p, coeff=0.0)
    with pytest.raises(ValueError, match="rho"):
        one_vs_all_pseudo_labels(f, p, coeff=1.0, rho=1.5)
    with pytest.raises(ValueError, match="features must have one row per row of probs"):
        one_vs_all_pseudo_labels(f[:-1], p, coeff=1.0)
    with pytest.raises(ValueError, match="probs must be probabilities"):
        one_vs_all_pseudo_labels(f, p * 2, coeff=1.0)
    with pytest.raises(ValueError, match="NaN"):
        one_vs_all_pseudo_labels(f.clone().fill_(float("nan")), p, coeff=1.0)
    with pytest.raises(ValueError, match="larger than the number of negative samples"):
        one_vs_all_pseudo_labels(f[:6], p[:6].clone(), coeff=2.0)
    with pytest.raises(ValueError, match="empty"):
        one_vs_all_pseudo_labels(f[:0], p[:0], coeff=1.0)


def test_estimate_category_ratio_finds_cluster_count() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(6, dtype=D64) * 10
    f = centres.repeat_interleave(30, 0) + 0.3 * torch.randn(180, 6, generator=g, dtype=D64)
    # 6 clusters, 3 source classes: coeff 2 (int(3 * 2) = 6 clusters)
    assert estimate_category_ratio(f, 3, tsne_iter=250) == 2.0
    with pytest.raises(ValueError, match="not smaller than the number of samples"):
        estimate_category_ratio(f[:8], 3, tsne_iter=250)
    with pytest.raises(ValueError, match="n_source_classes"):
        estimate_category_ratio(f, 0)


# --------------------------------------------------------------------------- k-NN consensus
def test_knn_targets_convex_and_update_does_not_change_loss() -> None:
    f, p = _bank()
    bank = FeatureBank(f, p)
    q = torch.randn(2, 3, dtype=D64).softmax(1)
    nn_idx = bank.neighbours(f[:2], 2)
    t = bank.probs[nn_idx].mean(1)
    torch.testing.assert_close(t.sum(1), torch.ones(2, dtype=D64))
    before = KNNConsensusLoss(2)(q, f[:2], FeatureBank(f, p))
    with_update = KNNConsensusLoss(2)(q, f[:2], bank, index=torch.tensor([0, 1]))
    torch.testing.assert_close(before, with_update)
    torch.testing.assert_close(bank.probs[:2], q)  # rows overwritten after the loss
    torch.testing.assert_close(KNNConsensusLoss(2)(q, f[:2], FeatureBank(f, p)), pseudo_label_loss(q, t))


def test_knn_gradient_only_through_predictions() -> None:
    f, p = _bank()
    q = torch.randn(2, 3, dtype=D64, requires_grad=True)
    feats = f[:2].clone().requires_grad_(True)
    KNNConsensusLoss(2)(q.softmax(1), feats, FeatureBank(f, p)).backward()
    assert q.grad is not None and feats.grad is None
    assert torch.autograd.gradcheck(
        lambda z: knn_consensus_loss(z.softmax(1), f[:2], f, p, 2), (q.detach().clone().requires_grad_(True),)
    )


def test_knn_bad_input() -> None:
    f, p = _bank()
    with pytest.raises(ValueError, match="k must be"):
        KNNConsensusLoss(0)
    with pytest.raises(ValueError, match="larger than the number of bank samples"):
        knn_consensus_loss(p[:2], f[:2], f, p, k=6)
    with pytest.raises(ValueError, match="index must lie in"):
        KNNConsensusLoss(2)(p[:2], f[:2], FeatureBank(f, p), index=torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="same number of rows"):
        FeatureBank(f, p[:3])


def test_glc_loss_combines_terms() -> None:
    f, p = _bank()
    q = torch.randn(2, 3, dtype=D64).softmax(1)
    t = torch.eye(3, dtype=D64)[:2]
    want = 0.3 * pseudo_label_loss(q, t) + knn_consensus_loss(q, f[:2], f, p, 2)
    got = glc_loss(q, f[:2], t, FeatureBank(f, p), None, 0.3, 1.0, 2)
    torch.testing.assert_close(got, want)


# --------------------------------------------------------------------------- rejection and metrics
def test_entropy_rejection_and_bad_threshold() -> None:
    pred, u = entropy_rejection(PROBS, 0.55)
    assert pred.tolist() == [0, 3, 3, 3, 3, 1, 3, 3]
    assert torch.equal(entropy_rejection(PROBS, 1.0)[0], PROBS.argmax(1))
    with pytest.raises(ValueError, match="threshold"):
        entropy_rejection(PROBS, 1.5)


def test_h_score_bounds_and_closed_set() -> None:
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        p = torch.randn(50, 4, generator=g, dtype=D64).mul(3).softmax(1)
        y = torch.randint(0, 5, (50,), generator=g)
        h, k, u, _ = universal_da_scores(p, y, [0, 1, 2, 3], 4)
        assert h <= min(2 * k, 2 * u) + 1e-12
    sure = torch.eye(4, dtype=D64)[[0, 1, 2, 3]] * 0.97 + 0.0075
    h, k, u, _ = universal_da_scores(sure, torch.tensor([0, 1, 4, 4]), [0, 1], 4)  # no sample rejected
    assert u == 0.0 and h == 0.0
    h, k, u, per = universal_da_scores(PROBS, torch.tensor([0, 0, 1, 0, 0, 1, 0, 2]), [0, 1, 2], 3, open_set=False)
    assert k == pytest.approx(float((PROBS.argmax(1) == torch.tensor([0, 0, 1, 0, 0, 1, 0, 2])).double().mean()))
    assert h == 0.0 and u == 0.0


def test_scores_bad_input() -> None:
    with pytest.raises(ValueError, match="labels must have shape"):
        universal_da_scores(PROBS, LABELS[:-1], [0, 1], 3)
    with pytest.raises(ValueError, match="known_classes"):
        universal_da_scores(PROBS, LABELS, [0, 5], 3)
    with pytest.raises(ValueError, match="unknown_label"):
        universal_da_scores(PROBS, LABELS, [0, 1], -1)
    with pytest.raises(TypeError, match="labels must be an integer"):
        universal_da_scores(PROBS, LABELS.double(), [0, 1], 3)


# --------------------------------------------------------------------------- trainers
def _net(seed: int = 0) -> UniDANet:
    torch.manual_seed(seed)
    return UniDANet(nn.Sequential(nn.Linear(8, 16), nn.ReLU()), 16, 3, bottleneck=8)


def test_train_source_and_adapt_glc_small() -> None:
    torch.manual_seed(0)
    f, _, private = _clusters(n_per=20, noise=0.3)
    y = torch.arange(5).repeat_interleave(20)
    x, known = f.float(), y < 3
    model = _net()
    losses = train_source(model, x[known], y[known], epochs=15, lr=0.05, batch_size=16)
    assert losses[-1] < losses[0]
    w_before = [p.detach().clone() for p in model.classifier.parameters()]
    seen: list[float] = []
    hist = adapt_glc(
        model, x, GLCConfig(epochs=2, lr=0.01, batch_size=16, coeff=1.0), on_epoch_end=lambda m: seen.append(1.0)
    )
    assert hist.coeff == 1.0 and len(hist.losses) == 2 and len(hist.unknown_fraction) == 2 and seen == [1.0, 1.0]
    for a, b in zip(w_before, model.classifier.parameters()):
        assert torch.equal(a, b)  # the classifier stays frozen
    feats, probs = predict(model, x)
    assert feats.shape == (100, 8) and torch.allclose(probs.sum(1), torch.ones(100))


def test_adapt_glc_bad_input() -> None:
    with pytest.raises(ValueError, match="lambda_psd and lambda_knn are both 0"):
        GLCConfig(lambda_psd=0.0, lambda_knn=0.0)
    with pytest.raises(ValueError, match="rho"):
        GLCConfig(rho=-0.1)
    with pytest.raises(ValueError, match="batch_size = 64 is larger than the number of target samples"):
        adapt_glc(_net(), torch.randn(10, 8), GLCConfig(coeff=1.0))
    with pytest.raises(ValueError, match="NaN"):
        adapt_glc(_net(), torch.full((100, 8), math.nan), GLCConfig(coeff=1.0))
