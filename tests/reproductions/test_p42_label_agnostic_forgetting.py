"""Paper-42 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the official forget sets, the split, the one-pass evaluation against the shared
protocol's, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from paperzoo.reproductions import available
from paperzoo.reproductions import p42_label_agnostic_forgetting as p42
from paperzoo.unlearning import UnlearningData, UnlearningProtocol
from paperzoo.unlearning.laf import LAFPlusR, LAFUnlearner

from .conftest import skip_unless_data


def test_registered_and_methods() -> None:
    assert available()[42] == "paperzoo.reproductions.p42_label_agnostic_forgetting"
    assert p42.METHODS.index(p42.LAF) < p42.METHODS.index(p42.LAF_R)
    assert isinstance(p42.make_method(p42.LAF, "class", p42.FULL), LAFUnlearner)
    laf_r = p42.make_method(p42.LAF_R, "data", p42.FULL)
    assert isinstance(laf_r, LAFPlusR) and laf_r.temperature == 5.0 and laf_r.reference_steps == 7500
    laf = p42.make_method(p42.LAF, "class", p42.FULL)
    assert (laf.temperature, laf.latent_dim, laf.epochs, laf.reference_steps) == (20.0, 8, 20, 3760)
    assert p42.make_method(p42.LAF, "class", p42.SMOKE).reference_steps is None


def test_forget_sets_follow_the_official_definitions() -> None:
    y = np.repeat(np.arange(10), 37)
    data_removal = p42.forget_indices(y, p42.FORGET_SPEC["data"], seed=3)
    counts = np.bincount(y[data_removal], minlength=10)
    assert counts[:5].sum() == 0 and (counts[5:] == int(np.floor(0.4 * 37))).all()
    assert len(np.unique(data_removal)) == data_removal.size
    class_removal = p42.forget_indices(y, p42.FORGET_SPEC["class"], seed=3)
    assert np.array_equal(class_removal, np.flatnonzero(y == 0))
    assert not np.array_equal(data_removal, p42.forget_indices(y, p42.FORGET_SPEC["data"], seed=4))


def test_split_of_a_seed() -> None:
    skip_unless_data(p42)
    data = p42.build_data("data", p42.SMOKE, 0)
    n = p42.SMOKE.per_class * 10
    assert data.x.shape == (n + p42.SMOKE.n_test, 1, 28, 28)
    assert np.bincount(data.y[:n].numpy(), minlength=10).tolist() == [p42.SMOKE.per_class] * 10
    assert data.forget_idx.numel() == 5 * int(0.4 * p42.SMOKE.per_class)
    assert set(data.y_forget.tolist()) <= set(range(5, 10))


def test_one_pass_evaluation_matches_the_protocol() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(160) % 10
    x = torch.randn(160, 1, 28, 28, generator=g) + y.view(-1, 1, 1, 1) * 0.3
    forget = np.flatnonzero(y[:120].numpy() == 0)
    retain = np.setdiff1d(np.arange(120), forget)
    data = UnlearningData(x, y, forget, retain, np.arange(120, 160), 10)

    def train(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, seed: int) -> None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xs), ys).backward()
            opt.step()

    protocol = UnlearningProtocol(data, p42.LAFSmallCNN, train)
    oracle_values, logp = p42.evaluate(protocol.oracle(0), data, "class", p42.SMOKE, 0, None)
    ours, _ = p42.evaluate(protocol.original(0), data, "class", p42.SMOKE, 0, p42.OracleRef(logp))
    theirs = protocol.evaluate(protocol.original(0), 0)
    for key in (p42.FORGET, p42.RETAIN, p42.TEST, p42.AUC, p42.KL):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key
    assert oracle_values[p42.KL] == 0.0 and ours[p42.DIVERGED] == 0.0


def test_a_diverged_model_scores_as_wrong() -> None:
    y = torch.arange(60) % 10
    data = UnlearningData(torch.zeros(60, 1, 28, 28), y, np.arange(6), np.arange(6, 40), np.arange(40, 60), 10)

    class NaNModel(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 10), float("nan"))

    values, _ = p42.evaluate(NaNModel(), data, "class", p42.SMOKE, 0, None)
    assert values[p42.DIVERGED] == 1.0 and values[p42.FORGET] == values[p42.TEST] == 0.0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    skip_unless_data(p42)
    result = p42.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.seeds(p42.row("class", p42.LAF)) == [0, 1, 2]
    assert len(result.claims) == 7
