"""Paper-52 specific checks of the reproduction (the shared ones are in test_suite.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from paperzoo.models.superglobal import GeMPlus
from paperzoo.reproductions import p52_superglobal_global_features_retrieval_reranking as p52


def test_mean_ap_closed_form() -> None:
    y_gallery = torch.tensor([0, 1, 0, 1])
    ranks = torch.tensor([[0, 1, 2, 3], [1, 3, 0, 2]])
    m_ap, r1 = p52.mean_ap(ranks, torch.tensor([0, 0]), y_gallery)
    # query 0: relevant at ranks 1 and 3 -> (1 + 2/3) / 2; query 1: at 3 and 4 -> (1/3 + 2/4) / 2
    assert m_ap == pytest.approx(((1 + 2 / 3) / 2 + (1 / 3 + 2 / 4) / 2) / 2)
    assert r1 == 0.5


def test_union30_split_holds_out_ten_classes(require_data: Any) -> None:
    require_data(p52)
    x_train, y_train, x_test, y_test = p52._union30(p52.SMOKE)
    assert set(y_train.tolist()) == set(range(20))
    assert set(y_test.tolist()) == {c for c in range(30) if c % 3 == 2}
    assert x_train.shape[1:] == (1, 28, 28) and len(x_test) == 10 * p52.SMOKE.per_class


def test_net_descriptor_variants_are_unit_vectors() -> None:
    model = p52.Net(4)
    x = torch.rand(5, 1, 28, 28)
    assert model.trunk(x).shape == (5, 16, 7, 7)
    for regional, scales in ((False, (1.0,)), (True, (1.0,)), (True, p52.SCALES)):
        d = p52.descriptors(model, x, GeMPlus(4.6), regional, scales)
        torch.testing.assert_close(d.norm(dim=1), torch.ones(5))


@pytest.mark.slow
def test_full_run(tmp_path: Path, require_data: Any) -> None:
    require_data(p52)
    result = p52.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.methods == list(p52.METHODS) and result.table.metrics == p52.METRICS
    assert len(result.claims) == 7
