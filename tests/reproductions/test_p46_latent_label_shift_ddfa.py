"""Paper-46 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the latent-label-shift split of the reproduction, the grouped (even / odd) labels,
the matched histogram of the baselines; and the full (slow) run."""

from __future__ import annotations

import numpy as np
import pytest

from paperzoo.reproductions import available
from paperzoo.reproductions import p46_latent_label_shift_ddfa as p46

from .conftest import skip_unless_data


def test_registered() -> None:
    assert available()[46] == "paperzoo.reproductions.p46_latent_label_shift_ddfa"
    assert p46.PAPER == 46 and p46.DATA == ("fashion-mnist",)
    assert [s.name for s in p46.SETTINGS] == ["strong", "weak", "grouped"]


def test_split_is_disjoint_and_shifted() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 50)
    x = rng.random((500, 7)).astype(np.float32) + labels[:, None]  # rows identify their sample
    for setting in p46.SETTINGS:
        sp = p46.make_split(x, labels, setting, seed=3)
        rows = np.concatenate([sp.x[k][:, 0] for k in ("train", "valid", "test")])
        assert np.unique(rows).size == rows.size  # disjoint splits
        assert sp.p_y_d.shape == (setting.n_classes, setting.n_domains)
        np.testing.assert_allclose(sp.p_y_d.sum(axis=0), 1.0)
        for k in ("train", "valid", "test"):
            assert sp.y[k].max() < setting.n_classes and sp.d[k].max() < setting.n_domains
            np.testing.assert_array_equal(sp.y[k], np.floor(sp.x[k][:, 0]).astype(int) % setting.n_classes)


def test_matched_histogram_undoes_the_cluster_permutation() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    d = np.array([0, 0, 0, 1, 1, 1])
    h = p46._matched_histogram(y, 1 - y, d, 2, 2)  # clusters are the classes, relabelled
    np.testing.assert_allclose(h, [[2 / 3, 1 / 3], [1 / 3, 2 / 3]])


@pytest.mark.slow
def test_full_run(tmp_path) -> None:
    skip_unless_data(p46)
    result = p46.run(out_dir=str(tmp_path), progress=False, jobs=2)
    assert len(result.seeds) >= 3
    assert result.table.mean(p46.DDFA_NMF, p46.acc_metric("strong")) > result.table.mean(
        p46.KMEANS, p46.acc_metric("strong")
    )
