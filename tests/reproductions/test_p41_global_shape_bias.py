"""Paper-41 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the seed-drawn evaluation sets (triplets, cue-conflict pairs), the small CNN and
its training variants, the frozen-feature units; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p41_global_shape_bias as p41

pytestmark = pytest.mark.skipif(not dataset_status().get("fashion-mnist", False), reason="Fashion-MNIST not installed")


def test_registered() -> None:
    assert available()[41] == "paperzoo.reproductions.p41_global_shape_bias"
    assert p41.PAPER == 41 and set(p41.DATA) <= set(dataset_status())
    assert set(p41.METRICS) == {p41.T4, p41.T7, p41.U4, p41.GRAM, p41.CLEAN, p41.SHAPE}
    # the 7x7 grid is held out of DiSTinguish training
    assert 7 not in p41.TRAIN_GRIDS and 4 in p41.TRAIN_GRIDS


def test_texture_partners_have_another_class() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    partner = p41.texture_partners(labels, np.random.default_rng(0))
    assert (labels[partner] != labels).all()


def test_eval_sets_are_seeded_and_valid() -> None:
    cfg = p41.SMOKE
    a, b, c = p41.eval_sets(cfg, 0), p41.eval_sets(cfg, 0), p41.eval_sets(cfg, 1)
    for name in (p41.T4, p41.T7, p41.U4):
        assert all(torch.equal(u, v) for u, v in zip(a.triplets[name], b.triplets[name]))
        assert not torch.equal(a.triplets[name][1], c.triplets[name][1])  # seeds vary the triplets
        x, d1, d2 = a.triplets[name]
        assert x.shape == d1.shape == d2.shape == (cfg.n_eval, 1, 28, 28)
        assert torch.equal(x.flatten(1).sort().values, d1.flatten(1).sort().values)
    assert (a.cue_shape != a.cue_texture).all() and a.cue.shape == (cfg.n_eval, 1, 28, 28)
    assert 0.0 <= float(a.cue.min()) and float(a.cue.max()) <= 1.0


def test_units_measure_controls_and_trained_models() -> None:
    cfg = p41.SMOKE
    bag = p41.method_unit((p41.BAG3, 0, cfg))["values"]
    assert bag[p41.T4] == pytest.approx(1 / 3) and bag[p41.T7] == pytest.approx(1 / 3)  # the built-in control
    cnn = p41.method_unit((p41.DIST, 0, cfg))
    assert set(cnn["values"]) == set(p41.METRICS)
    assert all(0.0 <= v <= 1.0 for v in cnn["values"].values())
    again = p41.method_unit((p41.DIST, 0, cfg))
    assert again["values"] == cnn["values"]  # a unit repeats exactly


def test_small_cnn_features_are_its_penultimate_layer() -> None:
    torch.manual_seed(0)
    net = p41.SmallCNN(8, 16).eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(p41.penultimate_features(net)(x), torch.relu(net.backbone(x)))


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p41.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "41-global-shape-bias"
    assert len(result.claims) == 9
    # the instrument: the 3x3 local control is exactly at chance, raw pixels near it
    assert max(result.extra["control_3x3_deviation_from_chance"]) < 1e-9
    assert abs(result.table.mean(p41.PIXELS, p41.T4) - 1 / 3) < 0.05


def test_chance_cases_cover_only_the_framed_3x3_control() -> None:
    covered = [(m, t) for m, t, cov in p41.CHANCE_CASES if cov]
    assert covered == [(p41.BAG3, p41.T4), (p41.BAG3, p41.T7)]
    assert all(isinstance(p41.DIST_SETS[t], p41.FramedTileShuffle) and p41.DIST_SETS[t].frame >= 1 for _, t in covered)
    assert 0 < p41.CHANCE_TOL < 1 / 3
