"""Paper-04 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the shared fine-tuning batches and negatives, the methods' losses, the evaluation;
and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.data import composite_scenes as cs
from paperzoo.data import dataset_status
from paperzoo.data.composite_scenes import NUM_COMPOSITE_CAPTIONS, CompositeScenes, SceneSplit, composite_slots
from paperzoo.models.dual_encoder import DualEncoder
from paperzoo.reproductions import available
from paperzoo.reproductions import p04_degla_decoupled_global_local_alignment as p04


def test_registered_and_methods() -> None:
    assert available()[4] == "paperzoo.reproductions.p04_degla_decoupled_global_local_alignment"
    assert p04.PAPER == 4 and set(p04.DATA) <= set(dataset_status())
    clipft, needs = p04._loss_for(p04.CLIPFT, 4)
    assert clipft.num_negatives == 0 and not needs
    negclip, needs = p04._loss_for(p04.NEGCLIP, 4)
    assert (negclip.w_igc, negclip.w_tgc, negclip.w_distill) == (0, 0, 0) and not needs
    degla, needs = p04._loss_for(p04.DEGLA, 4)
    assert (degla.w_igc, degla.w_tgc, degla.w_distill) == (0.1, 0.1, 0.005) and needs
    assert not degla.reference_tgc_indexing
    assert p04._loss_for(p04.NODISTILL, 4)[0].w_distill == 0
    with pytest.raises(ValueError, match="unknown method"):
        p04._loss_for("CLIP", 4)


def _fake_scenes(n_comp: int = 96, n_single: int = 40, seed: int = 0) -> CompositeScenes:
    """CompositeScenes with the real caption structure and random features / text embeddings
    (no Fashion-MNIST, no feature extraction, no MiniLM)."""
    rng = np.random.default_rng(seed)

    def split() -> SceneSplit:
        comp = rng.integers(0, NUM_COMPOSITE_CAPTIONS, n_comp)
        f_lab, d_lab = rng.integers(0, 10, n_single), rng.integers(0, 10, n_single)
        f_col, d_col = rng.integers(0, 4, n_single), rng.integers(0, 4, n_single)
        caps = np.concatenate([comp, cs.fashion_caption_ids(f_col, f_lab), cs.digit_caption_ids(d_col, d_lab)])
        n = len(caps)
        slots = np.full((n, 4), -1)
        slots[:n_comp] = composite_slots(comp)
        label = np.concatenate([np.full(n_comp, -1), f_lab, d_lab])
        kind = np.repeat([0, 1, 2], [n_comp, n_single, n_single])
        feats = rng.standard_normal((n, 2560)).astype(np.float32)
        return SceneSplit(feats, caps, kind, slots, label, np.zeros(n, np.int64))

    emb = rng.standard_normal((cs.NUM_CAPTIONS, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return CompositeScenes(split(), split(), cs.caption_texts(), emb, np.zeros(2560), np.ones(2560), p04.SMOKE.data)


def test_batches_negatives_and_evaluation() -> None:
    setup = p04.SMOKE
    scenes = _fake_scenes()
    rows, neg = p04.stage2_batches(scenes, setup, seed=0)
    assert rows.shape == (setup.steps, setup.batch) and neg.shape == (setup.steps, setup.batch, setup.k)
    assert (scenes.train.kind[rows] == 0).all()  # composites only
    per_epoch = len(scenes.train.indices("composite")) // setup.batch
    first_epoch = rows[:per_epoch].reshape(-1)
    assert len(np.unique(first_epoch)) == len(first_epoch)  # without replacement within an epoch
    pos = scenes.train.caption_ids[rows]
    assert (neg != pos[..., None]).all() and neg.max() < NUM_COMPOSITE_CAPTIONS
    again = p04.stage2_batches(scenes, setup, seed=0)
    assert np.array_equal(again[0], rows) and np.array_equal(again[1], neg)
    assert not np.array_equal(p04.stage2_batches(scenes, setup, seed=1)[0], rows)
    torch.manual_seed(0)
    metrics = p04.evaluate(DualEncoder(2560, 384, 16, 8), scenes)
    assert list(metrics) == p04.METRICS and all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics[p04.PAIR] == pytest.approx(np.mean([metrics[m] for m in p04.TYPE_METRIC.values()]))
    # a model whose image embedding is its caption's text embedding is perfect on pairs, R@1 and zero-shot
    te = scenes.test
    oracle = DualEncoder(2560, 384, 16, 8)
    text = torch.from_numpy(scenes.caption_embeddings)
    table = {int(i): text[int(c)] for i, c in enumerate(te.caption_ids)}
    oracle.encode_image = lambda x: torch.stack([table[i] for i in range(len(x))])  # type: ignore[method-assign]
    oracle.encode_text = lambda t: t  # type: ignore[method-assign]
    best = p04.evaluate(oracle, scenes)
    assert best[p04.PAIR] == 1.0 and best[p04.R1] == 1.0 and best[p04.ZS_F] == 1.0 and best[p04.ZS_D] == 1.0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p04.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.metrics == p04.METRICS and result.table.methods == list(p04.METHODS)
    assert all(0.0 <= v <= 1.0 for vals in result.table.to_dict().values() for vs in vals.values() for v in vs)
    assert len(result.claims) == 5
    # fine-tuning on composites raises pair accuracy over the stage-1 model for every method
    for method in p04.FINETUNED:
        assert result.table.mean(method, p04.PAIR) > result.table.mean(p04.PRE, p04.PAIR)
