"""Paper-50 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): one seed's split and clustering, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.reproductions import available
from paperzoo.reproductions import p50_mlcd as p50


def test_registered() -> None:
    assert available()[50] == "paperzoo.reproductions.p50_mlcd"
    assert set(p50.METHODS) == {*p50.TRAINED, p50.PCA_REF} and p50.TRAINED[p50.CE1][:2] == ("ce", 1)
    assert p50.FULL.num_clusters == 200 and p50.FULL.scale == 16.0


def test_split_and_clustering_use_training_images_only() -> None:
    split = p50.build_split(p50.SMOKE, seed=0)
    n = len(split.y_train) + len(split.y_test)
    assert n == 1797 and abs(len(split.y_test) / n - 0.4) < 0.01
    assert np.allclose(np.bincount(split.y_train) / len(split.y_train), np.bincount(split.y_test) / len(split.y_test),
                       atol=0.01)  # fmt: skip
    assert split.centroids.shape == (p50.SMOKE.num_clusters, p50.SMOKE.pca_dim)
    assert np.allclose(np.linalg.norm(split.emb_train, axis=1), 1.0, atol=1e-5)
    again = p50.build_split(p50.SMOKE, seed=0)
    assert np.array_equal(again.centroids, split.centroids) and np.array_equal(again.x_test, split.x_test)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p50.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "50-mlcd"
    assert result.table.methods == list(p50.METHODS) and len(result.claims) == 4
    assert min(result.table.values(p50.MLCD4, p50.PROBE)) > 0.8  # far above chance (0.1)
