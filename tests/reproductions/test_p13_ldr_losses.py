"""Paper-13 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the split, the label noise of each setting, the model; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.reproductions import available, p13_ldr_losses


def test_registered() -> None:
    assert available()[13] == "paperzoo.reproductions.p13_ldr_losses"
    assert p13_ldr_losses.PAPER == 13 and p13_ldr_losses.DATA == ()


def test_split_is_stratified_and_seeded() -> None:
    xtr, ytr, xte, yte = p13_ldr_losses.digits_split(0)
    assert xtr.shape[1] == 64 and len(ytr) + len(yte) == 1797 and abs(len(yte) / 1797 - 0.3) < 0.01
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert np.abs(np.bincount(ytr, minlength=10) / len(ytr) - np.bincount(yte, minlength=10) / len(yte)).max() < 0.01
    again = p13_ldr_losses.digits_split(0)[0]
    other = p13_ldr_losses.digits_split(1)[0]
    assert np.array_equal(xtr, again) and not np.array_equal(xtr, other)


def test_noise_settings() -> None:
    _, ytr, _, _ = p13_ldr_losses.digits_split(0)
    clean, mask = p13_ldr_losses.noisy_labels(ytr, p13_ldr_losses.CLEAN, 0)
    assert np.array_equal(clean, ytr) and not mask.any()
    uniform, mask = p13_ldr_losses.noisy_labels(ytr, p13_ldr_losses.UNIFORM, 0)
    assert abs(mask.mean() - 0.6) < 0.05 and abs((uniform != ytr).mean() - 0.54) < 0.05
    flip, mask = p13_ldr_losses.noisy_labels(ytr, p13_ldr_losses.PAIRFLIP, 0)
    assert abs(mask.mean() - 0.3) < 0.05 and np.array_equal(flip[mask], (ytr[mask] + 1) % 10)
    assert np.array_equal(p13_ldr_losses.noisy_labels(ytr, p13_ldr_losses.UNIFORM, 0)[0], uniform)


def test_model_is_the_tanh_mlp() -> None:
    model = p13_ldr_losses.make_model(p13_ldr_losses.FULL, 0)
    assert sum(isinstance(m, torch.nn.Tanh) for m in model) == 2
    assert model(torch.zeros(3, 64)).shape == (3, 10)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p13_ldr_losses.run(out_dir=tmp_path, progress=False, jobs=2)
    assert len(result.seeds) == 3 and len(result.claims) == 5
    assert result.table.mean(p13_ldr_losses.CE, "top-1, clean") > 0.9
