"""CompositeScenes, the toy compositional image-text set of the DeGLA reproduction (paper 04)."""

from __future__ import annotations

import numpy as np
import pytest

from paperzoo.data import composite_scenes as cs
from paperzoo.data.composite_scenes import (
    COLOUR_RGB,
    NEGATIVE_TYPES,
    NUM_CAPTIONS,
    NUM_COMPOSITE_CAPTIONS,
    CompositeScenes,
    CompositeScenesConfig,
    caption_texts,
    composite_caption_ids,
    composite_slots,
    load_composite_scenes,
    render_canvases,
)
from paperzoo.models.pretrained import efficientnet_lite0_available

TINY = CompositeScenesConfig(
    n_train_composites=40, n_test_composites=20, n_train_fashion=16, n_test_fashion=12, n_train_digits=16,
    n_test_digits=12,
)  # fmt: skip


def test_caption_table() -> None:
    texts = caption_texts()
    assert len(texts) == NUM_CAPTIONS == 1160 and NUM_COMPOSITE_CAPTIONS == 1080
    assert len(set(texts)) == len(texts)
    ids = np.arange(NUM_COMPOSITE_CAPTIONS)
    s = composite_slots(ids)
    assert (s[:, 0] != s[:, 2]).all() and (s[:, 1] != s[:, 3]).all()
    np.testing.assert_array_equal(composite_caption_ids(s), ids)
    c1, n1, c2, n2 = s[17]
    assert texts[17] == f"a {cs.COLOURS[c1]} {cs.NOUNS[n1]} to the left of a {cs.COLOURS[c2]} {cs.NOUNS[n2]}"
    assert texts[cs.fashion_caption_ids(2, 9)] == "a photo of a blue ankle boot"
    assert texts[cs.digit_caption_ids(3, 7)] == "a photo of a yellow number seven"
    with pytest.raises(ValueError, match="slots row 0"):
        composite_caption_ids(np.array([[0, 1, 0, 2]]))


def test_negatives_follow_the_five_rules() -> None:
    ids = np.arange(0, NUM_COMPOSITE_CAPTIONS, 7)
    s = composite_slots(ids)
    scenes = CompositeScenes.__new__(CompositeScenes)
    neg, types = scenes.sample_negatives(ids, 4, np.random.default_rng(0))
    assert neg.shape == types.shape == (len(ids), 4)
    assert (neg != ids[:, None]).all() and neg.max() < NUM_COMPOSITE_CAPTIONS
    assert all(len(set(row)) == 4 for row in types.tolist())  # 4 distinct types per image
    ns = composite_slots(neg.reshape(-1)).reshape(len(ids), 4, 4)
    for t, name in enumerate(NEGATIVE_TYPES):
        rows, cols = np.nonzero(types == t)
        got, pos = ns[rows, cols], s[rows]
        if name == "reshuffle":
            np.testing.assert_array_equal(got, pos[:, [2, 3, 0, 1]])
        elif name == "swap_nouns":
            np.testing.assert_array_equal(got, pos[:, [0, 3, 2, 1]])
        elif name == "swap_adjectives":
            np.testing.assert_array_equal(got, pos[:, [2, 1, 0, 3]])
        else:  # replace: exactly one slot of the right kind changed, to a value not in the caption
            kind = [0, 2] if name == "replace_adjective" else [1, 3]
            other = [1, 3] if name == "replace_adjective" else [0, 2]
            np.testing.assert_array_equal(got[:, other], pos[:, other])
            changed = got[:, kind] != pos[:, kind]
            assert (changed.sum(1) == 1).all()
            new = got[:, kind][changed]
            assert not ((new[:, None] == pos[:, kind]).any(1)).any()
    det = scenes.test_negatives(ids)
    ds = composite_slots(det["replace_adjective"])
    unused = [min(set(range(4)) - {a, b}) for a, b in s[:, [0, 2]]]
    np.testing.assert_array_equal(ds[:, 0], unused)
    np.testing.assert_array_equal(ds[:, 1:], s[:, 1:])


def test_render_canvases_places_coloured_items() -> None:
    items = [np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)]
    src = np.array([[0, 1], [-1, 2]])
    pool = np.zeros((2, 2), dtype=np.int64)
    colour = np.array([[0, 2], [-1, 3]])
    x = render_canvases(items, src, pool, colour)
    assert x.shape == (2, 3, 32, 64) and x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(x[0, :, 2:30, 2:30], COLOUR_RGB[0][:, None, None] * items[0][0], rtol=1e-6)
    np.testing.assert_allclose(x[0, :, 2:30, 34:62], COLOUR_RGB[2][:, None, None] * items[0][1], rtol=1e-6)
    assert x[1, :, :, :32].max() == 0  # an empty half stays black
    assert x[0, :, :2].max() == 0 and x[0, :, :, 30:34].max() == 0  # borders


def test_zero_shot_prompts_and_config_validation() -> None:
    ids, cls = CompositeScenes.zero_shot_prompts("digit")
    texts = caption_texts()
    assert len(ids) == 40 and all(texts[i].endswith(cs.DIGIT_WORDS[c]) for i, c in zip(ids, cls))
    with pytest.raises(ValueError, match="domain"):
        CompositeScenes.zero_shot_prompts("animals")
    with pytest.raises(ValueError, match="n_train_composites"):
        CompositeScenesConfig(n_train_composites=0)


@pytest.mark.skipif(not efficientnet_lite0_available(), reason="the 'vision' extra is not installed")
def test_load_features_cached_and_standardised(module_cache, require_set, monkeypatch) -> None:
    require_set("fashion-mnist")
    scenes = load_composite_scenes(TINY, text=False)
    tr, te = scenes.train, scenes.test
    assert tr.features.shape == (40 + 16 + 16, 2560) and te.features.shape == (20 + 12 + 12, 2560)
    assert np.isfinite(tr.features).all()
    comp = tr.features[tr.indices("composite")]
    np.testing.assert_allclose(comp.mean(0), 0, atol=1e-4)
    singles = tr.indices("digit")
    assert (tr.caption_ids[singles] >= cs.DIGIT_BASE).all() and set(tr.side[singles]) <= {0, 1}
    np.testing.assert_array_equal(
        composite_caption_ids(tr.slots[tr.indices("composite")]), tr.caption_ids[tr.indices("composite")]
    )
    # a second load reads the cache: no extraction
    cs._load.cache_clear()
    monkeypatch.setattr(cs, "_extract_columns", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-extracted")))
    again = load_composite_scenes(TINY, text=False)
    np.testing.assert_array_equal(again.train.features, tr.features)
    cs._load.cache_clear()
