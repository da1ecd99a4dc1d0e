"""iHOMER (paper 12): streaming Jaccard, the ODAC label clusterer, meta-labels, routing, the
small online learners and the prequential metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, jaccard_score

from paperzoo.metrics import multilabel_metrics
from paperzoo.multilabel.ihomer import (
    ADWIN,
    IHOMERClassifier,
    OnlineLabelClusterer,
    OnlineLogisticBR,
    StreamingJaccard,
    WindowKNN,
    hoeffding_bound,
    jaccard_matrix,
    merge_small_clusters,
    meta_labels,
    phi_matrix,
    prequential,
    stream_metrics,
)

Y = np.array([[1, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 1], [1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 0]])
PAIRS = np.triu_indices(4, 1)


def two_groups(n: int, seed: int, together: bool = False) -> np.ndarray:
    """Labels {0,1,2} always co-occur, {3,4,5} always co-occur; the groups alternate at random
    (never together), or with ``together`` always co-occur."""
    first = np.random.default_rng(seed).random(n) < 0.5
    y = np.zeros((n, 6), dtype=np.int64)
    y[:, :3] = (first | together)[:, None]
    y[:, 3:] = (~first | together)[:, None]
    return y


# --------------------------------------------------------------------------- similarity
def test_golden_jaccard_distance_phi() -> None:
    np.testing.assert_allclose(jaccard_matrix(Y)[PAIRS], [0.75, 1 / 6, 0.4, 0.0, 0.2, 0.5], atol=1e-6)
    s = StreamingJaccard(4)
    for row in Y:
        s.learn_one(row)
    np.testing.assert_allclose(s.distance()[PAIRS], [0.25, 5 / 6, 0.6, 1.0, 0.8, 0.5], atol=1e-6)
    r2 = np.sqrt(0.5)
    np.testing.assert_allclose(phi_matrix(Y)[PAIRS], [r2, -r2, 0.0, -1.0, -1 / 3, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(phi_matrix(Y), np.corrcoef(Y.T), atol=1e-12)
    np.testing.assert_allclose(s.distance("phi"), np.sqrt((1 - phi_matrix(Y)) / 2) * (1 - np.eye(4)), atol=1e-12)


def test_streaming_equals_batch_and_is_symmetric() -> None:
    y = (np.random.default_rng(0).random((300, 9)) < 0.3).astype(np.int64)
    one, many = StreamingJaccard(9), StreamingJaccard(9)
    for row in y:
        one.learn_one(row)
    many.learn_many(y[:100]).learn_many(y[100:])
    assert one.n == many.n == 300
    np.testing.assert_array_equal(one.n11, many.n11)
    j = one.similarity()
    np.testing.assert_allclose(j, jaccard_matrix(y))
    np.testing.assert_allclose(j, j.T)
    np.testing.assert_allclose(np.diag(j), 1.0)


def test_hoeffding_bound_golden_and_rate() -> None:
    assert hoeffding_bound(1500, 0.9) == pytest.approx(0.00592623, abs=1e-8)
    assert hoeffding_bound(6, 0.05) == pytest.approx(0.499644, abs=1e-6)
    assert hoeffding_bound(6, 0.9) == pytest.approx(0.0937019, abs=1e-7)
    n = np.array([10, 40, 160, 640])
    e = hoeffding_bound(n, 0.9)
    np.testing.assert_allclose(e[:-1] / e[1:], 2.0)  # 1 / sqrt(n)


# --------------------------------------------------------------------------- ODAC over labels
def test_golden_diameter_no_split_yet() -> None:
    for legacy in (False, True):
        cl = OnlineLabelClusterer(4, n_min=6, legacy_avg=legacy)
        diam = cl._diameter(cl.root)  # before any observation: no statistics
        assert diam is None
        cl.stats.learn_many(Y)
        diam = cl._diameter(cl.root)
        assert diam is not None
        assert (diam.d1, diam.d2, diam.d0) == pytest.approx((1.0, 5 / 6, 0.25))
        assert diam.avg == pytest.approx(0.663889, abs=1e-6) and diam.e == pytest.approx(0.0937019, abs=1e-7)
        assert {int(cl.root.labels[p]) for p in diam.pivots} == {1, 2}
    cl = OnlineLabelClusterer(4, n_min=6).learn_many(Y)
    assert len(cl.clusters()) == 1 and not cl.structure_changed  # 0.0583 < e = 0.0937


def test_split_into_two_disjoint_groups_and_no_further() -> None:
    cl = OnlineLabelClusterer(6, n_min=100)
    cl.learn_many(two_groups(99, 0))
    assert len(cl.clusters()) == 1
    cl.learn_many(two_groups(1, 1))
    assert cl.structure_changed
    assert [c.tolist() for c in cl.clusters()] == [[0, 1, 2], [3, 4, 5]]
    cl.learn_many(two_groups(1000, 2))
    assert [c.tolist() for c in cl.clusters()] == [[0, 1, 2], [3, 4, 5]] and cl.n_changes == 1
    tree = cl.tree()
    assert not tree["active"] and [c["labels"] for c in tree["children"]] == [[0, 1, 2], [3, 4, 5]]


def test_learn_one_and_chunks_give_the_same_tree() -> None:
    y = two_groups(450, 3)
    a, b = OnlineLabelClusterer(6, n_min=100), OnlineLabelClusterer(6, n_min=100)
    for row in y:
        a.learn_one(row)
    b.learn_many(y[:37]).learn_many(y[37:])
    assert [c.tolist() for c in a.clusters()] == [c.tolist() for c in b.clusters()]
    assert a.learn_one({0: True, 1: True, 2: True}).stats.n == 451


def test_groups_merge_back_after_they_start_to_co_occur() -> None:
    cl = OnlineLabelClusterer(6, n_min=100)
    cl.learn_many(two_groups(500, 0))
    assert len(cl.clusters()) == 2 and [e[1] for e in cl.events] == ["split"]
    merged_at = None
    for period in range(5):
        cl.learn_many(two_groups(100, 10 + period, together=True))
        if len(cl.clusters()) == 1:
            merged_at = period
            break
    assert merged_at is not None and merged_at <= 1 and cl.events[-1][1:] == ("remerge", list(range(6)))
    # ODAC's own aggregate rule alone never fires here: the children stay perfectly homogeneous
    plain = OnlineLabelClusterer(6, n_min=100, remerge=False)
    plain.learn_many(two_groups(500, 0))
    plain.learn_many(two_groups(500, 5, together=True))
    assert len(plain.clusters()) == 2


def test_odac_aggregate_rule_when_a_child_spreads() -> None:
    """A child whose labels stop co-occurring gets a diameter above the parent's: aggregate."""
    rng = np.random.default_rng(0)
    a, b = rng.random(400) < 0.7, rng.random(400) < 0.7  # groups {0,1} and {2,3}, each label pair identical
    y = np.stack([a, a, b, b], 1).astype(np.int64)
    cl = OnlineLabelClusterer(4, n_min=200, remerge=False).learn_many(y)
    assert [c.tolist() for c in cl.clusters()] == [[0, 1], [2, 3]]
    assert cl.root.split_d1 == pytest.approx(1 - 0.49 / 0.91, abs=0.1)
    first = rng.random(2000) < 0.5  # labels 0 and 1 become mutually exclusive: d(0, 1) -> 1
    b = rng.random(2000) < 0.7
    cl.learn_many(np.stack([first, ~first, b, b], 1).astype(np.int64))
    assert cl.events[0] == (200, "split", [0, 1, 2, 3])
    assert cl.events[1][1:] == ("aggregate", [0, 1, 2, 3]) and cl.events[1][0] <= 1400


