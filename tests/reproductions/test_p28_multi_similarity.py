"""Paper-28 specific checks of the reproduction (the shared ones are in test_suite.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from paperzoo.reproductions import p28_multi_similarity as p28


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


def test_pair_weighting_analysis_of_the_ms_unit() -> None:
    out: dict[str, Any] = p28.run_unit(p28.Unit(p28.SMOKE_DIGITS, p28.MS, 0, gpw=True))
    gpw = out["gpw"]
    for name in ("multi-similarity", "contrastive", "binomial deviance", "lifted structure"):
        assert len(gpw[name]["w_neg"]) == len(gpw["S_neg"]) == gpw["neg_pairs"]
        assert all(w >= 0 for w in gpw[name]["w_neg"])
    assert set(out["metrics"]) >= {"R@1", "MAP@R"}


@pytest.mark.slow
def test_full_run(tmp_path: Path, require_data: Any) -> None:
    require_data(p28)
    result = p28.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    assert result.table.methods == list(p28.METHODS) and result.table.metrics == p28.METRICS
    assert len(result.claims) == 4
