"""Paper-48 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the positive-only labels of a seed and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p48_pu_mlc as p48


def test_registered() -> None:
    assert available()[48] == "paperzoo.reproductions.p48_pu_mlc"
    assert p48.PAPER == 48 and set(p48.DATA) <= set(dataset_status())
    assert p48.BCE in p48.METHODS and p48.PUMLC in p48.METHODS
    assert 0.0 in p48.FULL.hidden_rates and 0.3 in p48.FULL.hidden_rates


def test_observed_labels_are_seeded_subsets_of_the_true_positives() -> None:
    y = (np.random.default_rng(0).random((500, 30)) < 0.1).astype(np.int64)
    a, b = p48.observed_labels(y, 0.3, 0), p48.observed_labels(y, 0.3, 0)
    assert np.array_equal(a, b) and not np.array_equal(a, p48.observed_labels(y, 0.3, 1))
    assert bool((a <= y).all()) and np.array_equal(p48.observed_labels(y, 0.0, 0), y)
    assert abs(a.sum() / y.sum() - 0.7) < 0.05


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p48.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "48-pu-mlc"
    assert result.table.methods == list(p48.METHODS) and len(result.claims) == 4
    # BCE with all positives observed learns the task (a sanity floor, far above chance ~0.1)
    assert min(result.table.values(p48.BCE, "mAP h=0")) > 0.3
