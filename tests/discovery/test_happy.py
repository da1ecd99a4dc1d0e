"""Happy (continual GCD) components: golden values, properties, gradcheck, bad input, one tiny run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.data.continual_gcd import make_cgcd_sessions
from paperzoo.discovery.happy import (
    FeatureDistillationTerm,
    FeatureNet,
    GroupEntropyRegularizer,
    HappyConfig,
    PrototypeBank,
    PrototypeSamplingTerm,
    feature_distillation_loss,
    group_entropy_terms,
    init_new_classifier_rows,
    run_continual,
)
from paperzoo.discovery.heads import DINOHead
from paperzoo.discovery.losses import mean_entropy_regularizer
from paperzoo.discovery.trainer import GCDBatch


def _logits() -> torch.Tensor:
    i = torch.arange(8.0, dtype=torch.float64)[:, None]
    k = torch.arange(5.0, dtype=torch.float64)[None]
    return torch.sin(1.3 * i + 0.7 * k + 0.1)


def _features() -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.arange(12.0, dtype=torch.float64)[:, None]
    j = torch.arange(4.0, dtype=torch.float64)[None]
    return F.normalize(torch.cos(0.37 * n * (j + 1) + 0.2), dim=1), torch.tensor([0] * 4 + [1] * 4 + [2] * 4)


def _batch(logits: torch.Tensor) -> GCDBatch:
    b = logits.shape[0] // 2
    return GCDBatch(logits, torch.zeros(2 * b, 3), logits, torch.full((b,), -1), torch.zeros(b, dtype=torch.bool))


# --------------------------------------------------------------------------- golden values
def test_group_entropy_golden() -> None:
    logits = _logits()
    p_bar = F.softmax(logits / 0.1, dim=1).mean(0)
    np.testing.assert_allclose(p_bar, [0.462931, 0.067402, 0.200554, 0.060483, 0.208631], atol=1e-6)
    t = group_entropy_terms(logits, 3)
    np.testing.assert_allclose([float(t["old_new"]), float(t["old_in"]), float(t["new_in"])],
                               [0.110772, 0.234702, 0.160295], atol=1e-6)  # fmt: skip
    assert sum(float(v) for v in t.values()) == pytest.approx(0.505769, abs=1e-6)
    assert float(mean_entropy_regularizer(logits)) == pytest.approx(0.252245, abs=1e-6)
    out = GroupEntropyRegularizer(3, weights=(2.0, 1.0, 0.5))(_batch(logits), 0)
    assert float(out["ent_old_new"]) == pytest.approx(2 * 0.110772, abs=1e-5)
    assert float(out["ent_new_in"]) == pytest.approx(0.5 * 0.160295, abs=1e-5)


def test_prototype_bank_golden() -> None:
    f, y = _features()
    bank = PrototypeBank(4).fit_offline(f, y)
    np.testing.assert_allclose(
        bank.prototypes,
        [[0.929277, 0.173812, -0.268693, -0.184495], [-0.780100, -0.372227, 0.501298, -0.039898],
         [-0.898948, 0.407543, 0.011234, -0.160232]], atol=1e-6,
    )  # fmt: skip
    assert bank.radius == pytest.approx(0.416974, abs=1e-6)
    np.testing.assert_allclose(bank.hardness(), [-0.827476, -0.177682, -0.088198], atol=1e-6)
    np.testing.assert_allclose(bank.probabilities(0.1), [0.000437, 0.289985, 0.709578], atol=1e-6)


def test_feature_distillation_golden() -> None:
    n = torch.arange(8.0, dtype=torch.float64)[:, None]
    j = torch.arange(4.0, dtype=torch.float64)[None]
    assert float(feature_distillation_loss(torch.sin(n + j), torch.sin(n + 1.1 * j))) == pytest.approx(
        0.0403744, abs=1e-7
    )


# --------------------------------------------------------------------------- properties
def test_group_entropy_zeros_and_limits() -> None:
    # uniform predictions over 2 + 2 classes: every term 0
    t = group_entropy_terms(torch.zeros(6, 4), 2)
    assert all(abs(float(v)) < 1e-7 for v in t.values())
    # uniform over 3 + 2 classes: uniform within groups (0), but P_s = 0.6 != 1/2 (> 0)
    t = group_entropy_terms(torch.zeros(6, 5), 3)
    assert abs(float(t["old_in"])) < 1e-7 and abs(float(t["new_in"])) < 1e-7 and float(t["old_new"]) > 0.01
    # seen/new split balanced but uneven within the seen group: old_new 0, old_in > 0
    logits = torch.tensor([[5.0, 0.0, 0.0, 5.0], [5.0, 0.0, 0.0, 5.0]])
    t = group_entropy_terms(logits, 2)
    assert abs(float(t["old_new"])) < 1e-6 and float(t["old_in"]) > 0.1
    # a single new class: new_in is 0
    assert float(group_entropy_terms(torch.randn(6, 4), 3)["new_in"]) == 0.0
    for v in group_entropy_terms(torch.randn(10, 7), 4).values():
        assert float(v) >= -1e-7


def test_group_entropy_permutation_invariance() -> None:
    logits = torch.randn(12, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = group_entropy_terms(logits, 4)
    within = group_entropy_terms(logits[:, [2, 0, 3, 1, 5, 4]], 4)
    for k in ref:
        assert float(within[k]) == pytest.approx(float(ref[k]), abs=1e-12)
    across = group_entropy_terms(logits[:, [4, 1, 2, 3, 0, 5]], 4)
    assert any(abs(float(across[k]) - float(ref[k])) > 1e-6 for k in ref)


def test_gradcheck_float64() -> None:
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: sum(group_entropy_terms(s, 2).values()), (logits,))
    f = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    f_pre = torch.randn(6, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: feature_distillation_loss(a, f_pre), (f,))


def test_prototype_sampling_properties() -> None:
    f, y = _features()
    bank = PrototypeBank(4).fit_offline(f, y)
    g = torch.Generator().manual_seed(0)
    u, c = bank.sample(5, radius_scale=0.0, generator=g)
    torch.testing.assert_close(u, bank.prototypes[c])
    _, c = bank.sample(60000, temperature=0.1, generator=g)
    np.testing.assert_allclose(np.bincount(c.numpy(), minlength=3) / 60000, bank.probabilities(0.1), atol=0.01)
    _, c = bank.sample(60000, temperature=math.inf, generator=g)
    np.testing.assert_allclose(np.bincount(c.numpy(), minlength=3) / 60000, [1 / 3] * 3, atol=0.01)


def test_radius_scaling() -> None:
    means = F.normalize(torch.randn(3, 6, dtype=torch.float64), dim=1)
    y = torch.arange(3).repeat_interleave(5)
    assert PrototypeBank(6).fit_offline(means[y], y).radius == pytest.approx(0.0, abs=1e-7)
    # the radius is the root mean per-dimension variance of the normalised features around their class means
    f, y = _features()
    r1 = PrototypeBank(4).fit_offline(f, y).radius
    fn = F.normalize(f, dim=1)
    centred = fn - torch.stack([fn[y == c].mean(0) for c in range(3)])[y]
    manual = math.sqrt(float(centred.pow(2).sum(1).mean()) / 4)  # equal class sizes
    assert r1 == pytest.approx(manual, abs=1e-9)


def test_prototype_append_uses_predictions_and_fallback() -> None:
    f, y = _features()
    bank = PrototypeBank(4).fit_offline(f[:8], y[:8])
    rows = torch.tensor([[0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0]], dtype=torch.float64)
    preds = torch.tensor([0] * 8 + [2] * 4)
    bank.append(f, preds, rows)
    assert len(bank) == 4
    torch.testing.assert_close(bank.prototypes[2], F.normalize(f[8:].mean(0), dim=0))
    torch.testing.assert_close(bank.prototypes[3], torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64))


def test_feature_distillation_zero_for_a_fresh_copy() -> None:
    net = FeatureNet(nn.Linear(6, 8), DINOHead(8, 4, hidden=16, bottleneck=4))
    pre = FeatureNet(nn.Linear(6, 8), DINOHead(8, 3, hidden=16, bottleneck=4))
    pre.backbone.load_state_dict(net.backbone.state_dict())
    x = torch.randn(10, 6)
    _, logits = net(x)
    out = FeatureDistillationTerm(net, pre)(GCDBatch(x, torch.zeros(10, 4), logits, torch.full((5,), -1),
                                                     torch.zeros(5, dtype=torch.bool)), 0)  # fmt: skip
    assert float(out["feat_distill"].detach()) == pytest.approx(0.0, abs=1e-10)
    bank = PrototypeBank(8).fit_offline(torch.randn(9, 8), torch.arange(3).repeat(3))
    proto = PrototypeSamplingTerm(net, bank)(GCDBatch(x, torch.zeros(10, 4), logits, torch.full((5,), -1),
                                                      torch.zeros(5, dtype=torch.bool)), 0)["proto"]  # fmt: skip
    proto.backward()
    assert net.head.classifier.linear.parametrizations.weight.original1.grad is not None


def test_init_new_classifier_rows_picks_the_least_similar_centroids() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(4, dtype=torch.float64)  # old rows e0, e1; new clusters at e2, e3
    x = centres.repeat_interleave(20, 0) + 0.01 * torch.randn(80, 4, generator=g, dtype=torch.float64)
    rows = init_new_classifier_rows(x, centres[:2], n_new=2)
    torch.testing.assert_close(rows.norm(dim=1), torch.ones(2, dtype=torch.float64))
    assert sorted(rows.abs().argmax(1).tolist()) == [2, 3]


# --------------------------------------------------------------------------- sessions
def test_sessions_protocol() -> None:
    y = np.repeat(np.arange(8), 30)
    yt = np.repeat(np.arange(8), 5)
    s = make_cgcd_sessions(y, [0, 1, 2, 3, 4, 5], 2, old_seen=3, novel_seen=4, novel_unseen=20, test_labels=yt)
    assert s.session_classes == ((6,), (7,)) and s.n_seen(1) == 6 and s.n_all(2) == 8
    assert len(s.stage0_idx) == 6 * 24 and set(y[s.stage0_idx]) == set(range(6))
    counts2 = np.bincount(y[s.session_idx[1]], minlength=8)
    np.testing.assert_array_equal(counts2, [3] * 6 + [4, 20])
    assert not np.isin(s.session_idx[0][y[s.session_idx[0]] < 6], s.stage0_idx).any()  # only the unlabelled pool
    assert set(yt[s.test_idx[0]]) == set(range(7)) and set(yt[s.test_idx[1]]) == set(range(8))
    np.testing.assert_array_equal(s.relabel(np.array([0, 6, 7])), [0, 6, 7])
    sh = make_cgcd_sessions(y, range(4), 2, shuffle_seed=3)
    assert sorted(c for g in sh.session_classes for c in g) == [4, 5, 6, 7]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": np.array([0.5, 1.0])}, "labels"),
        ({"old_classes": [9]}, "old_classes"),
        ({"n_sessions": 3}, "split evenly"),
        ({"old_classes": range(8)}, "no novel class"),
        ({"prop_labelled": 1.5}, "prop_labelled"),
        ({"novel_unseen": 0}, "novel_unseen"),
    ],
)
def test_sessions_bad_input(kwargs: dict, match: str) -> None:
    args = {"labels": np.repeat(np.arange(8), 10), "old_classes": range(4), "n_sessions": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_cgcd_sessions(**args)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n_seen"):
        group_entropy_terms(torch.randn(4, 3), 3)
    with pytest.raises(ValueError, match="empty batch"):
        group_entropy_terms(torch.randn(0, 3), 1)
    with pytest.raises(ValueError, match="logits"):
        group_entropy_terms(torch.tensor([[float("nan"), 0.0]]), 1)
    with pytest.raises(ValueError, match="same shape"):
        feature_distillation_loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="no prototype"):
        PrototypeBank(3).sample(2)
    with pytest.raises(ValueError, match="every class"):
        PrototypeBank(3).fit_offline(torch.randn(4, 3), torch.tensor([0, 0, 2, 2]))
    with pytest.raises(ValueError, match="larger than the number of samples"):
        init_new_classifier_rows(torch.randn(3, 4), torch.randn(2, 4), n_new=2)
    with pytest.raises(ValueError, match="prototypes"):
        HappyConfig(prototypes="nearest")
    with pytest.raises(ValueError, match="weights"):
        GroupEntropyRegularizer(2, weights=(1.0, 1.0))


def test_run_continual_tiny() -> None:
    from paperzoo.discovery.views import FeatureViews

    g = np.random.default_rng(0)
    centres = g.normal(size=(6, 10)) * 3
    y = np.repeat(np.arange(6), 40)
    x = torch.from_numpy((centres[y] + g.normal(size=(240, 10))).astype(np.float32))
    s = make_cgcd_sessions(y, range(4), 2, old_seen=5, novel_seen=5, novel_unseen=30)
    seen = []
    torch.manual_seed(0)
    cfg = HappyConfig(stage0_epochs=2, session_epochs=2, batch_size=16)
    stage0, final = run_continual(
        nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 8)), lambda k: DINOHead(8, k, hidden=16, bottleneck=4),
        x, s.relabel(y), s, FeatureViews(), cfg, on_session=lambda t, m: seen.append((t, m.head.classifier.n_classes)),
    )  # fmt: skip
    assert seen == [(1, 5), (2, 6)] and stage0.head.classifier.n_classes == 4
    # the old classifier rows are carried over to the next session's head at its start
    assert final.head.classifier.n_classes == 6
