"""DatasetEquity's label-free sample likelihood (Shrivastava et al., ICCV 2023 Workshops): the
cluster-size -> likelihood step (golden values, the two noise rules, permutation equivariance),
the DBSCAN radius rule, and the estimator end to end on data whose clusters are known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from paperzoo.analysis.dataset_equity import (
    SampleLikelihoodEstimator,
    auto_eps,
    cluster_sizes,
    embed_images,
    likelihood_from_labels,
)


# --------------------------------------------------------------------------- labels -> p
def test_golden_likelihood_from_labels() -> None:
    labels = [0, 0, 0, 1, 1, -1, 2, 2, 2, 2]
    assert cluster_sizes(labels).tolist() == [3, 3, 3, 2, 2, 1, 4, 4, 4, 4]
    expected = [0.75, 0.75, 0.75, 0.5, 0.5, 0.25, 1, 1, 1, 1]
    np.testing.assert_allclose(likelihood_from_labels(labels), expected)
    np.testing.assert_allclose(likelihood_from_labels(labels, noise="singleton"), expected)  # noise cluster of 1
    noisy = [0, 0, 0, -1, -1, -1, 2, 2, 2, 2]
    np.testing.assert_allclose(likelihood_from_labels(noisy), [0.75] * 6 + [1] * 4)  # the paper's rule
    np.testing.assert_allclose(likelihood_from_labels(noisy, noise="singleton"), [0.75] * 3 + [0.25] * 3 + [1] * 4)


def test_noise_as_one_cluster_can_be_the_largest() -> None:
    labels = np.array([-1] * 6 + [0] * 3 + [1] * 2)
    np.testing.assert_allclose(likelihood_from_labels(labels)[:6], 1.0)  # noise counts as the most common
    np.testing.assert_allclose(likelihood_from_labels(labels, "singleton"), [1 / 3] * 6 + [1.0] * 3 + [2 / 3] * 2)


def test_likelihood_properties_and_permutation() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 12, size=500)
    for noise in ("as_cluster", "singleton"):
        p = likelihood_from_labels(labels, noise)
        assert p.shape == (500,) and p.dtype == np.float64
        assert (p > 0).all() and (p <= 1).all() and p.max() == 1.0
        for c in np.unique(labels[labels >= 0]):  # same cluster, same p
            assert np.unique(p[labels == c]).size == 1
        perm = rng.permutation(500)
        np.testing.assert_array_equal(likelihood_from_labels(labels[perm], noise), p[perm])
    # relabelling clusters changes nothing
    np.testing.assert_array_equal(likelihood_from_labels(labels + 100), likelihood_from_labels(labels + 200))


def test_all_in_one_cluster_and_all_noise() -> None:
    np.testing.assert_array_equal(likelihood_from_labels(np.zeros(5, int)), np.ones(5))
    np.testing.assert_array_equal(likelihood_from_labels(-np.ones(5, int), "singleton"), np.ones(5))


@pytest.mark.parametrize(
    ("labels", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "empty"),
        ([[0, 1]], {}, ValueError, "1-D"),
        ([0.0, 1.0], {}, TypeError, "integers"),
        ([0, 1], {"noise": "drop"}, ValueError, "cluster_sizes: noise must be one of"),
    ],
)
def test_labels_bad_input(labels: object, kwargs: dict[str, str], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        likelihood_from_labels(labels, **kwargs)


# --------------------------------------------------------------------------- eps rule
def test_auto_eps_makes_about_half_the_points_core() -> None:
    from sklearn.cluster import DBSCAN

    x = np.random.default_rng(1).normal(size=(401, 3))
    eps = auto_eps(x, min_samples=10)
    db = DBSCAN(eps=eps, min_samples=10).fit(x)
    assert abs(len(db.core_sample_indices_) - 201) <= 2
    # scale-equivariant: the radius grows with the map
    assert auto_eps(7 * x, 10) == pytest.approx(7 * eps)
    with pytest.raises(ValueError, match="auto_eps: min_samples must be an int"):
        auto_eps(x, 0)


# --------------------------------------------------------------------------- the estimator
def _blobs(sizes: list[int], seed: int = 0, dim: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Tight, far-apart Gaussian blobs of the given sizes (true labels returned)."""
    rng = np.random.default_rng(seed)
    centres = 20.0 * np.eye(len(sizes), dim)
    x = np.concatenate([c + 0.3 * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


def test_dbscan_on_known_clusters_recovers_size_ratios() -> None:
    x, y = _blobs([60, 30, 15])
    est = SampleLikelihoodEstimator(reducer="none", eps=2.0, min_samples=5).fit(x)
    assert est.n_clusters_ == 3 and est.n_noise_ == 0 and est.eps_ == 2.0
    np.testing.assert_allclose(est.likelihood_, likelihood_from_labels(y))
    np.testing.assert_allclose(np.unique(est.likelihood_), [0.25, 0.5, 1.0])
    assert est.largest_cluster_size_ == 60 and est.labels_.dtype == np.int64


def test_kmeans_and_hdbscan_and_pca() -> None:
    x, y = _blobs([40, 20, 10], dim=8)
    km = SampleLikelihoodEstimator(reducer="pca", n_components=3, clusterer="kmeans", n_clusters=3, random_state=0)
    np.testing.assert_allclose(km.fit_likelihood(x), likelihood_from_labels(y))
    assert km.embedding_.shape == (70, 3) and km.eps_ is None
    hd = SampleLikelihoodEstimator(reducer="none", clusterer="hdbscan", min_samples=5).fit(x)
    assert hd.n_clusters_ == 3
    np.testing.assert_allclose(hd.likelihood_[hd.labels_ >= 0], likelihood_from_labels(y)[hd.labels_ >= 0])


def test_paper_pipeline_tsne_dbscan_end_to_end() -> None:
    # the default pipeline (t-SNE to 3-D, DBSCAN) runs, its p follows its own labels, and it is seeded
    x, _ = _blobs([150, 15], dim=10, seed=2)
    est = SampleLikelihoodEstimator(eps="auto", max_iter=250, random_state=0).fit(x)
    p = est.likelihood_
    assert est.embedding_.shape == (165, 3) and est.n_features_in_ == 10
    assert (p > 0).all() and p.max() == 1.0 and est.n_clusters_ >= 1
    np.testing.assert_array_equal(p, likelihood_from_labels(est.labels_))
    assert est.eps_ == pytest.approx(auto_eps(est.embedding_, 10))
    again = SampleLikelihoodEstimator(eps="auto", max_iter=250, random_state=0).fit_likelihood(x)
    np.testing.assert_array_equal(again, p)  # seeded t-SNE: deterministic


def test_estimator_is_a_clonable_sklearn_estimator() -> None:
    est = SampleLikelihoodEstimator(reducer="pca", eps="auto", random_state=3)
    assert clone(est).get_params() == est.get_params()
    assert "eps='auto'" in repr(est)


@pytest.mark.parametrize(
    ("params", "x", "error", "match"),
    [
        ({"reducer": "umap"}, None, ValueError, "SampleLikelihoodEstimator: reducer must be one of"),
        ({"eps": -1.0}, None, ValueError, "SampleLikelihoodEstimator: eps must be"),
        ({"eps": "median"}, None, ValueError, "SampleLikelihoodEstimator: eps must be"),
        ({"max_iter": 100}, None, ValueError, "max_iter must be an int in \\[250"),
        ({"noise": "drop"}, None, ValueError, "noise must be one of"),
        ({"perplexity": 30.0}, np.zeros((20, 3)), ValueError, "perplexity=30.0 must be below"),
        ({"clusterer": "kmeans", "n_clusters": 50, "reducer": "none"}, None, ValueError, "n_clusters=50 exceeds"),
        ({"reducer": "pca", "n_components": 9}, None, ValueError, "n_components=9 exceeds"),
        ({}, np.full((30, 4), np.nan), ValueError, "NaN"),
        ({}, np.zeros(30), ValueError, "2D array"),
        ({"reducer": "none"}, np.zeros((1, 4)), ValueError, "minimum of 2"),
    ],
)
def test_estimator_bad_input(
    params: dict[str, object], x: np.ndarray | None, error: type[Exception], match: str
) -> None:
    data = np.random.default_rng(0).normal(size=(30, 4)) if x is None else x
    with pytest.raises(error, match=match):
        SampleLikelihoodEstimator(**params).fit(data)  # type: ignore[arg-type]


def test_embed_images_pixels_pca() -> None:
    images = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    emb = embed_images(images, encoder="pixels-pca", n_components=5)
    assert emb.shape == (40, 5)
    with pytest.raises(ValueError, match="embed_images: encoder must be one of"):
        embed_images(images, encoder="resnet101")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        embed_images(images[:, 0], encoder="pixels-pca")


# --------------------------------------------------------------------------- a user's own model and loader
def _planted(seed: int = 0, sizes: tuple[int, ...] = (120, 60, 30, 15)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), 6)) * 10
    x = np.concatenate([c + rng.normal(size=(n, 6)) for c, n in zip(centres, sizes)])
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def test_embed_loader_matches_the_model_and_restores_mode() -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from paperzoo.analysis.dataset_equity import embed_loader

    x, g = _planted()
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Dropout(0.5)).train()
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(g)), batch_size=32)
    feats = embed_loader(model, loader, progress=False)
    assert model.training  # restored
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-6, atol=1e-6)  # eval mode: no dropout
    np.testing.assert_allclose(embed_loader(model, [torch.from_numpy(x)], progress=False), expected, atol=1e-6)


