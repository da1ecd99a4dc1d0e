"""Smoke (default suite) and full (slow) runs of the paper-28 reproduction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from paperzoo.engine import Result
from paperzoo.reproductions import available
from paperzoo.reproductions import p28_multi_similarity as p28


@pytest.fixture
def union30_installed() -> None:
    from paperzoo.data import dataset_status

    missing = [name for name, ok in dataset_status().items() if not ok]
    if missing:
        pytest.skip(f"data sets {missing} are not installed (run: python -m paperzoo data install)")


def test_registered() -> None:
    assert available()[28] == "paperzoo.reproductions.p28_multi_similarity"
    assert p28.PAPER == 28 and p28.KEY == "28-multi-similarity-loss"


def test_digits_split_holds_out_classes() -> None:
    split = p28.digits_split()
    assert set(split.y_train.tolist()) == {0, 1, 2, 3, 4} and set(split.y_test.tolist()) == {5, 6, 7, 8, 9}
    assert split.x_train.shape[1] == 64 and float(split.x_train.max()) <= 1.0


def test_models_embed_to_unit_vectors() -> None:
    for cfg, shape in ((p28.SMOKE_U30, (3, 1, 28, 28)), (p28.SMOKE_DIGITS, (3, 64))):
        out = p28.make_model(cfg)(torch.rand(shape))
        assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_training_is_deterministic_given_the_seed() -> None:
    split = p28.digits_split()
    runs = [p28.train_and_evaluate(p28.MS, split, p28.SMOKE_DIGITS, seed, False) for seed in (3, 3, 4)]
    assert runs[0][0] == runs[1][0] and runs[0][2] == runs[1][2]
    assert runs[0][2] != runs[2][2]


def _check_outputs(read_written: Callable[[Result], dict], result: Result, folder: Path) -> dict:
    data = read_written(result)
    assert result.json_path.parent == folder
    assert data["metrics"] == p28.METRICS
    assert [r["method"] for r in data["rows"]] == list(p28.METHODS)
    assert all(0.0 <= v <= 1.0 for row in data["rows"] for m in data["metrics"] for v in row["values"][m])
    assert len(data["claims"]) == 4
    gpw = data["extra"]["gpw"]
    for name in ("multi-similarity", "contrastive", "binomial deviance", "lifted structure"):
        assert len(gpw[name]["w_neg"]) == len(gpw["S_neg"]) == gpw["neg_pairs"]
    return data


def test_smoke_run(tmp_path: Path, read_written: Callable[[Result], dict], union30_installed: None) -> None:
    result = p28.run(smoke=True, seeds=(0,), out_dir=tmp_path, progress=False)
    _check_outputs(read_written, result, tmp_path / p28.KEY)


@pytest.mark.slow
def test_smoke_run_is_deterministic(tmp_path: Path, union30_installed: None) -> None:
    r1 = p28.run(smoke=True, seeds=(1,), out_dir=tmp_path / "a", progress=False)
    r2 = p28.run(smoke=True, seeds=(1,), out_dir=tmp_path / "b", progress=False)
    assert [r.values for r in r1.rows] == [r.values for r in r2.rows]


@pytest.mark.slow
def test_full_run(tmp_path: Path, read_written: Callable[[Result], dict], union30_installed: None) -> None:
    result = p28.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    _check_outputs(read_written, result, tmp_path / p28.KEY)
