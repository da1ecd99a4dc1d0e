"""Checks specific to the reproduction of paper 32 (Metrix): the held-out class split, the methods'
objectives and one slow full run. The shared checks come from ``test_suite.py``."""

from __future__ import annotations

import pytest
import torch

from paperzoo.reproductions import p32_metrix_mixup_deep_metric_learning as rep


def test_split_holds_out_classes():
    split = rep.make_split(rep.SMOKE, "img")
    train, test = set(split.y_train.tolist()), set(split.y_test.tolist())
    assert train == set(range(20)) and test == set(range(20, 30))
    assert split.x_train.shape[1:] == (1, 28, 28)


def test_objectives_pair_each_metrix_method_with_its_clean_loss():
    from paperzoo.losses import MetrixLoss

    emb, labels = torch.randn(12, 8), torch.arange(12) // 3
    for new, base in rep.PAIRS:
        obj = rep.make_objective(new)
        metrix = obj.get("compute_loss") or obj["loss_fn"]
        clean = rep.make_objective(base)["loss_fn"]
        inner = metrix.loss if not isinstance(metrix, MetrixLoss) else metrix
        assert isinstance(inner, MetrixLoss)
        assert type(inner.loss) is type(clean)
        torch.testing.assert_close(inner.loss(emb, labels), clean(emb, labels))


@pytest.mark.slow
def test_full_run(tmp_path):
    result = rep.run(out_dir=tmp_path, progress=False, jobs=2)
    assert len(result.seeds) == 3
    for metric in rep.METRICS:
        for method in rep.METHODS:
            assert result.table.mean(method, metric) == result.table.mean(method, metric)  # not NaN
