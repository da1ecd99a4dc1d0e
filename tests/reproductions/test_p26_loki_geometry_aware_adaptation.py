"""Paper-26 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the synthetic grid label space, the WordNet tree over the Fashion-MNIST classes, the
rules' scoring; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p26_loki_geometry_aware_adaptation as p26

from .conftest import skip_unless_data


def test_registered() -> None:
    assert available()[26] == "paperzoo.reproductions.p26_loki_geometry_aware_adaptation"
    assert p26.PAPER == 26 and set(p26.DATA) <= set(dataset_status())
    assert len(p26.FASHION_WORDS) == 10


def test_grid_task_shapes_and_observed_only_training() -> None:
    cfg = p26.SMOKE
    t = p26.grid_task(np.random.default_rng(0), cfg)
    n = cfg.grid_side**2
    assert t["positions"].shape == (n, 2) and t["emb"].shape == (n, cfg.grid_dim)
    assert len(t["observed"]) == cfg.grid_observed and len(set(t["observed"].tolist())) == cfg.grid_observed
    assert set(np.unique(t["y_tr"]).tolist()) == set(t["observed"].tolist())
    assert np.bincount(t["y_te"]).tolist() == [cfg.grid_test] * n
    again = p26.grid_task(np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(again["x_tr"], t["x_tr"])


def test_rules_on_perfect_probabilities() -> None:
    # one-hot probabilities on the true (observed) class: both rules are exact on observed classes
    sq = np.array([[abs(i - j) ** 2 for j in range(4)] for i in range(4)], dtype=float)
    observed = np.array([0, 3])
    y = np.array([0, 3, 1])
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    out = p26._rules(probs, observed, y, sq, {"true": sq})
    assert out["argmax"][p26.ACC] == pytest.approx(2 / 3) and out["argmax"][p26.LOCUS] == 2
    assert out["true"][p26.ED2] == pytest.approx(0.0) and out["true"][p26.ACC_UNOBS] == 1.0
    assert out["true"][p26.LOCUS] == 4.0


def test_wordnet_tree_of_fashion_classes() -> None:
    skip_unless_data(p26)
    from paperzoo.data.wordnet_tree import FASHION_MNIST_SYNSETS, wordnet_tree_sq_distances

    d = np.sqrt(wordnet_tree_sq_distances(list(FASHION_MNIST_SYNSETS.values())))
    names = list(FASHION_MNIST_SYNSETS)
    i = {n: k for k, n in enumerate(names)}
    assert d[i["T-shirt/top"], i["Shirt"]] == 1  # a T-shirt is a shirt
    assert d[i["Sandal"], i["Sneaker"]] == 2  # both shoes
    assert d[i["Sneaker"], i["Ankle boot"]] < d[i["Sneaker"], i["Trouser"]] < d[i["Sneaker"], i["Bag"]]
    np.testing.assert_array_equal(d, d.T)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    skip_unless_data(p26)
    result = p26.run(smoke=False, out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "26-loki-geometry-aware-adaptation"
    assert result.table.methods == list(p26.METHODS) and len(result.claims) == 7
    assert set(result.extra["all_observed"]) == set(p26.ALL_RULES)
    assert result.table.mean(p26.G_LOKI, p26.ED2) < result.table.mean(p26.G_ARGMAX, p26.ED2)
