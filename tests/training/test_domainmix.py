"""Tests of DomainMix (paper 38): golden values from the reference implementation, the balance
loss's optimum, the Jaccard distance's properties, the reliability criterion and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperzoo.training.domainmix import (
    DomainBalanceLoss,
    DomainDiscriminator,
    DomainMixObjective,
    domain_balance_loss,
    jaccard_distance,
    reliability_scores,
    reliable_dbscan_pseudo_labels,
    soft_triplet_loss,
)

F12 = np.array([
    [0.96594869, -0.03453325, -0.25641876], [0.97136062, -0.14560443, -0.18777085],
    [0.98801898, 0.11711235, -0.10051468], [0.99507714, -0.09478965, 0.0289208],
    [0.96679201, 0.1831423, -0.1782473], [0.02007224, 0.99793369, 0.06103645],
    [-0.16999406, 0.98291366, 0.0705886], [0.18713096, 0.97727752, 0.09955231],
    [0.0238731, 0.98673722, -0.16056069], [-0.1175284, 0.98731645, -0.10673937],
    [0.0, 0.0, 1.0], [0.6092077, 0.6092077, 0.50767308],
])  # fmt: skip
X6 = torch.tensor([
    [-2.3104118, -0.37325086, -1.26092466], [-0.72695106, -0.01996475, 0.21029989],
    [0.17718935, -0.83051005, 0.23871806], [0.73352837, -0.77301128, -1.59518149],
    [-0.68700369, 1.48807432, -0.4484158], [-0.89100304, 0.67485754, 1.04686538],
], dtype=torch.float64)  # fmt: skip


# --------------------------------------------------------------------------- domain balance loss
def test_balance_golden_value_and_gradient() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.0], [-0.5, 1.5]], dtype=torch.float64, requires_grad=True)
    loss = DomainBalanceLoss()(logits)
    loss.backward()
    assert loss.item() == pytest.approx(0.583551331, abs=1e-8)
    expected = torch.tensor([[0.045177, -0.045177], [0.0, 0.0], [-0.069996, 0.069996]], dtype=torch.float64)
    torch.testing.assert_close(logits.grad, expected, atol=1e-6, rtol=0)


def test_balance_extremes() -> None:
    assert domain_balance_loss(torch.zeros(5, 2)).item() == pytest.approx(1 - np.log(2), abs=1e-7)
    assert domain_balance_loss(torch.tensor([[60.0, -60.0]], dtype=torch.float64)).item() == pytest.approx(1.0)
    z = torch.randn(7, 2, dtype=torch.float64)
    assert (domain_balance_loss(z) >= 1 - np.log(2) - 1e-12).item()


def test_balance_gradcheck() -> None:
    z = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(domain_balance_loss, (z,))


@pytest.mark.parametrize(
    ("logits", "match"),
    [(torch.zeros(3, 3), "logits"), (torch.zeros(0, 2), "empty"), (torch.tensor([[float("nan"), 0.0]]), "NaN")],
)
def test_balance_bad_input(logits: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        domain_balance_loss(logits)


# --------------------------------------------------------------------------- triplet and smoothed CE
def test_soft_triplet_golden_and_closed_form() -> None:
    x = X6.clone().requires_grad_(True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = soft_triplet_loss(x, y)
    loss.backward()
    assert loss.item() == pytest.approx(0.872319753, abs=1e-7)
    torch.testing.assert_close(x.grad[0], torch.tensor([-0.0967447, 0.0167517, -0.107682], dtype=torch.float64),
                               atol=1e-6, rtol=0)  # fmt: skip
    d = torch.cdist(X6, X6)
    same = y[:, None] == y[None, :]
    d_ap = torch.where(same, d, -torch.inf).max(1).values
    d_an = torch.where(~same, d, torch.inf).min(1).values
    assert loss.item() == pytest.approx(torch.nn.functional.softplus(d_ap - d_an).mean().item(), abs=1e-10)


def test_soft_triplet_bad_shapes() -> None:
    with pytest.raises(ValueError, match="labels"):
        soft_triplet_loss(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))


def test_label_smoothed_ce_with_temperature_golden() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, -0.5]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    obj = DomainMixObjective(4, adversarial=False)
    assert obj.ce(logits / obj.temperature, y).item() == pytest.approx(0.712179514, abs=1e-8)
    plain = torch.nn.CrossEntropyLoss()(logits / 2, y).item()
    assert plain == pytest.approx(0.614054514, abs=1e-8)


# --------------------------------------------------------------------------- Jaccard distance
def test_jaccard_golden_rows() -> None:
    d = jaccard_distance(F12, k1=4, k2=2)
    one = [1.0] * 7
    np.testing.assert_allclose(d[0], [0, 0, 0.518586, 0.400948, 0.518586, *one], atol=1e-5)
    np.testing.assert_allclose(d[3], [0.400948, 0.400948, 0.7087, 0, 0.7087, *one], atol=1e-5)
    np.testing.assert_allclose(d[6], [1, 1, 1, 1, 1, 0.671603, 0, 0.671603, 0.222905, 0.222905, 1, 0.859572], atol=1e-5)
    np.testing.assert_allclose(
        d[11], [1, 1, 1, 1, 1, 0.666667, 0.859572, 0.666667, 0.934828, 0.934828, 0.666667, 0], atol=1e-5
    )


def test_jaccard_dbscan_golden_labels() -> None:
    from sklearn.cluster import DBSCAN

    d = jaccard_distance(F12, k1=4, k2=2)
    got = {e: DBSCAN(eps=e, min_samples=4, metric="precomputed").fit_predict(d).tolist() for e in (0.5, 0.6, 0.7)}
    assert got[0.5] == [-1] * 12
    assert got[0.6] == [0] * 5 + [-1] * 7
    assert got[0.7] == [0] * 5 + [1] * 7


def test_jaccard_properties() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 6))
    x[5] = x[4]  # a duplicate
    d = jaccard_distance(x, k1=8, k2=3)
    np.testing.assert_array_equal(d, d.T)
    assert (np.diag(d) == 0).all() and d.min() >= 0 and d.max() <= 1
    assert d[4, 5] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("x", "match"), [(np.zeros(5), "2-D"), (np.zeros((0, 3)), "empty"),
                                          (np.full((3, 2), np.nan), "NaN")])  # fmt: skip
def test_jaccard_bad_input(x: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        jaccard_distance(x)


def test_jaccard_bad_k() -> None:
    with pytest.raises(ValueError, match="k1"):
        jaccard_distance(np.eye(3), k1=0)


# --------------------------------------------------------------------------- reliability
def test_reliability_golden() -> None:
    r_comp, r_indep = reliability_scores([0, 0, 0, 0, 1, 1, 1, 1, 2, 3], [0, 0, 0, 4, 1, 1, 1, 1, 2, 3],
                                         [0, 0, 0, 0, 0, 0, 0, 0, 2, 3])  # fmt: skip
    np.testing.assert_allclose(r_comp, [0.25, 0.25, 0.25, 0.75, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(r_indep, [0.5] * 8 + [0, 0])


def test_reliability_identical_labelings_keep_everything() -> None:
    y = np.repeat(np.arange(4), 6)
    r_comp, r_indep = reliability_scores(y, y, y)
    assert (r_comp == 0).all() and (r_indep == 0).all()


def test_reliability_bad_input() -> None:
    with pytest.raises(ValueError, match="tight"):
        reliability_scores([0, 1], [0], [0, 1])
    with pytest.raises(TypeError, match="normal"):
        reliability_scores([0.5, 1.0], [0, 1], [0, 1])


def test_reliable_pseudo_labels_recover_separated_groups() -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 15)
    x = np.eye(8)[truth] + rng.normal(0, 0.05, size=(60, 8))
    labels, thr = reliable_dbscan_pseudo_labels(jaccard_distance(x, k1=10, k2=3), eps=0.6)
    from sklearn.metrics import adjusted_rand_score

    kept = labels >= 0
    assert labels.max() + 1 == 4 and kept.mean() > 0.8
    assert adjusted_rand_score(truth[kept], labels[kept]) == pytest.approx(1.0)
    # a fixed threshold below every score discards all multi-member clusters
    none, thr2 = reliable_dbscan_pseudo_labels(jaccard_distance(x, k1=10, k2=3), eps=0.6, fixed_threshold=-1.0)
    assert (none == -1).all() and thr2 == -1.0


def test_reliable_pseudo_labels_bad_input() -> None:
    with pytest.raises(ValueError, match="square"):
        reliable_dbscan_pseudo_labels(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="eps"):
        reliable_dbscan_pseudo_labels(np.zeros((3, 3)), eps=0.0)


# --------------------------------------------------------------------------- objective
def test_discriminator_shape() -> None:
    d = DomainDiscriminator(16, hidden=(8, 4))
    assert d(torch.randn(5, 16)).shape == (5, 2)
    with pytest.raises(ValueError, match="in_dim"):
        DomainDiscriminator(0)


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(6, 4)
        self.neck = torch.nn.BatchNorm1d(4)
        self.cls = torch.nn.Linear(4, 3, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.body(x)
        b = self.neck(f)
        return f, b, self.cls(b)


def test_objective_updates_discriminator_every_d_every_calls_only() -> None:
    torch.manual_seed(0)
    model, obj = _Toy(), DomainMixObjective(4, d_every=3, hidden=(8,))
    batch = (torch.randn(8, 6), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1]), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    snapshots = []
    for _ in range(4):
        loss = obj(model, batch)
        loss.backward()
        snapshots.append(obj.discriminator[0].weight.detach().clone())
        assert obj.discriminator[0].weight.grad is None  # the generator step leaves it alone
    changed = [not torch.equal(a, b) for a, b in zip(snapshots, snapshots[1:])]
    assert changed == [False, False, True]  # calls 0 and 3 update it; call 0 happens before snapshot 0
    assert model.body.weight.grad is not None and model.body.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="domain"):
        obj(model, (batch[0], batch[1], batch[2] + 1))
    obj.active = False  # warm-up: no adversarial term, the bad domain ids are not read
    calls = obj.calls
    assert torch.isfinite(obj(model, (batch[0], batch[1], batch[2] + 1))) and obj.calls == calls
