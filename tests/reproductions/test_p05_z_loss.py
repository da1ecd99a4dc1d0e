"""Smoke (default suite) and full (slow) runs of the paper-05 reproduction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from paperzoo.engine import Result
from paperzoo.reproductions import available, p05_z_loss


def test_registered() -> None:
    assert available()[5] == "paperzoo.reproductions.p05_z_loss"
    assert p05_z_loss.PAPER == 5


def test_synthetic_task_follows_the_spec() -> None:
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


def _check_outputs(read_written: Callable[[Result], dict], result: Result, folder: Path) -> dict:
    data = read_written(result)
    assert result.json_path.parent == folder
    assert data["metrics"] == p05_z_loss.METRICS
    assert [r["method"] for r in data["rows"]] == list(p05_z_loss.METHODS)
    assert all(0.0 <= v <= 1.0 for row in data["rows"] for m in data["metrics"] for v in row["values"][m])
    assert len(data["claims"]) == 4
    return data


def test_smoke_run(tmp_path: Path, read_written: Callable[[Result], dict]) -> None:
    result = p05_z_loss.run(smoke=True, seeds=(0,), out_dir=tmp_path, progress=False)
    data = _check_outputs(read_written, result, tmp_path / "05-z-loss")
    assert data["verdict"] == result.verdict_from_claims(result.claims)
    cfg = p05_z_loss.SMOKE_SYN
    assert tuple(data["extra"]["syn_selected_ab"]["0"]) in {(a, b) for a in cfg.a_grid for b in cfg.b_grid}


def test_smoke_run_is_deterministic(tmp_path: Path) -> None:
    r1 = p05_z_loss.run(smoke=True, seeds=(1,), out_dir=tmp_path / "a", progress=False)
    r2 = p05_z_loss.run(smoke=True, seeds=(1,), out_dir=tmp_path / "b", progress=False)
    assert [r.values for r in r1.rows] == [r.values for r in r2.rows]


@pytest.mark.slow
def test_full_run(tmp_path: Path, read_written: Callable[[Result], dict]) -> None:
    result = p05_z_loss.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    _check_outputs(read_written, result, tmp_path / "05-z-loss")
    # spec §6.3 assertion: Z-loss clearly beats the other spherical loss on the many-class task
    assert result.claims[0].held and result.claims[1].held
