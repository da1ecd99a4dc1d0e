"""Paper-43 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the retrieval metrics, the zero-initialised adapter, the noisy rows and the
filter's bookkeeping, the units; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperzoo.data.wordnet import wordnet_dir
from paperzoo.models.text_encoders import minilm_available
from paperzoo.reproductions import available
from paperzoo.reproductions import p43_kalm_embedding_v2 as p43

needs_data = pytest.mark.skipif(
    not minilm_available() or not (wordnet_dir() / "data.noun").is_file(),
    reason="needs the text extra and WordNet (apt-get install wordnet-base)",
)


def test_registered() -> None:
    assert available()[43] == "paperzoo.reproductions.p43_kalm_embedding_v2"
    assert p43.PAPER == 43 and p43.DATA == ("wordnet",)


def test_retrieval_scores_on_a_toy_ranking() -> None:
    c = torch.eye(384)[:20]
    q = torch.stack([c[3] + 0.1 * c[4], c[7] + 0.5 * c[8] + 0.2 * c[9]])  # positives 3 (first) and 9 (third)
    out = p43.retrieval_scores(q, c, torch.tensor([3, 9]))
    assert out["R@1"] == pytest.approx(0.5) and out["MRR@10"] == pytest.approx((1 + 1 / 3) / 2)
    assert set(out) == set(p43.METRICS)


def test_adapter_starts_as_the_identity() -> None:
    model = p43.Adapter(8)
    x = torch.randn(5, 8)
    assert torch.equal(model({"embedding": x})["sentence_embedding"], x) and model.get_embedding_dimension() == 8


def test_units_cover_every_trained_setting_and_the_soup() -> None:
    units = p43._units((0, 1), p43.SMOKE)
    assert {(m, s) for m, s, j, _ in units if j == 0} == {(m, s) for m in p43.TRAINED for s in (0, 1)}
    assert sorted(j for m, s, j, _ in units if m == p43.HN and s == 0) == list(range(p43.SMOKE.soup_size))


@needs_data
def test_noisy_rows_and_filter_bookkeeping() -> None:
    cfg = p43.SMOKE
    data = p43.load_data(cfg.n_queries, cfg.n_train)
    clean = p43.training_rows(data, cfg, 0, noisy=False, filtered=False)
    noisy = p43.training_rows(data, cfg, 0, noisy=True, filtered=False)
    assert len(clean["query"]) == cfg.n_train and clean["neg"].shape == (cfg.n_train, cfg.m_neg)
    changed = (clean["pos"] != noisy["pos"]).float().mean().item()
    assert changed == pytest.approx(cfg.noise, abs=1 / cfg.n_train)
    assert not bool((noisy["neg"] == noisy["pos"].view(-1, 1)).any())
    filt = p43.training_rows(data, cfg, 0, noisy=True, filtered=True)
    assert filt["stats"]["kept"] == len(filt["query"]) < cfg.n_train
    assert 0.0 <= filt["stats"]["clean_removed"] < filt["stats"]["corrupted_removed"] <= 1.0
    assert p43.evaluate(p43.Adapter(), data) == p43.evaluate(None, data)


@pytest.mark.slow
@needs_data
def test_full_run(tmp_path: Path) -> None:
    result = p43.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert len(result.claims) == 8 and result.table.mean(p43.IB, "MRR@10") > result.table.mean(p43.ZS, "MRR@10")
