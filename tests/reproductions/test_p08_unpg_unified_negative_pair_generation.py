"""Checks specific to the reproduction of paper 8 (UNPG): the unseen-class split of both settings
(frozen EfficientNet-Lite0 features, raw images for the from-scratch ConvNet), the verification metrics
on a known case, the methods' losses and models, and one slow full run. The shared checks come from
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
    eff, scratch = rep.make_split(rep.SMOKE, rep.EFFNET), rep.make_split(rep.SMOKE, rep.SCRATCH)
    for split in (eff, scratch):
        assert set(split.y_train.tolist()) == set(range(20)) and set(split.y_test.tolist()) == set(range(10))
    assert eff.x_train.shape[1] == eff.x_test.shape[1] == 1280
    assert scratch.x_train.shape[1:] == scratch.x_test.shape[1:] == (1, 28, 28)
    # the same images, in the same order, in both settings
    assert torch.equal(eff.y_train, scratch.y_train) and torch.equal(eff.y_test, scratch.y_test)
    assert abs(float(scratch.x_train.mean())) < 1e-4 and abs(float(scratch.x_train.std()) - 1.0) < 1e-3
    with pytest.raises(ValueError, match="setting"):
        rep.make_split(rep.SMOKE, "imagenet")


def test_models_of_both_settings() -> None:
    emb = rep.make_model(rep.SCRATCH, rep.SMOKE)(torch.randn(5, 1, 28, 28))
    assert emb.shape == (5, rep.EMBED_DIM)
    assert torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)
    assert rep.make_model(rep.EFFNET)(torch.randn(5, 1280)).shape == (5, rep.EMBED_DIM)


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
    for method in rep.LOSSES:
        loss = rep.make_loss(method, rep.FULL)
        assert torch.isfinite(loss(emb, labels))
    assert len(rep.METHODS) == 2 * len(rep.LOSSES) and set(rep.BASELINES) <= set(rep.METHODS)
    for method in rep.METHODS:  # the row names carry the setting; the loss is the same
        assert type(rep.make_loss(method, rep.FULL)) is type(rep.make_loss(method.rsplit(" (", 1)[0], rep.FULL))
    assert type(rep.make_loss(rep.ARC, rep.FULL)) is ArcFaceLoss
    assert rep.make_loss(rep.ARC_UNPG_NOFILTER, rep.FULL).wisk == float("inf")
    assert isinstance(rep.make_loss(rep.ARC_UNPG, rep.FULL), UNPGArcFaceLoss)


@pytest.mark.slow
def test_full_run(tmp_path: Path, require_data: Any) -> None:
    require_data(rep)
    result = rep.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.table.methods == list(rep.METHODS) and result.table.metrics == rep.METRICS
    assert len(result.claims) == 8
