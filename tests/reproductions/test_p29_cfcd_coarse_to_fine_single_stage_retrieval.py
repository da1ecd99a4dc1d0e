"""Paper-29 specific checks of the reproduction (the shared ones are in test_suite.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from paperzoo.reproductions import p29_cfcd_coarse_to_fine_single_stage_retrieval as p29


def test_mean_average_precision_closed_form() -> None:
    # two tight, well-separated classes: perfect ranking -> mAP 1
    emb = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    labels = torch.tensor([0, 0, 1, 1])
    assert p29.mean_average_precision(emb, labels) == pytest.approx(1.0)
    # worst ranking: the only same-class item ranked last of 3 -> AP = 1/3 for every query
    emb = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert p29.mean_average_precision(emb, labels) == pytest.approx(1 / 3)


def test_heads_and_losses_build() -> None:
    head = p29.make_head()
    assert head(torch.randn(4, 1280)).shape == (4, p29.EMB_DIM)
    for method in p29.METHODS:
        loss = p29.make_loss(method, 20)
        assert torch.isfinite(loss(torch.randn(8, p29.EMB_DIM), torch.arange(8) % 20))
    with pytest.raises(KeyError):
        p29.make_loss("nope", 20)


def test_split_holds_out_the_unseen_classes(require_data: Any) -> None:
    require_data(p29)
    split = p29.load_split(p29.SMOKE)
    assert set(split.y_test.tolist()) == set(p29.TEST_CLASSES)
    assert set(split.y_train.tolist()) == set(range(20))
    assert split.x_train.shape[1] == 1280


def test_madacos_unit_logs_scale_and_margin(require_data: Any) -> None:
    require_data(p29)
    out = p29.run_effnet_unit(p29.Unit(p29.MADACOS, 0, p29.SMOKE))
    assert len(out["scale"]) == len(out["margin"]) == p29.SMOKE.steps
    assert min(out["scale"]) >= 32.0 and min(out["margin"]) >= 0.0
    assert 0.0 <= out["mAP"] <= 1.0 and np.isfinite(out["final_loss"])


def test_build_tuples_structure() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 6)
    predicted = labels.copy()
    predicted[[6, 7, 8]] = 0  # three images of class 1 predicted as class 0: false positives of class 0
    predicted[0] = 2  # a mis-classified anchor candidate of class 0
    tuples = p29.build_tuples(labels, predicted, 200, rng)
    assert tuples.shape == (200, p29.TUPLE_SIZE)
    assert (labels[tuples[:, 0]] == labels[tuples[:, 1]]).all() and (tuples[:, 0] != tuples[:, 1]).all()
    assert (labels[tuples[:, 2:]] != labels[tuples[:, :1]]).all()
    class0 = tuples[labels[tuples[:, 0]] == 0]
    assert np.isin(class0[:, 2:], [6, 7, 8]).mean() > 0.2  # hard negatives are drawn for class 0
    wrong = tuples[tuples[:, 0] == 0]
    if len(wrong):  # a mis-classified anchor gets a correctly classified positive
        assert (predicted[wrong[:, 1]] == 0).all()


def test_scratch_net_and_gem() -> None:
    net = p29.ScratchNet(width=4, num_classes=20)
    emb, fmap = net(torch.rand(16, 1, 28, 28))
    assert emb.shape == (16, p29.EMB_DIM) and fmap.shape == (16, 16, 7, 7)
    gem = p29.GeM(3.0)
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(gem(x), x.pow(3).mean((2, 3)).pow(1 / 3))
    assert torch.allclose(p29.GeM(1.0)(x), x.mean((2, 3)))


def test_scratch_unit_smoke(require_data: Any) -> None:
    require_data(p29)
    out = p29.run_scratch_unit(p29.ScratchUnit(0, p29.S_SMOKE))
    for name in (p29.COARSE, p29.FINE):
        assert set(out[name]) == set(p29.METRICS) and 0.0 <= out[name]["mAP"] <= 1.0
    assert out["stage1_scale_last"] >= 32.0 and out["matches_per_tuple"] >= 0.0


@pytest.mark.slow
def test_full_run(tmp_path: Path, require_data: Any) -> None:
    require_data(p29)
    result = p29.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.table.methods == list(p29.ROWS) and result.table.metrics == p29.METRICS
    assert len(result.claims) == 6