def test_phi_similarity_also_splits_the_groups() -> None:
    cl = OnlineLabelClusterer(6, n_min=100, similarity="phi").learn_many(two_groups(100, 0))
    assert [c.tolist() for c in cl.clusters()] == [[0, 1, 2], [3, 4, 5]]


# --------------------------------------------------------------------------- clusters, meta-labels
def test_meta_labels_golden_and_partition() -> None:
    mu = meta_labels(Y, [[0, 1], [2, 3]])
    np.testing.assert_array_equal(mu, [[1, 0], [1, 1], [0, 1], [1, 1], [1, 0], [0, 1]])
    y = (np.random.default_rng(1).random((50, 7)) < 0.3).astype(np.int64)
    clusters = [[0, 3], [1, 2, 6], [4, 5]]
    mu = meta_labels(y, clusters)
    for c, col in zip(clusters, mu.T):
        np.testing.assert_array_equal(col, y[:, c].max(1))
    with pytest.raises(ValueError, match="disjoint"):
        meta_labels(y, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="outside"):
        meta_labels(y, [[0, 9]])


def test_merge_small_clusters() -> None:
    clusters = [[0, 1, 2], [3], [4, 5, 6, 7], [8, 9, 10, 11]]
    paths = [(0, 1, 3), (0, 1, 4), (0, 2, 5), (0, 2, 6)]
    out = merge_small_clusters(clusters, paths, min_size=3, max_size=8)
    assert [c.tolist() for c in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]  # sibling first
    out = merge_small_clusters(clusters, paths, min_size=3, max_size=3)
    assert [c.tolist() for c in out] == [[0, 1, 2], [3], [4, 5, 6, 7], [8, 9, 10, 11]]  # the cap wins
    assert sorted(np.concatenate(merge_small_clusters(clusters, None, 5, 12)).tolist()) == list(range(12))
    with pytest.raises(ValueError, match="min_size"):
        merge_small_clusters(clusters, paths, min_size=0, max_size=3)


