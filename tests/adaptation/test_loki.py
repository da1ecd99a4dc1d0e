"""Tests of Loki, the Fréchet-mean prediction rule (paper 26), and its label-metric tools."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperzoo.adaptation.loki import (
    LokiHead,
    argmax_predict,
    check_sq_distances,
    embedding_sq_distances,
    expected_squared_distance,
    graph_sq_distances,
    locus,
    loki_predict,
    next_class_to_observe,
    observed_sq_distances,
    relative_improvement,
    tree_locus,
)

PATH = np.array([[abs(i - j) ** 2 for j in range(5)] for i in range(5)], dtype=np.float64)
EMB = torch.tensor([[0, 0], [1, 0], [2, 0.5], [0, 1.5], [1.2, 1.2], [2.5, 2.0]], dtype=torch.float64)


def _random_probs(b: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, generator=g, dtype=torch.float64).mul(2).softmax(1)


def _random_tree(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.array([[i, int(rng.integers(0, i))] for i in range(1, n)], dtype=np.int64)


# --------------------------------------------------------------------------- golden values
def test_golden_path_graph():
    p = torch.tensor([[0.5, 0.5], [0.8, 0.2], [0.3, 0.7]], dtype=torch.float64)
    pred, v = loki_predict(p, observed_sq_distances(PATH, [0, 4]))
    want = torch.tensor([[8, 5, 4, 5, 8], [3.2, 2.6, 4, 7.4, 12.8], [11.2, 6.6, 4, 3.4, 4.8]], dtype=torch.float64)
    torch.testing.assert_close(v, want)
    assert pred.tolist() == [2, 1, 3]
    assert argmax_predict(p, [0, 4]).tolist() == [0, 0, 4]


def test_golden_embedding_metric():
    d2 = embedding_sq_distances(EMB)
    p = torch.tensor([[0.2, 0.5, 0.3], [0.45, 0.1, 0.45], [0.34, 0.33, 0.33]], dtype=torch.float64)
    pred, v = loki_predict(p, d2[[0, 2, 5]])
    want = torch.tensor(
        [
            [5.2, 2.7, 1.6, 4.9, 1.84, 3.3],
            [5.0375, 3.3875, 3.0375, 4.4375, 2.4575, 4.8625],
            [4.785, 2.815, 2.27, 4.56, 2.121, 4.31],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(v, want)
    assert pred.tolist() == [2, 4, 4]
    base = argmax_predict(p, [0, 2, 5])
    assert base.tolist() == [2, 0, 0]
    assert expected_squared_distance(pred, [1, 4, 4], d2) == pytest.approx(0.416667, abs=1e-6)
    assert expected_squared_distance(base, [1, 4, 4], d2) == pytest.approx(2.336667, abs=1e-6)
    assert relative_improvement(2.336667, 0.416667) == pytest.approx(1 - 0.416667 / 2.336667)


# --------------------------------------------------------------------------- properties
def test_one_hot_all_observed_returns_the_class():
    d2 = embedding_sq_distances(torch.randn(7, 3, dtype=torch.float64))
    pred, _ = loki_predict(torch.eye(7, dtype=torch.float64), d2)
    assert pred.tolist() == list(range(7))


def test_discrete_metric_equals_argmax():
    k = 6
    d2 = 1.0 - torch.eye(k, dtype=torch.float64)
    p = _random_probs(200, k)
    assert torch.equal(loki_predict(p, d2)[0], p.argmax(1))


def test_invariant_to_scale_and_shift_and_permutation():
    d2 = embedding_sq_distances(torch.randn(9, 4, dtype=torch.float64))
    obs = [1, 3, 4, 8]
    p = _random_probs(300, 4, seed=1)
    pred, _ = loki_predict(p, d2[obs])
    assert torch.equal(loki_predict(p, 3.7 * d2[obs])[0], pred)
    assert torch.equal(loki_predict(p, d2[obs] + 5.0)[0], pred)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    inv = torch.argsort(perm)  # class c of the old order is class inv[c] of the new one
    d2p = d2[perm][:, perm]
    obs_new = inv[obs]
    pred_p, _ = loki_predict(p, d2p[obs_new])
    assert torch.equal(pred_p, inv[pred])


def test_ties_return_lowest_index():
    d2 = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    pred, _ = loki_predict(torch.tensor([[0.5, 0.5, 0.0]]), d2)
    assert pred.tolist() == [0]


def test_loki_minimises_frechet_variance_per_sample():
    d2 = embedding_sq_distances(torch.randn(20, 5, dtype=torch.float64))
    obs = [0, 4, 7, 11, 19]
    p = _random_probs(500, 5, seed=2)
    pred, v = loki_predict(p, d2[obs])
    base = argmax_predict(p, obs)
    rows = torch.arange(500)
    assert bool((v[rows, pred] <= v[rows, base] + 1e-12).all())


def test_predictions_stay_in_the_locus():
    d2 = embedding_sq_distances(torch.randn(15, 2, dtype=torch.float64))
    obs = [2, 5, 9, 13]
    mask = locus(d2, obs)
    p = torch.distributions.Dirichlet(torch.full((4,), 0.3)).sample((2000,)).double()
    p = p / p.sum(1, keepdim=True)
    pred, _ = loki_predict(p, d2[obs])
    assert mask[pred.numpy()].all()


def test_path_graph_locus_and_midpoint():
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    d2 = graph_sq_distances(edges)
    np.testing.assert_array_equal(d2, PATH)
    assert locus(d2, [0, 4]).all() and tree_locus(d2, [0, 4]).all()
    assert loki_predict(torch.tensor([[0.5, 0.5]], dtype=torch.float64), d2[[0, 4]])[0].tolist() == [2]
    assert tree_locus(d2, [1, 2]).tolist() == [False, True, True, False, False]


@pytest.mark.parametrize("seed", range(6))
def test_lp_locus_equals_path_union_on_trees(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 13))
    d2 = graph_sq_distances(_random_tree(n, rng), n)
    for _ in range(3):
        obs = rng.choice(n, size=int(rng.integers(1, 5)), replace=False)
        np.testing.assert_array_equal(locus(d2, obs), tree_locus(d2, obs))


def test_next_class_to_observe_is_farthest_from_locus():
    # a path 2-1-0-3-4-5: from the locus {1} the farthest node is 5, then 2 is the only one left
    edges = np.array([[0, 1], [1, 2], [0, 3], [3, 4], [4, 5]])
    d2 = graph_sq_distances(edges)
    cur = tree_locus(d2, [1])
    assert next_class_to_observe(d2, cur) == 5
    cur = tree_locus(d2, [1, 5])
    assert next_class_to_observe(d2, cur) == 2
    assert next_class_to_observe(d2, tree_locus(d2, [2, 5])) is None


def test_graph_distances_weighted():
    d2 = graph_sq_distances(np.array([[0, 1], [1, 2]]), weights=[2.0, 0.5])
    assert d2[0, 2] == pytest.approx(6.25)


# --------------------------------------------------------------------------- head
def test_head_matches_function_and_straight_through_gradient():
    d2 = embedding_sq_distances(torch.randn(8, 3, dtype=torch.float64))
    obs = [0, 3, 6]
    head = LokiHead(d2, obs)
    p = _random_probs(16, 3, seed=3)
    assert torch.equal(head(p), loki_predict(p, d2[obs])[0])
    st = LokiHead(d2, obs, straight_through=True)
    logits = torch.randn(16, 3, dtype=torch.float64, requires_grad=True)
    out = st(logits.softmax(1))
    assert torch.equal(out.argmax(1), head(logits.detach().softmax(1)))
    assert torch.allclose(out.sum(1), torch.ones(16, dtype=torch.float64))
    w = torch.randn(8, dtype=torch.float64)
    (out * w).sum().backward()
    # straight-through: d out[:, obs[i]] / d p_i = 1, so the gradient equals that of sum_i w[obs[i]] p_i
    logits2 = logits.detach().clone().requires_grad_(True)
    (logits2.softmax(1) * w[obs]).sum().backward()
    torch.testing.assert_close(logits.grad, logits2.grad)
    sd = head.state_dict()
    assert set(sd) == {"observed", "sq_dist"}
    assert "observed=3, classes=8" in repr(head)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (torch.tensor([[0.5, 0.6]]), "sum to 1"),
        (torch.tensor([[1.5, -0.5]]), "non-negative"),
        (torch.tensor([[float("nan"), 1.0]]), "probs"),
        (torch.zeros(0, 2), "empty"),
        (torch.tensor([0.5, 0.5]), r"\(B, K\)"),
        (torch.tensor([[0.2, 0.3, 0.5]]), "columns"),
        (torch.tensor([[1, 0]]), "floating"),
    ],
)
def test_bad_probs(probs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        loki_predict(probs, PATH[[0, 4]])


@pytest.mark.parametrize(
    ("d2", "match"),
    [
        (np.array([[0.0, 1.0], [2.0, 0.0]]), "symmetric"),
        (np.array([[1.0, 1.0], [1.0, 0.0]]), "diagonal"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), "non-negative"),
        (np.ones((2, 3)), "square"),
        (np.array([[0.0, np.inf], [np.inf, 0.0]]), "sq_dist"),
    ],
)
def test_bad_metric(d2, match):
    with pytest.raises(ValueError, match=match):
        check_sq_distances(d2)
    with pytest.raises(ValueError, match=match):
        LokiHead(d2)


def test_bad_observed_and_labels():
    with pytest.raises(ValueError, match="observed"):
        observed_sq_distances(PATH, [0, 5])
    with pytest.raises(ValueError, match="repeat"):
        observed_sq_distances(PATH, [1, 1])
    with pytest.raises(ValueError, match="at least one"):
        LokiHead(PATH, [])
    with pytest.raises(ValueError, match="sq_dist"):
        loki_predict(torch.tensor([[1.0]]), -np.ones((1, 3)))
    with pytest.raises(ValueError, match="target"):
        expected_squared_distance([0, 1], [0, 7], PATH)
    with pytest.raises(ValueError, match="pred has 2"):
        expected_squared_distance([0, 1], [0], PATH)
    with pytest.raises(ValueError, match="disconnected"):
        graph_sq_distances(np.array([[0, 1], [2, 3]]))
    with pytest.raises(ValueError, match="current_locus"):
        next_class_to_observe(PATH, [True, False])
    with pytest.raises(ValueError, match="baseline"):
        relative_improvement(0.0, 1.0)
