"""Paper-1 specific checks of the reproduction (the shared ones are in test_suite.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from paperzoo.reproductions import p01_proton_prototype_node_gnn_ear_recognition as p01


def test_unseen_identities_are_held_out_of_training(require_data: Any) -> None:
    require_data(p01)
    for setting, shape in ((p01.SCRATCH, (1, 28, 28)), (p01.EFFNET, (1280,))):
        split = p01.load_split(setting, p01.SMOKE)
        assert set(np.unique(split.y_test).tolist()) == set(p01.TEST_CLASSES)
        assert set(np.unique(split.y_train).tolist()) == set(range(20))  # training identities renumbered 0..19
        assert tuple(split.x_train.shape[1:]) == shape and tuple(split.x_test.shape[1:]) == shape


def test_both_settings_share_classes_and_split(require_data: Any) -> None:
    require_data(p01)
    scratch, effnet = (p01.load_split(s, p01.SMOKE) for s in p01.SETTINGS)
    assert np.array_equal(np.unique(scratch.y_train), np.unique(effnet.y_train))
    assert np.array_equal(np.unique(scratch.y_test), np.unique(effnet.y_test))


def test_scratch_model_is_a_convnet_on_raw_images() -> None:
    from paperzoo.models import ConvNet

    model = p01.ProtoNModel(p01.PROTON, 20, p01.SCRATCH, conv_width=4)
    assert isinstance(model.f, ConvNet)
    z = model.embed(torch.randn(6, 1, 28, 28))
    assert z.shape == (6, p01.EMB)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(6))


def test_protonet_prototypes_are_class_means_and_proton_keeps_shapes() -> None:
    z = torch.randn(4, 5, 3, p01.EMB)  # (episodes, way, shot, d)
    _, protos = p01.ProtoNModel(p01.PROTONET, 20).prototypes(z)
    torch.testing.assert_close(protos, z.mean(2))
    h, p = p01.ProtoNModel(p01.PROTON, 20).prototypes(z)
    assert h.shape == z.shape and p.shape == (4, 5, p01.EMB)
    torch.testing.assert_close(p.norm(dim=-1), torch.ones(4, 5))


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p01.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    for setting in p01.SETTINGS:  # far above the 20% chance of 5-way
        assert result.table.mean(p01.row(p01.PROTONET, setting), "5-shot") > 50.0
