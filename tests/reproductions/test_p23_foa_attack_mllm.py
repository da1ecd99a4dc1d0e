"""Paper-23 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the attack pairs, the shift augmentation, the surrogates' token layouts; and the
full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.attacks.foa import global_local_features
from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p23_foa_attack_mllm as p23

from .conftest import skip_unless_data


def test_registered() -> None:
    assert available()[23] == "paperzoo.reproductions.p23_foa_attack_mllm"
    assert p23.PAPER == 23 and set(p23.DATA) <= set(dataset_status())


def test_pairs_have_targets_of_another_class() -> None:
    skip_unless_data(p23)
    x, x_t, y, y_t = p23.pairs_of(p23.SMOKE, seed=0)
    assert x.shape == x_t.shape == (p23.SMOKE.pairs, 1, 28, 28)
    assert bool((y != y_t).all())
    again = p23.pairs_of(p23.SMOKE, seed=0)[0]
    other = p23.pairs_of(p23.SMOKE, seed=1)[0]
    assert np.array_equal(x, again) and not np.array_equal(x, other)


def test_shift_is_a_translation_within_two_pixels() -> None:
    torch.manual_seed(0)
    x = torch.zeros(16, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    out = p23._shift(x)
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), torch.ones(16))
    rows, cols = out[:, 0].nonzero()[:, 1], out[:, 0].nonzero()[:, 2]
    assert int((rows - 14).abs().max()) <= 2 and int((cols - 14).abs().max()) <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 1


def test_surrogates_give_49_tokens_and_victims_logits() -> None:
    x = torch.rand(2, 1, 28, 28)
    for name in p23.SURROGATES:
        g, tokens = global_local_features(p23.surrogate(name, p23.build_model(name).eval()), x)
        assert tokens.shape[:2] == (2, 49) and g.shape == (2, tokens.shape[2])
    for name in p23.VICTIMS:
        assert p23.build_model(name)(x).shape == (2, 10)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    skip_unless_data(p23)
    result = p23.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "23-foa-attack-mllm"
    assert result.table.methods == list(p23.METHODS) and len(result.claims) == 4
    # every attack beats the clean chance floor on the victims and stays inside its budget
    for method in p23.METHODS[1:]:
        assert result.table.mean(method, p23.VICTIM_MEAN) > result.table.mean(p23.CLEAN, p23.VICTIM_MEAN)
        assert result.extra["norms"][method]["linf"] <= p23.FULL.eps + 1e-6
