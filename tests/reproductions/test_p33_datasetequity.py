"""Paper-33 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the planted rare appearance of the training set, the disjoint test digits, the
methods' weighting, the oracle likelihood; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p33_datasetequity as p33

from .conftest import skip_unless_data


def test_registered_and_methods() -> None:
    assert available()[33] == "paperzoo.reproductions.p33_datasetequity"
    assert p33.PAPER == 33 and set(p33.DATA) <= set(dataset_status())
    assert set(p33.WEIGHTING) == set(p33.METHODS) and p33.WEIGHTING[p33.CE] is None
    lik = {"tsne_dbscan": np.full(3, 0.2), "kmeans": np.full(3, 0.4), "oracle": np.full(3, 0.6)}
    assert p33._unit(p33.CE, 0, p33.SMOKE, lik)[3:] == (None, 1.0)
    method, seed, cfg, p, eta = p33._unit(p33.DE_REF_HALF, 1, p33.SMOKE, lik)
    assert (method, seed, cfg, eta) == (p33.DE_REF_HALF, 1, p33.SMOKE, 0.5) and p is lik["tsne_dbscan"]
    assert p33._unit(p33.DE_ORACLE, 1, p33.SMOKE, lik)[3] is lik["oracle"]


@pytest.fixture(scope="module")
def pools() -> p33.Pools:
    skip_unless_data(p33)
    return p33.build_pools(p33.SMOKE)


def _rows(x: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.ascontiguousarray(x)}


def test_training_set_plants_a_rare_appearance(pools: p33.Pools) -> None:
    cfg = p33.SMOKE
    data = p33.training_set(pools, cfg, seed=0)
    n_common, n_rare = 10 * cfg.fm_per_class, 10 * cfg.mnist_per_class
    assert data.x.shape == (n_common + n_rare, 784) and data.emb.shape[0] == n_common + n_rare
    assert data.rare.sum() == n_rare and not data.rare[:n_common].any()
    # every class has its Fashion-MNIST images and its digits; the digits come from the MNIST pool
    assert np.bincount(data.y[data.rare], minlength=10).tolist() == [cfg.mnist_per_class] * 10
    assert np.bincount(data.y[~data.rare], minlength=10).tolist() == [cfg.fm_per_class] * 10
    assert _rows(data.x[data.rare]) <= _rows(pools.mn_x)
    again, other = p33.training_set(pools, cfg, seed=0), p33.training_set(pools, cfg, seed=1)
    np.testing.assert_array_equal(again.x, data.x)
    assert not np.array_equal(other.x, data.x)


def test_rare_test_digits_are_unseen(pools: p33.Pools) -> None:
    assert not _rows(pools.test_mn_x) & _rows(pools.mn_x)
    assert len(pools.test_mn_y) == p33.SMOKE.mnist_test and len(pools.test_fm_y) == p33.SMOKE.fm_test


def test_likelihood_unit_oracle_and_ranges(pools: p33.Pools) -> None:
    cfg = p33.SMOKE
    out = p33.likelihood_unit((0, cfg))
    data = p33.training_set(pools, cfg, 0)
    oracle = out["likelihood"]["oracle"]
    np.testing.assert_allclose(oracle[~data.rare], 1.0)
    np.testing.assert_allclose(oracle[data.rare], cfg.mnist_per_class / cfg.fm_per_class)
    for p in out["likelihood"].values():
        assert p.shape == data.y.shape and (p > 0).all() and p.max() == 1.0
    assert out["diagnostics"]["tsne_dbscan_eps1"]["eps"] == 1.0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p33.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "33-datasetequity"
    assert result.table.methods == list(p33.METHODS) and len(result.claims) == 6
    diag = result.extra["likelihood_diagnostics"]
    assert set(diag) == {"tsne_dbscan", "tsne_dbscan_eps1", "kmeans", "oracle"}
    # the weight with a perfect likelihood gives the rare images (eta + 1) / eta-ish more weight
    assert min(result.table.values(p33.DE_ORACLE, p33.RATIO)) > 1.5


def test_planted_groups_prediction_and_measurement() -> None:
    pred = p33.planted_prediction()
    sizes = np.asarray(p33.PLANTED_SIZES, dtype=float)
    np.testing.assert_allclose(pred, (1 + (1 - sizes / sizes.max()) ** p33.GAMMA) / 2)
    x, g = p33.planted_groups(0, p33.PLANTED_SEPARATION["separated (covered)"])
    assert x.shape == (sizes.sum(), p33.PLANTED_DIM)
    assert np.bincount(g).tolist() == list(p33.PLANTED_SIZES)
    covered = p33.planted_unit((0, "separated (covered)"))
    assert np.abs(np.asarray(covered["k-means"]) - pred).max() < p33.PLANTED_TOL
