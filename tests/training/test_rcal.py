"""Tests of RCAL's calibration pipeline (Zhang et al., ICCV 2023): robust class Gaussians, tail
calibration (golden values from a direct evaluation of the Gaussian calibration rule), sampling,
the contrastive stage's NT-Xent and augmentations, and the per-batch objective."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paperzoo.engine import TrainConfig
from paperzoo.training.rcal import (
    ClassGaussian,
    RCALClassifier,
    RCALObjective,
    calibrate_tail_statistics,
    fit_rcal,
    nt_xent,
    robust_class_gaussians,
    sample_calibrated_features,
    simclr_augment,
    tail_classes,
)

D64 = torch.float64


def _g(mean: list[float], cov: list[list[float]], n: int = 10) -> ClassGaussian:
    return ClassGaussian(torch.tensor(mean, dtype=D64), torch.tensor(cov, dtype=D64), n)


def _golden_stats() -> tuple[dict[int, ClassGaussian], dict[int, int]]:
    # A, B head; T tail (counts: the median is B's, so only T is below it)
    stats = {
        0: _g([0, 0], [[1, 0], [0, 1]]),
        1: _g([4, 0], [[2, 0], [0, 0.5]]),
        2: _g([1, 1], [[0.1, 0], [0, 0.1]]),
    }
    return stats, {0: 100, 1: 90, 2: 10}


# --------------------------------------------------------------------------- calibration
def test_golden_q1() -> None:
    stats, counts = _golden_stats()
    out = calibrate_tail_statistics(stats, counts, q=1, alpha=0.0)
    torch.testing.assert_close(out[2].mean, torch.tensor([0.5, 0.5], dtype=D64))
    torch.testing.assert_close(out[2].cov, torch.tensor([[0.55, 0], [0, 0.55]], dtype=D64))


def test_golden_q2_with_alpha() -> None:
    stats, counts = _golden_stats()
    out = calibrate_tail_statistics(stats, counts, q=2, alpha=0.25)
    torch.testing.assert_close(out[2].mean, torch.tensor([5 / 3, 1 / 3], dtype=D64))
    want = torch.tensor([[1.0333333333, 0], [0, 0.5333333333]], dtype=D64) + 0.25 * torch.eye(2, dtype=D64)
    torch.testing.assert_close(out[2].cov, want)


def test_head_classes_never_change_and_q0_changes_nothing() -> None:
    stats, counts = _golden_stats()
    out = calibrate_tail_statistics(stats, counts, q=2, alpha=0.3)
    for k in (0, 1):
        assert out[k] is stats[k]
    same = calibrate_tail_statistics(stats, counts, q=0, alpha=0.0)
    for k in stats:
        torch.testing.assert_close(same[k].mean, stats[k].mean)
        torch.testing.assert_close(same[k].cov, stats[k].cov)


def test_calibrated_mean_in_hull_and_unchanged_when_heads_coincide() -> None:
    g = torch.Generator().manual_seed(0)
    means = torch.randn(6, 3, generator=g, dtype=D64)
    stats = {k: ClassGaussian(means[k], torch.eye(3, dtype=D64), 5) for k in range(6)}
    counts = {0: 50, 1: 40, 2: 30, 3: 9, 4: 8, 5: 7}
    out = calibrate_tail_statistics(stats, counts, q=2)
    for k in (3, 4, 5):
        near = torch.cdist(means[k : k + 1], means[:3])[0].argsort()[:2]
        # a convex combination with weights 1/3 each of the tail mean and its two nearest heads
        torch.testing.assert_close(out[k].mean, (means[k] + means[near].sum(0)) / 3)
    same = {0: stats[3], 1: stats[3], 2: stats[2]}
    fixed = calibrate_tail_statistics(same, {0: 50, 1: 40, 2: 3}, q=2)
    torch.testing.assert_close(fixed[2].mean, (stats[2].mean + 2 * stats[3].mean) / 3)
    flat = {0: stats[3], 1: stats[3], 2: stats[3]}
    torch.testing.assert_close(calibrate_tail_statistics(flat, {0: 50, 1: 40, 2: 3}, q=2)[2].mean, stats[3].mean)


def test_tail_classes_threshold() -> None:
    assert tail_classes({0: 100, 1: 90, 2: 10}) == [2]
    assert tail_classes([5, 50, 20, 1], tail_threshold=21.0) == [0, 2, 3]
    with pytest.raises(ValueError, match="tail_threshold"):
        tail_classes([1, 2], tail_threshold="mean")


# --------------------------------------------------------------------------- robust estimates
def test_sample_statistics_without_outlier_removal() -> None:
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(60, 3, generator=g, dtype=D64), torch.arange(60) % 3
    stats = robust_class_gaussians(z, y, contamination=None, ridge=0.0)
    out = calibrate_tail_statistics(stats, [20, 20, 20], q=0)
    for k in range(3):
        pts = z[y == k]
        torch.testing.assert_close(out[k].mean, pts.mean(0))
        torch.testing.assert_close(out[k].cov, torch.cov(pts.T))
        assert out[k].n_kept == 20


def test_lof_removes_three_far_points() -> None:
    g = torch.Generator().manual_seed(2)
    cluster = 0.1 * torch.randn(60, 2, generator=g, dtype=D64)
    far = torch.tensor([[8.0, 8.0], [-9.0, 7.0], [10.0, -8.0]], dtype=D64)
    z, y = torch.cat([cluster, far]), torch.zeros(63, dtype=torch.long)
    stats = robust_class_gaussians(z, y, contamination=3 / 63, ridge=0.0)
    assert stats[0].n_kept == 60
    torch.testing.assert_close(stats[0].mean, cluster.mean(0))


def test_covariances_spd_and_tiny_classes_sample() -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(42, 8, generator=g, dtype=D64)
    y = torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(2, dtype=torch.long)])  # class 1: |S_k| = 2
    stats = calibrate_tail_statistics(robust_class_gaussians(z, y), {0: 40, 1: 2}, q=1)
    for s in stats.values():
        torch.testing.assert_close(s.cov, s.cov.T)
        assert float(torch.linalg.eigvalsh(s.cov).min()) > 0
    zs, ys = sample_calibrated_features(stats, {0: 40, 1: 2}, generator=torch.Generator().manual_seed(0))
    assert zs.shape == (38, 8) and bool((ys == 1).all()) and bool(torch.isfinite(zs).all())


def test_sampled_moments_match() -> None:
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=D64)
    a = torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [-0.3, 0.2, 0.7]], dtype=D64)
    cov = a @ a.T
    stats = {0: ClassGaussian(mean, cov, 5), 1: ClassGaussian(mean, cov, 5)}
    zs, ys = sample_calibrated_features(stats, {0: 100_000, 1: 0}, generator=torch.Generator().manual_seed(0))
    assert zs.shape == (100_000, 3) and bool((ys == 1).all())
    assert float((zs.mean(0) - mean).abs().max()) < 0.02
    assert float(((torch.cov(zs.T) - cov).abs() / cov.abs().max()).max()) < 0.02


def test_sampling_counts_and_reproducible() -> None:
    stats, _ = _golden_stats()
    counts = {0: 100, 1: 90, 2: 10}
    zs, ys = sample_calibrated_features(stats, counts, generator=torch.Generator().manual_seed(5))
    assert torch.bincount(ys, minlength=3).tolist() == [0, 10, 90]
    again, _ = sample_calibrated_features(stats, counts, generator=torch.Generator().manual_seed(5))
    assert torch.equal(zs, again)
    zs2, ys2 = sample_calibrated_features(stats, counts, target=120)
    assert torch.bincount(ys2, minlength=3).tolist() == [20, 30, 110]


def test_bad_inputs_name_the_argument() -> None:
    z, y = torch.randn(10, 2), torch.arange(10) % 2
    with pytest.raises(ValueError, match="z must have shape"):
        robust_class_gaussians(z[:, 0], y)
    with pytest.raises(ValueError, match="empty batch"):
        robust_class_gaussians(z[:0], y[:0])
    with pytest.raises(ValueError, match="y must have shape"):
        robust_class_gaussians(z, y[:5])
    with pytest.raises(ValueError, match="y must be non-negative"):
        robust_class_gaussians(z, y - 1)
    bad = z.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="z contains NaN"):
        robust_class_gaussians(bad, y)
    with pytest.raises(ValueError, match="contamination"):
        robust_class_gaussians(z, y, contamination=0.9)
    with pytest.raises(ValueError, match="ridge"):
        robust_class_gaussians(z, y, ridge=-1.0)
    stats, _ = _golden_stats()
    with pytest.raises(ValueError, match="counts must give a size"):
        calibrate_tail_statistics(stats, {0: 1, 1: 2})
    with pytest.raises(ValueError, match="q must be"):
        calibrate_tail_statistics(stats, [1, 2, 3], q=-1)
    with pytest.raises(ValueError, match="target"):
        sample_calibrated_features(stats, [1, 2, 3], target="min")


# --------------------------------------------------------------------------- contrastive stage
def test_nt_xent_matches_pytorch_metric_learning() -> None:
    from pytorch_metric_learning.losses import NTXentLoss

    g = torch.Generator().manual_seed(4)
    e = torch.randn(12, 5, generator=g, dtype=D64)
    labels = torch.arange(6).repeat(2)
    for t in (0.1, 0.5):
        torch.testing.assert_close(nt_xent(e, t), NTXentLoss(temperature=t)(e, labels))
    with pytest.raises(ValueError, match="embeddings must have shape"):
        nt_xent(e[:5])


def test_simclr_augment_shapes_and_shift() -> None:
    x = torch.rand(5, 784)
    out = simclr_augment(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    img = torch.zeros(1, 1, 28, 28)
    img[0, 0, 10, 10] = 1.0
    shifted = simclr_augment(img, max_shift=2, noise=0.0, erase=0, generator=torch.Generator().manual_seed(1))
    r, c = divmod(int(shifted.flatten().argmax()), 28)
    assert abs(r - 10) <= 2 and abs(c - 10) <= 2 and float(shifted.sum()) == 1.0
    same = simclr_augment(img, max_shift=0, noise=0.0, erase=0)
    assert torch.equal(same, img)


# --------------------------------------------------------------------------- objective
def test_objective_limits_and_fit_rcal_runs() -> None:
    torch.manual_seed(0)
    enc = nn.Linear(6, 4)
    model = RCALClassifier(enc, 4, 3)
    x, y = torch.randn(30, 6), torch.arange(30) % 3
    z = enc(x).detach()
    # no mixup, no synthetic pool, at the frozen representation: plain cross-entropy
    plain = RCALObjective(beta=1.0, mixup_alpha=0.0)(model, (x, y, z))
    torch.testing.assert_close(plain, nn.functional.cross_entropy(model(x), y))
    zs, ys = torch.randn(9, 4), torch.full((9,), 2)
    with_syn = RCALObjective(zs, ys, beta=0.0, mixup_alpha=0.0, syn_batch_size=5)(model, (x, y, z))
    assert float(with_syn.detach()) > float(plain.detach())
    with pytest.raises(ValueError, match="give both z_syn and y_syn"):
        RCALObjective(zs, None)
    y_lt = torch.cat([torch.zeros(20), torch.ones(7), torch.full((3,), 2)]).long()
    res = fit_rcal(
        model, x, y_lt, torch.optim.SGD(model.parameters(), lr=0.01),
        TrainConfig(epochs=1, seed=0, progress=False), batch_size=8, lof_neighbors=5,
    )  # fmt: skip
    assert res.tails == [2] and res.n_synthetic == 13 + 17
    assert len(res.history.losses) == 4 and all(torch.isfinite(torch.tensor(res.history.losses)))