# --------------------------------------------------------------------------- hierarchy
class _Stub:
    """A root that always predicts cluster 0 present and cluster 1 absent."""

    def __init__(self, d: int, k: int) -> None:
        self.k = k

    def learn_many(self, x: np.ndarray, y: np.ndarray) -> None:
        pass

    def predict_proba_many(self, x: np.ndarray) -> np.ndarray:
        return np.tile(np.r_[1.0, np.zeros(self.k - 1)], (x.shape[0], 1))

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        return (self.predict_proba_many(x) > 0.5).astype(np.int64)


def test_routing_zeroes_unreached_clusters() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 5)), np.ones((200, 4), dtype=np.int64)
    model = IHOMERClassifier(5, 4, partition=[[0, 1], [2, 3]], root_model_factory=_Stub)
    model.learn_many(x, y)
    pred, scores = model.predict_many(x[:20]), model.predict_proba_many(x[:20])
    assert (pred[:, 2:] == 0).all() and (scores[:, 2:] == 0).all()
    assert pred[:, :2].all()  # the leaf learned "always on"
    assert model.predict_one(x[0]).tolist() == pred[0].tolist()


def test_leaves_learn_only_routed_instances_and_rebuild_keeps_unchanged() -> None:
    rng = np.random.default_rng(0)
    y = two_groups(600, 0)
    x = rng.normal(size=(600, 3)) + 3.0 * y[:, :1]
    model = IHOMERClassifier(3, 6, clusterer=OnlineLabelClusterer(6, n_min=200))
    model.learn_many(x[:200], y[:200])
    assert [c.tolist() for c in model.clusters] == [[0, 1, 2], [3, 4, 5]] and model.n_rebuilds == 1
    leaf = model.leaves[0]
    n_routed = int(y[200:400, 0].sum())
    model.learn_many(x[200:400], y[200:400])
    assert model.leaves[0] is leaf and leaf._size == min(leaf.window, n_routed + int(y[:200, 0].sum()))
    assert model.partition_at(0) == [list(range(6))] and model.partition_at(200) == [[0, 1, 2], [3, 4, 5]]
    r = prequential(model, x[400:], y[400:], warmup=10)
    assert r["subset accuracy"] > 0.9


