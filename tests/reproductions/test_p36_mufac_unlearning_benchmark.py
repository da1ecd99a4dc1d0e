"""Paper-36 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the split sizes mirror MUFAC, one seed's unit, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.reproductions import available
from paperzoo.reproductions import p36_mufac_unlearning_benchmark as p36


def test_registered() -> None:
    assert available()[36] == "paperzoo.reproductions.p36_mufac_unlearning_benchmark"
    assert p36.PAPER == 36 and p36.DATA == ()


def test_full_splits_mirror_mufac_sizes() -> None:
    from paperzoo.data.identity_proxy import make_identity_proxy
    from paperzoo.unlearning.identity import IdentitySplits

    cfg = p36.FULL
    proxy = make_identity_proxy("digits", views=cfg.views, seed=0, n_identities=None)
    s = IdentitySplits.random_identities(proxy.identity, cfg.n_train, cfg.n_forget, cfg.n_test, cfg.n_unseen, seed=0)
    # MUFAC: 10,025 train (1,500 forget / 8,525 retain), 1,539 test, 1,504 unseen
    assert s.sizes() == {"train": 10_000, "forget": 1_500, "retain": 8_500, "test": 1_500, "unseen": 1_500}
    assert s.shared_identities == 0
    # the task label is shared across identities: every class appears in every split
    for mask in (s.forget, s.retain, s.test, s.unseen):
        assert len(np.unique(proxy.y[mask])) == 10


def test_seed_unit_scores_every_method() -> None:
    out = p36.seed_unit((0, p36.SMOKE))
    assert set(out["scores"]) == set(p36.METHODS)
    for method, values in out["scores"].items():
        assert set(p36.METRICS) <= set(values), method
    assert out["scores"][p36.RETRAINED]["oracle KL"] == pytest.approx(0.0, abs=1e-6)
    assert out["sizes"]["forget"] == p36.SMOKE.n_forget * p36.SMOKE.views


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p36.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.methods == list(p36.METHODS) and len(result.claims) == 11
    # the proxy carries an identity-memorisation signal that retraining removes
    assert result.table.mean(p36.ORIGINAL, p36.GAP) > result.table.mean(p36.RETRAINED, p36.GAP)
