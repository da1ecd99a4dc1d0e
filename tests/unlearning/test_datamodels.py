"""Margins, subset plans, regression datamodels and forget-set builders (paper 45)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperzoo.unlearning.datamodels import (
    RegressionDatamodel,
    SubsetTrainingPlan,
    coherent_forget_sets,
    margins,
    nearest_neighbour_forget_set,
)


def test_margins_golden_and_log_odds():
    out = margins(torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 3.0]]), torch.tensor([0, 1]))
    assert torch.allclose(out, torch.tensor([0.686738, -2.578890]), atol=1e-6)
    logits, y = torch.randn(5, 30, 7, dtype=torch.float64), torch.randint(0, 7, (30,))
    p = logits.softmax(-1).gather(-1, y.expand(5, 30)[..., None]).squeeze(-1)
    assert torch.allclose(margins(logits, y), torch.log(p / (1 - p)), atol=1e-10)
    assert torch.allclose(margins(logits + 3.5, y), margins(logits, y), atol=1e-12)


def test_margins_bad_input():
    with pytest.raises(ValueError, match="labels"):
        margins(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="labels"):
        margins(torch.randn(4, 3), torch.tensor([0, 1]))


def test_subset_plan():
    plan = SubsetTrainingPlan(50, 30, alpha=0.3, seed=4)
    assert plan.masks.shape == (30, 50) and plan.masks.dtype == bool
    assert (plan.masks.sum(1) == 15).all() and plan.subset_size == 15
    assert np.array_equal(plan.masks, SubsetTrainingPlan(50, 30, alpha=0.3, seed=4).masks)
    assert not np.array_equal(plan.masks, SubsetTrainingPlan(50, 30, alpha=0.3, seed=5).masks)
    with pytest.raises(ValueError, match="alpha"):
        SubsetTrainingPlan(50, 30, alpha=1.0)


def test_ridge_recovers_exact_linear_datamodel():
    rng = np.random.default_rng(0)
    n, m, e, c = 20, 120, 6, 3
    masks = rng.random((m, n)) < 0.5  # subsets of varying size: every coefficient is identified
    beta = rng.normal(size=(n, e, c))
    bias = rng.normal(size=(e, c))
    outputs = np.einsum("mn,nec->mec", masks.astype(float), beta) + bias
    dm = RegressionDatamodel().fit(masks, outputs, lam=1e-10)
    assert torch.allclose(dm.beta, torch.from_numpy(beta), atol=1e-6)
    assert torch.allclose(dm.bias, torch.from_numpy(bias), atol=1e-6)
    forget = [2, 5, 7]
    assert torch.allclose(dm.effect_of_removal(forget), torch.from_numpy(beta[forget].sum(0)), atol=1e-6)
    full = np.ones(n, dtype=bool)
    removed = full.copy()
    removed[forget] = False
    assert torch.allclose(dm.predict(full) - dm.predict(removed), dm.effect_of_removal(forget), atol=1e-9)
    # fit_cv picks a tiny lambda on noise-free data and scores a perfect held-out correlation
    scores = RegressionDatamodel().fit_cv(masks, outputs, lams=(1e-8, 100.0))
    assert scores[1e-8] == pytest.approx(1.0, abs=1e-9) and scores[1e-8] >= scores[100.0]


def test_fixed_size_subsets_identify_beta_up_to_a_common_shift():
    rng = np.random.default_rng(5)
    n, m = 16, 100
    masks = SubsetTrainingPlan(n, m, 0.5, 0).masks
    beta = rng.normal(size=(n, 2))
    outputs = masks.astype(float) @ beta + 1.0
    dm = RegressionDatamodel().fit(masks, outputs, lam=1e-7)
    # every subset has n/2 examples: beta + c is as good as beta; ridge picks the shift with sum_j beta_j = 0
    assert dm.beta.shape == (n, 2)
    assert torch.allclose(dm.beta, torch.from_numpy(beta - beta.mean(0)), atol=1e-6)
    assert torch.allclose(dm.predict(masks), torch.from_numpy(outputs), atol=1e-6)


@pytest.mark.slow
def test_scalar_outputs_and_lasso():
    rng = np.random.default_rng(1)
    masks = rng.random((80, 10)) < 0.5
    beta = np.zeros((10, 4))
    beta[3] = 2.0
    outputs = masks.astype(float) @ beta + 0.01 * rng.normal(size=(80, 4))
    dm = RegressionDatamodel().fit(masks, outputs, reg="lasso", lam=1e-3)
    assert dm.effect_of_removal([3]).shape == (4,)
    assert torch.allclose(dm.effect_of_removal([3]), torch.full((4,), 2.0, dtype=torch.float64), atol=0.05)
    assert float(dm.beta[[0, 1, 2, 4]].abs().max()) < 0.05


def test_datamodel_bad_input():
    with pytest.raises(RuntimeError, match="fit"):
        RegressionDatamodel().effect_of_removal([0])
    with pytest.raises(ValueError, match="0/1"):
        RegressionDatamodel().fit(np.full((5, 3), 0.5), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="masks but"):
        RegressionDatamodel().fit(np.ones((5, 3)), np.zeros((4, 2)))
    dm = RegressionDatamodel().fit(SubsetTrainingPlan(6, 20, 0.5, 0).masks, np.zeros((20, 2)))
    with pytest.raises(ValueError, match="forget positions"):
        dm.effect_of_removal([6])


def test_coherent_forget_sets_follow_the_principal_component():
    rng = np.random.default_rng(3)
    n = 30
    direction = rng.normal(size=n)
    scores = np.linspace(-3, 3, n)[rng.permutation(n)]
    mat = np.outer(scores, direction) + 0.01 * rng.normal(size=(n, n))
    top = coherent_forget_sets(mat, k=5)
    extremes = np.argsort(scores)
    # the sign of the component is fixed by its largest loading: the set is one of the two extremes
    assert set(top) in (set(extremes[-5:]), set(extremes[:5]))
    both = coherent_forget_sets(mat, k=4, mode="top_bottom")
    assert set(both) == set(extremes[:4]) | set(extremes[-4:])
    with pytest.raises(ValueError, match="square"):
        coherent_forget_sets(np.zeros((3, 4)), k=1)


def test_nearest_neighbour_forget_set():
    feats = np.array([[0.0], [10.0], [1.0], [2.5], [-0.5]])
    assert list(nearest_neighbour_forget_set(feats, 0, 3)) == [0, 2, 4]
    assert list(nearest_neighbour_forget_set(feats, np.array([2.4]), 2)) == [2, 3]
    with pytest.raises(ValueError, match="k"):
        nearest_neighbour_forget_set(feats, 0, 6)
