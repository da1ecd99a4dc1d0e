"""Paper-22 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the digits split, the model's prunable layers, the MT threshold, one
prune-and-fine-tune unit; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.pruning import GlobalMagnitudePruner
from paperzoo.reproductions import available
from paperzoo.reproductions import p22_global_magnitude_pruning as p22


def test_registered() -> None:
    assert available()[22] == "paperzoo.reproductions.p22_global_magnitude_pruning"
    assert p22.PAPER == 22 and p22.DATA == ()


def test_digits_split_is_the_fixed_stratified_70_30_split() -> None:
    xtr, ytr, xte, yte = p22.digits_split()
    assert xtr.shape == (1257, 64) and xte.shape == (540, 64)
    assert float(xtr.max()) <= 1.0 and float(xtr.min()) >= 0.0
    np.testing.assert_allclose(np.bincount(yte.numpy()) / 540, np.bincount(ytr.numpy()) / 1257, atol=0.01)
    again = p22.digits_split()
    assert torch.equal(again[0], xtr) and torch.equal(again[3], yte)


def test_model_sizes_and_threshold_match_the_protocol() -> None:
    model = p22._model(p22.FULL)
    assert p22._n_weights(model) == 562_176
    mt = p22.pruner_of(p22.MT, 562_176, p22.FULL, seed=0)
    assert isinstance(mt, GlobalMagnitudePruner) and mt.min_weights == 1124
    assert p22.metric_names(p22.FULL) == [
        "one-shot@0.90",
        "fine-tuned@0.90",
        "one-shot@0.95",
        "fine-tuned@0.95",
        "one-shot@0.97",
        "fine-tuned@0.97",
    ]
    with pytest.raises(ValueError, match="unknown method"):
        p22.pruner_of("magic", 10, p22.FULL, 0)


def test_a_finetune_unit_keeps_its_masks_and_reports_layers() -> None:
    cfg = p22.SMOKE
    torch.manual_seed(0)
    state = p22._model(cfg).state_dict()
    out = p22.finetune_unit((0, p22.MT, 0.95, cfg, state))
    t = int(np.floor(cfg.mt_fraction * p22._n_weights(p22._model(cfg))))
    assert out["T"] == t and min(out["kept"]) >= t
    assert sum(out["sizes"]) - sum(out["kept"]) == pytest.approx(0.95 * sum(out["sizes"]), abs=len(out["sizes"]))
    assert 0.0 <= out["one-shot"] <= 1.0 and 0.0 <= out["fine-tuned"] <= 1.0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p22.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "22-global-magnitude-pruning"
    assert result.table.methods == list(p22.METHODS) and result.table.metrics == p22.metric_names(p22.FULL)
    assert len(result.claims) == 7
    assert all(0.0 <= v <= 1.0 for vals in result.table.to_dict().values() for vs in vals.values() for v in vs)
    assert len(result.extra["latency"]) == 3 and result.extra["T"] == 1124
