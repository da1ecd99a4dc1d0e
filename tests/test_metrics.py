import numpy as np
import pytest
import torch

from paperzoo import metrics


def test_accuracy_and_f1() -> None:
    assert metrics.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    # class 0: F1 1; class 1: P .5 R 1 -> 2/3; class 2: P 1 R .5 -> 2/3
    assert metrics.macro_f1([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    with pytest.raises(ValueError, match="same length"):
        metrics.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy([], [])


def test_top_k() -> None:
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    target = torch.tensor([2, 0, 0])
    assert metrics.top_k_accuracy(scores, target, ks=(1, 2, 3)) == {
        1: pytest.approx(1 / 3),
        2: pytest.approx(2 / 3),
        3: 1.0,
    }
    with pytest.raises(ValueError, match=r"^top_k_accuracy: ks\[1\] must be an int in \[1, 3\], got 4$"):
        metrics.top_k_accuracy(scores, target, ks=(1, 4))
    with pytest.raises(ValueError, match=r"^top_k_accuracy: ks\[0\] must be an int in \[1, 3\], got 0$"):
        metrics.top_k_accuracy(scores, target, ks=(0,))


def test_retrieval_metrics_hand_computed() -> None:
    # 1-D embeddings on the unit circle: two tight pairs and one pair split apart
    angles = torch.tensor([0.0, 0.1, 1.5, 1.6, 3.0, 0.05])
    emb = torch.stack([angles.cos(), angles.sin()], dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    out = metrics.retrieval_metrics(emb, labels, ks=(1, 2))
    # nearest neighbours: 0->5 (wrong), 1->5 (wrong), 2->3, 3->2, 4->3 (wrong), 5->0 (wrong)
    assert out["R@1"] == pytest.approx(2 / 6)
    # second neighbours: 0->1 (right), 1->0 (right), 4->2 (wrong), 5->1 (wrong)
    assert out["R@2"] == pytest.approx(4 / 6)
    assert out["P@1"] == pytest.approx(out["R@1"])
    assert 0 <= out["MAP@R"] <= out["R@2"]


def test_retrieval_perfect_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 10
    labels = torch.arange(5).repeat_interleave(4)
    emb = centres[labels] + 0.01 * torch.randn(20, 16, generator=g)
    out = metrics.retrieval_metrics(emb, labels)
    assert out["R@1"] == out["MAP@R"] == 1.0


def test_rank1_and_eer() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([[0.9, 0.1], [0.1, 0.9], [-1.0, 0.0]])
    assert metrics.rank1(q, torch.tensor([0, 1]), g, torch.tensor([0, 1, 2])) == 1.0
    assert metrics.rank1(q, torch.tensor([0, 1]), g, torch.tensor([1, 0, 2])) == 0.0
    # perfectly separable scores -> EER 0; reversed -> 1
    assert metrics.equal_error_rate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == pytest.approx(0.0)
    assert metrics.equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == pytest.approx(1.0)
    # one genuine below one impostor out of two each -> EER 0.5
    assert metrics.equal_error_rate([0.9, 0.3, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both genuine"):
        metrics.equal_error_rate([0.1, 0.2], [1, 1])


def test_cluster_accuracy_one_global_matching() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    old = y < 2
    perm = np.array([3, 3, 2, 2, 1, 1, 0, 0])  # a relabelling of a perfect clustering
    assert metrics.cluster_accuracy(y, perm, old) == {"all": 1.0, "old": 1.0, "new": 1.0}
    # new classes merged into one cluster: one of them is matched, the other is wrong
    pred = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    out = metrics.cluster_accuracy(y, pred, old)
    assert out == {"all": 0.75, "old": 1.0, "new": 0.5}
    # the matching is global: a cluster cannot serve both subsets
    pred = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    out = metrics.cluster_accuracy(y, pred, old)
    assert out["all"] == 0.5 and out["old"] + out["new"] == pytest.approx(1.0)
    assert np.isnan(metrics.cluster_accuracy(y, y, np.ones(8, bool))["new"])
    with pytest.raises(ValueError, match="same length"):
        metrics.cluster_accuracy(y, y[:3], old)


def test_nmi_ari() -> None:
    assert metrics.nmi([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert metrics.ari([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)


def test_retrieval_against_a_separate_gallery() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gallery = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.8, 0.3]])
    out = metrics.retrieval_metrics(q, torch.tensor([0, 1]), ks=(1,), reference=(gallery, torch.tensor([1, 0, 0])))
    # query 0's nearest is gallery 0 (label 1, wrong); query 1's nearest is gallery 1 (label 0, wrong)
    assert out["R@1"] == 0.0
    out = metrics.retrieval_metrics(q, torch.tensor([0, 1]), ks=(1,), reference=(gallery, torch.tensor([0, 1, 0])))
    assert out["R@1"] == 1.0


def test_multilabel_metrics_golden_and_errors() -> None:
    from paperzoo.metrics import multilabel_metrics

    t = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.array([[2.0, -1.0], [0.5, 1.0], [-0.5, 0.2], [-1.0, 3.0]])
    got = multilabel_metrics(s, t)
    # class 0: ranking 2.0 (pos), 0.5 (neg), -0.5 (pos), -1.0 (neg): AP = (1 + 2/3) / 2
    # class 1: ranking 3.0 (neg), 1.0 (pos), 0.2 (pos), -1.0 (neg): AP = (1/2 + 2/3) / 2
    assert got["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + (1 / 2 + 2 / 3) / 2) / 2)
    # predictions s > 0: [[1,0],[1,1],[0,1],[0,1]] -> TP 3, FP 2, FN 1
    assert got["micro-F1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    with pytest.raises(ValueError, match="multi-hot"):
        multilabel_metrics(s, t * 2)
    with pytest.raises(ValueError, match="NaN"):
        multilabel_metrics(np.full((4, 2), np.nan), t)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        multilabel_metrics(s[:, 0], t)
    with pytest.raises(ValueError, match="empty"):
        multilabel_metrics(s[:0], t[:0])


# --------------------------------------------------------------------------- GCD clustering accuracy (official goldens)
def test_cluster_accuracy_golden_values_of_the_official_code() -> None:
    old = np.array([True] * 5 + [False] * 5)
    y, pred = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3]), np.array([1, 1, 0, 0, 0, 2, 2, 3, 3, 3])
    assert metrics.cluster_accuracy(y, pred, old) == pytest.approx({"all": 0.8, "old": 0.8, "new": 0.8})
    assert metrics.cluster_accuracy(y, pred, old, balanced=True) == pytest.approx(
        {"all": 0.833333, "old": 0.833333, "new": 0.833333}, abs=1e-6
    )
    y2, pred2 = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 3]), np.array([0, 0, 0, 1, 1, 1, 3, 3, 2, 2])
    assert metrics.cluster_accuracy(y2, pred2, y2 < 2) == pytest.approx(
        {"all": 0.8, "old": 0.833333, "new": 0.75}, abs=1e-6
    )


def test_cluster_accuracy_properties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 6, 200))
    old = y < 3
    base = metrics.cluster_accuracy(y, pred, old)
    perm = rng.permutation(6)
    assert metrics.cluster_accuracy(y, perm[pred], old) == pytest.approx(base)  # cluster ids do not matter
    assert metrics.cluster_accuracy(y, perm[y] + 10, old) == {"all": 1.0, "old": 1.0, "new": 1.0}
    assert base["all"] == pytest.approx((base["old"] * old.sum() + base["new"] * (~old).sum()) / 200)
    balanced_y = np.repeat(np.arange(4), 5)
    balanced_pred = rng.integers(0, 4, 20)
    assert metrics.cluster_accuracy(balanced_y, balanced_pred, balanced_y < 2, balanced=True)["all"] == pytest.approx(
        metrics.cluster_accuracy(balanced_y, balanced_pred, balanced_y < 2)["all"]
    )


def test_cluster_mapping_is_the_matching_used() -> None:
    y, pred = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3]), np.array([1, 1, 0, 0, 0, 2, 2, 3, 3, 3])
    mapping = metrics.cluster_mapping(y, pred)
    assert mapping == {0: 1, 1: 0, 2: 2, 3: 3}
    assert np.mean(np.array([mapping[p] for p in pred]) == y) == metrics.cluster_accuracy(y, pred, y < 2)["all"]
    assert (
        metrics.cluster_mapping([0, 0, 1], [4, 5, 6]).keys() <= {4, 5, 6}
        and len(metrics.cluster_mapping([0, 0, 1], [4, 5, 6])) == 2
    )
    with pytest.raises(ValueError, match="empty"):
        metrics.cluster_mapping([], [])
