"""Checks specific to the reproduction of paper 8 (UNPG): the unseen-class split, the verification
metrics on a known case, the methods' losses and one slow full run. The shared checks come from
``test_suite.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from paperzoo.reproductions import p08_unpg_unified_negative_pair_generation as rep


def test_split_holds_out_classes(require_data: Any) -> None:
    require_data(rep)
    split = rep.make_split(rep.SMOKE)
    assert set(split.y_train.tolist()) == set(range(20)) and set(split.y_test.tolist()) == set(range(10))
    assert split.x_train.shape[1] == split.x_test.shape[1] == 1280


def test_verification_metrics_known_cases() -> None:
    labels = torch.arange(4).repeat_interleave(6)
    perfect = torch.nn.functional.one_hot(labels, 8).float() + 0.01 * torch.randn(24, 8)
    m = rep.verification_metrics(perfect, labels)
    assert m[rep.TAR3] == 1.0 and m[rep.EER] == 0.0 and m[rep.R1] == 1.0
    scores, same = np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 0, 1, 0])
    assert rep.tar_at_far(scores, same, 1e-3) == 0.5  # only the top genuine pair beats every impostor


def test_methods_build_their_losses() -> None:
    from pytorch_metric_learning.losses import ArcFaceLoss

    from paperzoo.losses import UNPGArcFaceLoss

    emb, labels = torch.randn(16, 64), torch.randint(0, 20, (16,))
    for method in rep.METHODS:
        loss = rep.make_loss(method, rep.FULL)
        assert torch.isfinite(loss(emb, labels))
    assert type(rep.make_loss(rep.ARC, rep.FULL)) is ArcFaceLoss
    assert rep.make_loss(rep.ARC_UNPG_NOFILTER, rep.FULL).wisk == float("inf")
    assert isinstance(rep.make_loss(rep.ARC_UNPG, rep.FULL), UNPGArcFaceLoss)


@pytest.mark.slow
def test_full_run(tmp_path: Path, require_data: Any) -> None:
    require_data(rep)
    result = rep.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.table.methods == list(rep.METHODS) and result.table.metrics == rep.METRICS
    assert len(result.claims) == 4