def test_bad_inputs_name_the_argument() -> None:
    cl = OnlineLabelClusterer(4)
    with pytest.raises(ValueError, match="y must be multi-hot"):
        cl.learn_one([0, 2, 0, 1])
    with pytest.raises(ValueError, match="y must have 4 labels"):
        cl.learn_many(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="y holds NaN"):
        cl.learn_one([0.0, np.nan, 0.0, 1.0])
    with pytest.raises(ValueError, match="confidence_level"):
        OnlineLabelClusterer(4, confidence_level=1.5)
    with pytest.raises(ValueError, match="similarity"):
        OnlineLabelClusterer(4, similarity="cosine")
    model = IHOMERClassifier(3, 4)
    with pytest.raises(ValueError, match="x must be"):
        model.learn_many(np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="same number of rows"):
        model.learn_many(np.zeros((3, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="partition must cover"):
        IHOMERClassifier(3, 4, partition=[[0, 1]])
    with pytest.raises(ValueError, match="not both"):
        IHOMERClassifier(3, 4, clusterer=OnlineLabelClusterer(4), partition=[[0, 1, 2, 3]])
    with pytest.raises(ValueError, match="longer than warmup"):
        prequential(model, np.zeros((10, 3)), np.zeros((10, 4)), warmup=50)


# --------------------------------------------------------------------------- learners, detector, metrics
def test_window_knn_label_combination_and_window() -> None:
    knn = WindowKNN(2, 3, k=3, window=4)
    knn.learn_many(np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]]), np.array([[1, 0, 1], [1, 1, 0], [1, 0, 1]]))
    assert knn.predict_many(np.array([[0.1, 0.0]])).tolist() == [[1, 0, 1]]  # the most frequent labelset
    assert WindowKNN(2, 3, k=3, mode="br").learn_many(knn._x[:3], knn._y[:3]).predict_many(
        np.array([[0.1, 0.0]])
    ).tolist() == [[1, 0, 1]]
    np.testing.assert_allclose(knn.predict_proba_many(np.zeros((1, 2))), [[1.0, 1 / 3, 2 / 3]])
    knn.learn_many(np.full((3, 2), 9.0), np.zeros((3, 3), dtype=np.int64))  # only the last 4 rows stay
    assert knn._size == 4 and knn.predict_many(np.zeros((1, 2))).tolist() == [[0, 0, 0]]


def test_adwin_flags_rising_error_only() -> None:
    rng = np.random.default_rng(0)
    up, down = ADWIN(), ADWIN()
    hits_up = [up.update(float(v)) for v in np.r_[rng.random(500) < 0.1, rng.random(300) < 0.6]]
    hits_down = [down.update(float(v)) for v in np.r_[rng.random(500) < 0.6, rng.random(300) < 0.1]]
    assert any(hits_up[500:]) and not any(hits_up[:500])
    assert not any(hits_down) and down.width < 500  # the old part is dropped, but no alarm
    assert not any(ADWIN().update(float(v)) for v in rng.random(800) < 0.3)


def test_online_logistic_learns_a_linear_rule() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4))
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0], 1).astype(np.int64)
    m = OnlineLogisticBR(4, 2, lr=0.5)
    for s in range(0, 3000, 10):
        m.learn_many(x[s : s + 10], y[s : s + 10])
    assert (m.predict_many(x) == y).mean() > 0.95


def test_stream_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    t = (rng.random((400, 6)) < 0.3).astype(np.int64)
    p = np.where(rng.random((400, 6)) < 0.8, t, 1 - t)
    m = stream_metrics(p, t)
    assert m["subset accuracy"] == pytest.approx(accuracy_score(t, p))
    assert m["Hamming loss"] == pytest.approx(hamming_loss(t, p))
    assert m["micro-F1"] == pytest.approx(f1_score(t, p, average="micro", zero_division=0))
    assert m["macro-F1"] == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    assert m["example accuracy"] == pytest.approx(jaccard_score(t, p, average="samples", zero_division=1))
    ml = multilabel_metrics(p.astype(float), t, threshold=0.5)
    assert (m["micro-F1"], m["macro-F1"]) == pytest.approx((ml["micro-F1"], ml["macro-F1"]))


def test_prequential_predicts_before_learning() -> None:
    """Test-then-train: the first chunk is predicted by an untrained model."""
    x, y = np.ones((60, 2)), np.ones((60, 3), dtype=np.int64)
    r = prequential(WindowKNN(2, 3), x, y, warmup=0, chunk=5)
    assert r["pred"][:5].sum() == 0 and r["pred"][5:].all()
    assert r["subset accuracy"] == pytest.approx(55 / 60)
