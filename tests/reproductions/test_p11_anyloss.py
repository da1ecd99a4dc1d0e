"""Paper-11 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the imbalanced data, the folds, the batch loader, the hard metrics and the
baselines' losses; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperzoo.reproductions import available, p11_anyloss


def test_registered() -> None:
    assert available()[11] == "paperzoo.reproductions.p11_anyloss"
    assert p11_anyloss.PAPER == 11 and p11_anyloss.DATA == ()


def test_data_is_imbalanced_and_seeded() -> None:
    cfg = p11_anyloss.FULL
    x, y = p11_anyloss.make_data(cfg, 0)
    assert x.shape == (4000, 20) and x.dtype == np.float32 and set(np.unique(y)) == {0, 1}
    assert 0.04 < y.mean() < 0.07  # 5% positives plus 1% random flips
    again, _ = p11_anyloss.make_data(cfg, 0)
    other, _ = p11_anyloss.make_data(cfg, 1)
    assert np.array_equal(x, again) and not np.array_equal(x, other)


def test_folds_are_stratified_and_partition_the_data() -> None:
    _, y = p11_anyloss.make_data(p11_anyloss.FULL, 0)
    folds = p11_anyloss.folds(y, 5, 0)
    test = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(test), np.arange(len(y)))
    for tr, te in folds:
        assert not set(tr) & set(te)
        assert abs(y[te].mean() - y.mean()) < 0.01


def test_batch_loader_covers_each_sample_once_per_epoch_and_reshuffles() -> None:
    x, y = torch.arange(23.0)[:, None], torch.arange(23.0)
    loader = p11_anyloss.batch_loader(x, y, 5, seed=3)
    assert len(loader) == 5
    first = torch.cat([b[1] for b in loader])
    loader.sampler.set_epoch(1)
    second = torch.cat([b[1] for b in loader])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(23))
    assert not torch.equal(first, second)


def test_hard_metrics() -> None:
    y = np.array([1, 1, 0, 0, 0, 0])
    pred = np.array([1, 0, 1, 0, 0, 0])
    m = p11_anyloss.hard_metrics(y, pred)
    assert m["F1"] == pytest.approx(0.5) and m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced acc."] == pytest.approx((0.5 + 0.75) / 2) and m["G-mean"] == pytest.approx(np.sqrt(0.375))
    assert p11_anyloss.hard_metrics(y, np.zeros(6, dtype=int))["F1"] == 0.0  # all-negative: F1 = 0, no error


def test_wbce_uses_batch_class_weights() -> None:
    out, y = torch.randn(10, 1, dtype=torch.float64), torch.tensor([1.0, 1.0] + [0.0] * 8, dtype=torch.float64)
    w = torch.where(y > 0, 0.8, 0.2)  # w1 = y0/N, w0 = y1/N
    expected = (w * F.binary_cross_entropy_with_logits(out[:, 0], y, reduction="none")).mean()
    torch.testing.assert_close(p11_anyloss._BinaryLoss(p11_anyloss.WBCE)(out, y), expected)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p11_anyloss.run(out_dir=tmp_path, progress=False, jobs=2)
    assert len(result.seeds) == 3 and len(result.claims) == 5
    assert result.table.mean(p11_anyloss.BCE, "accuracy") > 0.9
