"""Paper-02 specific checks of the reproduction and its outfit generator (shared checks: test_suite.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.data.outfits import SLOT_OF_CLASS, STATEMENT, is_compatible, make_fitb, make_outfits
from paperzoo.reproductions import p02_outfittransformer as p02

LABELS = np.random.default_rng(0).integers(0, 10, 3000)


def test_outfits_follow_the_hidden_rule() -> None:
    o = make_outfits(LABELS, 2000, seed=0)
    assert o.idx.shape == o.mask.shape == o.classes.shape == (2000, 4)
    assert np.array_equal(is_compatible(o.classes, o.mask), o.y == 1)
    assert np.array_equal(LABELS[o.idx][o.mask], o.classes[o.mask])
    assert set(np.unique(o.mask.sum(1)).tolist()) == {3, 4}
    assert 0.4 < o.y.mean() < 0.6 and set(np.unique(o.broken[o.y == 0]).tolist()) == {1, 2}
    # statement-rule negatives keep the slot rule: exactly one top / bottom / shoes
    st = o.broken == 2
    slots = np.where(o.mask[st], SLOT_OF_CLASS[o.classes[st]], 4)
    assert np.all((slots[..., None] == np.arange(3)).sum(1) == 1)
    assert np.all((STATEMENT[o.classes[st]] & o.mask[st]).sum(1) != 1)
    again = make_outfits(LABELS, 2000, seed=0)
    assert np.array_equal(again.idx, o.idx)


def test_fitb_has_one_compatible_candidate() -> None:
    f = make_fitb(LABELS, 500, seed=1)
    n = len(f.answer)
    cls = LABELS[f.candidates]  # (n, 4)
    part = np.where(f.mask, LABELS[f.partial], 0)
    full = np.concatenate([np.repeat(part[:, None], 4, 1), cls[..., None]], 2).reshape(n * 4, 4)
    fmask = np.concatenate([np.repeat(f.mask[:, None], 4, 1), np.ones((n, 4, 1), bool)], 2).reshape(n * 4, 4)
    ok = is_compatible(full, fmask).reshape(n, 4)
    assert np.all(ok.sum(1) == 1) and np.array_equal(ok.argmax(1), f.answer)
    assert np.all(np.bincount(f.answer, minlength=4) > 80)


def test_generator_bad_input() -> None:
    with pytest.raises(ValueError, match="labels"):
        make_outfits(np.zeros(10, dtype=int), 5, seed=0)
    with pytest.raises(ValueError, match="n"):
        make_fitb(LABELS, 0, seed=0)


def test_both_settings_get_the_same_outfits() -> None:
    # the class-level outfits depend on the seed only, not on the image pool that fills them
    other = np.random.default_rng(5).permutation(np.repeat(np.arange(10), 70))
    a, b = make_outfits(LABELS, 500, seed=7), make_outfits(other, 500, seed=7)
    for field in ("mask", "classes", "y", "broken"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert np.array_equal(other[b.idx][b.mask], b.classes[b.mask])
    fa, fb = make_fitb(LABELS, 200, seed=8), make_fitb(other, 200, seed=8)
    assert np.array_equal(fa.answer, fb.answer) and np.array_equal(LABELS[fa.candidates], other[fb.candidates])


def test_rows_per_setting_and_feature_model() -> None:
    assert p02.METHODS == tuple(f"{m} ({s})" for s in ("scratch", "effnet") for m in p02.BASE_METHODS)
    torch = pytest.importorskip("torch")
    items, mask = torch.randn(5, 4, 1280), torch.ones(5, 4, dtype=torch.bool)
    mask[:2, 3] = False
    for method in p02.BASE_METHODS:
        model = p02.make_model(method, 32, item_dim=1280)
        assert model(items, mask).shape == (5,)


def test_effnet_pools_are_standardised_features() -> None:
    from paperzoo.data import DatasetNotInstalledError
    from paperzoo.models.pretrained import efficientnet_lite0_available

    if not efficientnet_lite0_available():
        pytest.skip("the vision extra (EfficientNet-Lite0) is not installed")
    cfg = p02.SMOKE
    try:
        x_tr, y_tr, x_te, y_te = p02.effnet_pools(cfg.feat_train, cfg.feat_test, cfg.px)
    except DatasetNotInstalledError as exc:
        pytest.skip(str(exc))
    assert x_tr.shape == (cfg.feat_train, 1280) and x_te.shape == (cfg.feat_test, 1280)
    assert y_tr.shape == (cfg.feat_train,) and y_te.shape == (cfg.feat_test,)
    assert set(np.unique(y_tr).tolist()) == set(range(10)) == set(np.unique(y_te).tolist())
    assert float(x_tr.mean(0).abs().max()) < 1e-4 and bool(x_tr.isfinite().all() and x_te.isfinite().all())
    assert p02.pools(cfg, "effnet")[0] is x_tr  # cached per process: read once


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p02.run(out_dir=tmp_path, progress=False, jobs=2)
    assert set(result.table.methods) == set(p02.METHODS)
    for m in p02.METHODS:
        assert 50.0 < result.table.mean(m, "CP AUC") <= 100.0
