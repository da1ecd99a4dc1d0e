"""Paper-21 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the federated split (balanced test set, disjoint label-skewed clients, training-only
standardisation), the method settings, and the full (slow) run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p21_fedld_loss_decomposition as p21

from .conftest import skip_unless_data


def test_registered_and_methods() -> None:
    assert available()[21] == "paperzoo.reproductions.p21_fedld_loss_decomposition"
    assert p21.PAPER == 21 and set(p21.DATA) <= set(dataset_status())
    assert set(p21.SETTINGS) == set(p21.METHODS)
    assert p21.SETTINGS[p21.FEDAVG] == (0.0, "mean", 0.0)  # FedAvg: CE clients, the plain mean
    assert p21.SETTINGS[p21.FEDLD] == (0.1, "principal", 0.0)  # both components, official lam and rule


def test_federated_split() -> None:
    skip_unless_data(p21)
    cfg = p21.SMOKE
    data = p21.make_data(cfg, seed=0)
    assert np.bincount(data.y_test.numpy()).tolist() == [cfg.test_per_class] * 30  # balanced test set
    assert np.bincount(data.y.numpy()).tolist() == [cfg.train_per_class] * 30
    flat = np.concatenate(data.partitions)
    assert len(data.partitions) == cfg.clients and np.unique(flat).size == flat.size == len(data.y)
    # standardised with the training split's statistics (mean 0, sd 1 over the training rows)
    torch.testing.assert_close(data.x.mean(0), torch.zeros(data.x.shape[1]), rtol=0, atol=1e-4)
    # train and test rows are different images
    train_rows = {r.tobytes() for r in data.x.numpy()}
    assert not train_rows & {r.tobytes() for r in data.x_test.numpy()}
    # deterministic per seed, different across seeds
    again, other = p21.make_data(cfg, seed=0), p21.make_data(cfg, seed=1)
    assert torch.equal(again.x, data.x) and not torch.equal(other.x_test, data.x_test)


def test_label_skew_of_the_full_split() -> None:
    skip_unless_data(p21)
    # the full run's clients and alpha on the smoke run's images (the tests' feature cache is empty)
    data = p21.make_data(replace(p21.FULL, per_class=p21.SMOKE.per_class, test_per_class=2, train_per_class=8), 0)
    y = data.y.numpy()
    classes_per_client = [np.unique(y[p]).size for p in data.partitions]
    # Dirichlet(0.1) over 10 clients: some client misses some of the 30 classes
    assert min(classes_per_client) < 30 and len(data.partitions) == 10


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p21.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "21-fedld-loss-decomposition"
    assert result.table.methods == list(p21.METHODS) and len(result.claims) == 6
    # the principal rule shortens the server step (every client's revised update is shrunk)
    assert 0.0 < result.extra["step_ratio_mean"] < 1.0
