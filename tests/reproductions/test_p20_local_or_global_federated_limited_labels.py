"""Paper-20 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the federation each seed draws (label skew, labelled fraction, balanced server test
set, client test sets with the client's label distribution), the methods' recipes, and the full
(slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p20_local_or_global_federated_limited_labels as p20

from .conftest import skip_unless_data


def test_registered_and_recipes() -> None:
    assert available()[20] == "paperzoo.reproductions.p20_local_or_global_federated_limited_labels"
    assert p20.PAPER == 20 and set(p20.DATA) <= set(dataset_status())
    assert set(p20.RECIPES) == set(p20.METHODS)
    assert [m for m, (_, _, full) in p20.RECIPES.items() if full] == [p20.FULL_LABELS]
    assert p20.RECIPES[p20.FEDLABEL] == ("fedlabel", None, False)


def test_federation_of_one_seed() -> None:
    skip_unless_data(p20)
    cfg = p20.FULL
    fed = p20.build_federation(cfg, seed=0)
    data = fed.data
    assert data.x.shape == (cfg.n_train, 1, 28, 28) and data.num_clients == cfg.clients
    assert np.bincount(data.y_test.numpy(), minlength=10).tolist() == [cfg.test_per_class] * 10
    sizes = [p.size for p in data.partitions]
    assert min(sizes) >= cfg.min_client and sum(sizes) == cfg.n_train
    # label skew: most clients miss some classes or hold them very unevenly
    shares = np.stack([np.bincount(data.y[p].numpy(), minlength=10) / p.size for p in data.partitions])
    assert np.median(shares.max(1)) > 0.3
    for part, test, share in zip(data.partitions, fed.client_tests, shares):
        lab = fed.labelled[part]
        assert lab.sum() == max(1, round(cfg.labelled * part.size)) and (~lab).sum() > 0
        assert test.size == cfg.client_test
        # the client's test set only holds classes the client has
        assert set(np.unique(data.y_test[test].numpy())) <= set(np.flatnonzero(share > 0))
    assert not np.array_equal(p20.build_federation(cfg, 1).labelled, fed.labelled)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    skip_unless_data(p20)
    result = p20.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert (
        result.json_path is not None and result.json_path.parent.name == "20-local-or-global-federated-limited-labels"
    )
    assert result.table.methods == list(p20.METHODS) and len(result.claims) == 5
    # with 5 % labels the semi-supervised methods learn from the unlabelled images: mask rates are not 0
    assert all(min(d[p20.MASK]) > 0.05 for d in result.extra["diagnostics"].values())
    assert result.table.mean(p20.FULL_LABELS, p20.GLOBAL_ACC) > 0.6
