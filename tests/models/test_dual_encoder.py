"""The toy CLIP (DualEncoder) and its stage-1 multi-positive contrastive pre-training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperzoo.data.composite_scenes import (
    NUM_CAPTIONS,
    NUM_COMPOSITE_CAPTIONS,
    CompositeScenes,
    CompositeScenesConfig,
    SceneSplit,
)
from paperzoo.models.dual_encoder import (
    MAX_LOGIT_SCALE,
    DualEncoder,
    PretrainConfig,
    clamp_logit_scale_,
    multi_positive_clip_loss,
    pretrain_dual_encoder,
)


def _emb(n: int, d: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)


def test_towers_normalised_and_scale() -> None:
    torch.manual_seed(0)
    m = DualEncoder(image_dim=20, text_dim=12, hidden=16, embed_dim=8)
    v, t, s = m(torch.randn(5, 20), torch.randn(7, 12))
    assert v.shape == (5, 8) and t.shape == (7, 8)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(t.norm(dim=1), torch.ones(7))
    assert math.isclose(float(s.detach()), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        m.logit_scale.fill_(9.0)
    clamp_logit_scale_(m)
    assert math.isclose(float(m.scale().detach()), 100.0, rel_tol=1e-5) and float(
        m.logit_scale.detach()
    ) == pytest.approx(MAX_LOGIT_SCALE)
    with pytest.raises(ValueError, match="hidden"):
        DualEncoder(hidden=0)


def test_multi_positive_loss_reduces_to_clip_with_distinct_captions() -> None:
    v, t = _emb(6, 4, 0), _emb(6, 4, 1)
    logits = 10.0 * v @ t.T
    target = torch.arange(6)
    clip = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    torch.testing.assert_close(multi_positive_clip_loss(v, t, 10.0, torch.arange(6) + 3), clip)


def test_multi_positive_loss_with_duplicates_matches_the_formula() -> None:
    v, t = _emb(5, 3, 2, torch.float64), _emb(5, 3, 3, torch.float64)
    ids = torch.tensor([4, 1, 4, 4, 1])
    got = multi_positive_clip_loss(v, t, 7.0, ids)
    logits = 7.0 * v @ t.T
    total = 0.0
    for m in (logits, logits.T):
        lsm = m.log_softmax(1)
        for i in range(5):
            pos = [j for j in range(5) if ids[j] == ids[i]]
            total += -sum(float(lsm[i, j]) for j in pos) / len(pos) / 5
    assert float(got) == pytest.approx(total / 2, rel=1e-12)
    vv, tt = v.clone().requires_grad_(True), t.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: multi_positive_clip_loss(a, b, 7.0, ids), (vv, tt))
    with pytest.raises(ValueError, match="caption_ids"):
        multi_positive_clip_loss(v, t, 7.0, ids[:3])
    with pytest.raises(ValueError, match="text_emb"):
        multi_positive_clip_loss(v, t[:4], 7.0, ids)


def _fake_scenes(seed: int = 0) -> CompositeScenes:
    rng = np.random.default_rng(seed)
    n = 30
    kind = np.repeat([0, 1, 2], 10)
    caps = np.concatenate(
        [rng.integers(0, NUM_COMPOSITE_CAPTIONS, 10), rng.integers(1080, 1120, 10), rng.integers(1120, 1160, 10)]
    )
    split = SceneSplit(
        rng.standard_normal((n, 24)).astype(np.float32), caps, kind, np.zeros((n, 4), np.int64),
        np.zeros(n, np.int64), np.zeros(n, np.int64),
    )  # fmt: skip
    emb = rng.standard_normal((NUM_CAPTIONS, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cfg = CompositeScenesConfig(n_train_composites=10 + seed)
    return CompositeScenes(split, split, [""] * NUM_CAPTIONS, emb, np.zeros(24), np.ones(24), cfg)


def test_pretraining_is_deterministic_cached_and_learns(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path))
    scenes = _fake_scenes()
    cfg = PretrainConfig(steps=30, per_kind=6, hidden=32, embed_dim=16, lr=3e-3)
    a = pretrain_dual_encoder(scenes, 3, cfg, cache=False)
    b = pretrain_dual_encoder(scenes, 3, cfg, cache=True)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert len(list(tmp_path.glob("toy-clip-stage1-*.pt"))) == 1
    c = pretrain_dual_encoder(scenes, 3, cfg, cache=True)  # read back from the cache
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    d = pretrain_dual_encoder(scenes, 4, cfg, cache=False)
    assert not torch.equal(a.logit_scale, d.logit_scale) or not torch.equal(
        a.image_tower[0].weight, d.image_tower[0].weight
    )
    assert not a.training and float(a.logit_scale.detach()) <= MAX_LOGIT_SCALE
    # it fits the training pairs: the loss falls below that of the untrained model
    torch.manual_seed(3)
    fresh = DualEncoder(24, 16, 32, 16)
    feats = torch.from_numpy(scenes.train.features)
    cid = torch.from_numpy(scenes.train.caption_ids)
    text = torch.from_numpy(scenes.caption_embeddings)[cid]
    with torch.no_grad():
        before = multi_positive_clip_loss(*fresh(feats, text), cid)
        after = multi_positive_clip_loss(*a(feats, text), cid)
    assert float(after) < float(before) - 0.2
