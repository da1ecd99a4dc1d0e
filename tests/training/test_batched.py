"""The batched small-model trainer: K models at once follow the trajectories of K models trained alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperzoo.models import MLP
from paperzoo.training.batched import BatchedMLP, fit_batched, train_subset_models, weighted_cross_entropy


def test_initialisation_and_forward_match_independent_mlps():
    seeds = [3, 7, 11]
    batched = BatchedMLP(5, (8, 6), 4, seeds)
    x = torch.randn(10, 5)
    out = batched(x)
    assert out.shape == (3, 10, 4)
    for k, s in enumerate(seeds):
        torch.manual_seed(s)
        ref = MLP(5, (8, 6), 4)
        assert torch.allclose(out[k], ref(x), atol=1e-6)
        assert torch.allclose(batched.module(k)(x), ref(x), atol=1e-6)
    per_model = torch.randn(3, 10, 5)
    assert torch.allclose(batched(per_model)[1], batched.module(1)(per_model[1]), atol=1e-6)
    again = BatchedMLP.from_modules([batched.module(k) for k in range(3)])
    assert torch.allclose(again(x), out) and torch.allclose(batched.select([2])(x)[0], out[2])


def test_subset_training_equals_a_loop_of_independent_models():
    torch.manual_seed(0)
    x, y = torch.randn(30, 6, dtype=torch.float64), torch.randint(0, 3, (30,))
    masks = np.random.default_rng(0).random((4, 30)) < 0.5
    seeds = [1, 2, 3, 4]
    logits = train_subset_models(x, y, masks, (5,), 3, seeds, steps=25, lr=0.05, chunk=3)
    for k in range(4):
        torch.manual_seed(seeds[k])
        model = MLP(6, (5,), 3).double()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        sel = torch.from_numpy(masks[k])
        for _ in range(25):
            opt.zero_grad()
            F.cross_entropy(model(x[sel]), y[sel]).backward()
            opt.step()
        assert torch.allclose(logits[k], model(x), atol=1e-9), k


def test_weighted_cross_entropy_and_fit_history():
    logits, y = torch.randn(2, 5, 3), torch.randint(0, 3, (5,))
    w = torch.tensor([[1.0, 1, 0, 0, 1], [1, 1, 1, 1, 1]])
    out = weighted_cross_entropy(logits, y, w)
    assert torch.allclose(out[0], F.cross_entropy(logits[0, [0, 1, 4]], y[[0, 1, 4]]), atol=1e-6)
    assert torch.allclose(out[1], F.cross_entropy(logits[1], y), atol=1e-6)
    model = BatchedMLP(3, (4,), 3, [0, 1])
    x = torch.randn(5, 3)
    hist = fit_batched(model, lambda m: weighted_cross_entropy(m(x), y), steps=20, lr=0.05, record=True)
    assert hist is not None and hist.shape == (20, 2) and bool((hist[-1] < hist[0]).all())


def test_bad_input():
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    with pytest.raises(ValueError, match="masks"):
        train_subset_models(x, y, np.ones((2, 5), dtype=bool), (4,), 2, [0, 1])
    with pytest.raises(ValueError, match="no example"):
        train_subset_models(x, y, np.zeros((1, 6), dtype=bool), (4,), 2, [0])
    with pytest.raises(ValueError, match="seeds"):
        train_subset_models(x, y, np.ones((2, 6), dtype=bool), (4,), 2, [0])
    with pytest.raises(ValueError, match="seeds"):
        BatchedMLP(3, (4,), 2, [])
    with pytest.raises(ValueError, match="input features"):
        BatchedMLP(3, (4,), 2, [0])(torch.randn(5, 4))
    with pytest.raises(ValueError, match="lr"):
        fit_batched(BatchedMLP(3, (4,), 2, [0]), lambda m: m(x).sum((1, 2)), steps=1, lr=0.0)