def test_estimate_likelihood_recovers_planted_sizes_and_the_formula() -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from paperzoo.analysis.dataset_equity import estimate_likelihood
    from paperzoo.losses import dataset_equity_weight

    sizes = (120, 60, 30, 15)
    x, g = _planted(1, sizes)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(g)), batch_size=50)
    est = SampleLikelihoodEstimator(reducer="none", clusterer="kmeans", n_clusters=4, random_state=0)
    fitted = estimate_likelihood(torch.nn.Identity(), loader, est, progress=False)
    predicted = np.asarray(sizes, dtype=float)[g] / max(sizes)
    np.testing.assert_allclose(fitted.likelihood_, predicted)
    np.testing.assert_allclose(dataset_equity_weight(fitted.likelihood_), dataset_equity_weight(predicted))


def test_loader_tools_reject_bad_input() -> None:
    import torch

    from paperzoo.analysis.dataset_equity import embed_loader, plot_likelihood

    with pytest.raises(TypeError, match="nn.Module"):
        embed_loader(lambda t: t, [torch.zeros(2, 3)], progress=False)
    with pytest.raises(ValueError, match="no batches"):
        embed_loader(torch.nn.Identity(), [], progress=False)
    with pytest.raises(ValueError, match="NaN"):
        embed_loader(torch.nn.Identity(), [torch.full((2, 3), float("nan"))], progress=False)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        plot_likelihood([0.5, 1.5])
    with pytest.raises(ValueError, match="groups"):
        plot_likelihood([0.5, 1.0], groups=[0, 1, 1])


def test_plot_likelihood_returns_a_figure() -> None:
    from paperzoo.analysis.dataset_equity import plot_likelihood

    fig = plot_likelihood(likelihood_from_labels([0, 0, 0, 1, 1, 2]), groups=[0, 0, 0, 1, 1, 2], eta=0.5)
    assert len(fig.axes) == 2
    assert len(fig.axes[1].lines) == 1  # the w(p) curve
    import matplotlib.pyplot as plt

    plt.close(fig)
