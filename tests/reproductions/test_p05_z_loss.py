"""Paper-05 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the synthetic task, the validation split, the units and the (a, b) selection;
and the full (slow) run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import available, p05_z_loss


def test_registered() -> None:
    assert available()[5] == "paperzoo.reproductions.p05_z_loss"
    assert p05_z_loss.PAPER == 5
    assert set(p05_z_loss.DATA) <= set(dataset_status())


def test_synthetic_task_follows_its_definition() -> None:
    cfg = p05_z_loss.FULL_SYN
    x, y = p05_z_loss.make_zipf_clusters(cfg, seed=0)
    assert x.shape == (cfg.n_train + cfg.n_test, 32) and x.dtype == np.float32
    assert y.min() >= 0 and y.max() < 300
    counts = np.bincount(y, minlength=300)
    assert counts.max() > 40 * np.median(counts)  # Zipf(1.1): a few frequent classes, a long tail
    again, _ = p05_z_loss.make_zipf_clusters(cfg, seed=0)
    other, _ = p05_z_loss.make_zipf_clusters(cfg, seed=1)
    assert np.array_equal(x, again) and not np.array_equal(x, other)


def test_validation_split_is_disjoint_from_fit_split() -> None:
    cfg = p05_z_loss.SMOKE_SYN
    s = p05_z_loss.synthetic_splits(cfg, seed=3)
    assert len(s.y_val) == cfg.n_val and len(s.y_fit) == cfg.n_train - cfg.n_val and len(s.y_test) == cfg.n_test
    fit_rows = {tuple(r) for r in s.x_fit.numpy().round(5).tolist()}
    assert not any(tuple(r) in fit_rows for r in s.x_val.numpy().round(5).tolist())


def test_units_cover_every_loss_and_grid_cell_once() -> None:
    syn, fm = p05_z_loss.FULL_SYN, p05_z_loss.FULL_FM
    units = p05_z_loss._units([0, 1], {"syn": syn, "fm": fm})
    keys = [(task, loss, seed, ab) for task, loss, seed, _, ab in units]
    assert len(keys) == len(set(keys)) == 2 * (2 + len(syn.grid) + 2 + len(fm.grid))
    assert ("fm", p05_z_loss.Z, 1, (0.3, 2.0)) in keys and ("syn", p05_z_loss.CE, 0, None) in keys
    # a grid without the default (1, 1) gets it as one more unit, not used for the selection
    no_default = replace(p05_z_loss.SMOKE_FM, b_grid=(2.0,))
    extra = p05_z_loss._units([0], {"fm": no_default})
    assert [ab for *_, ab in extra] == [None, None, (1.0, 2.0), (1.0, 1.0)]


def test_selection_uses_validation_never_test() -> None:
    cfg = p05_z_loss.SMOKE_FM  # grid (1, 1), (1, 2)
    Z = p05_z_loss.Z

    def cell(val: float, test: float) -> dict[str, dict[int, float]]:
        return {"val": {1: val, 3: val}, "test": {1: test, 3: test}}

    done = {
        ("fm", p05_z_loss.CE, 0, None): cell(0.5, 0.5),
        ("fm", p05_z_loss.MSE, 0, None): cell(0.4, 0.4),
        ("fm", Z, 0, (1.0, 1.0)): cell(0.6, 0.9),  # better on test, worse on validation
        ("fm", Z, 0, (1.0, 2.0)): cell(0.7, 0.1),
    }
    out = p05_z_loss._select("fm", cfg, 0, done)
    assert out["selected"] == (1.0, 2.0)
    assert out[p05_z_loss.Z_SELECTED] == {1: 0.1, 3: 0.1} and out[p05_z_loss.Z_DEFAULT] == {1: 0.9, 3: 0.9}
    assert [g["val_score"] for g in out["grid"]] == pytest.approx([0.6, 0.7])


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p05_z_loss.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "05-z-loss"
    assert result.table.metrics == p05_z_loss.METRICS and result.table.methods == list(p05_z_loss.METHODS)
    assert all(0.0 <= v <= 1.0 for vals in result.table.to_dict().values() for vs in vals.values() for v in vs)
    assert len(result.claims) == 4
    # the reproduction's firm finding: the Z-loss clearly beats the other spherical loss on the many-class task
    assert result.claims[0].outcome == "holds" and result.claims[1].outcome == "holds"
