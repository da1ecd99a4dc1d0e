"""Paper 49: bag-level, instance-level and interpolating losses for aggregate responses, and the
linear closed form. The classification conformance suite does not apply (the losses take
predictions, bag responses and a bag index), so its checks are written out here."""

from __future__ import annotations

import io
import pickle

import pytest
import torch

from paperzoo.losses import (
    BagLevelLoss,
    InstanceLevelLoss,
    InterpolatingAggregateLoss,
    bag_level_loss,
    bag_mean_predictions,
    fit_linear_aggregate,
    instance_level_loss,
    interpolating_aggregate_loss,
    within_bag_variance,
)
from paperzoo.losses.aggregate_responses import _reference_interpolating, _reference_losses

F64 = torch.float64
X_G = torch.tensor([[1.0, 0.5], [0.2, -1.0], [-0.3, 0.8], [1.5, 1.0], [0.0, -0.4], [-1.2, 0.3]], dtype=F64)
Y_G = torch.tensor([1.0, -0.5, 0.7, 2.0, -0.1, -0.9], dtype=F64)
BAGS_G = torch.tensor([0, 0, 1, 1, 2, 2])
THETA_G = torch.tensor([0.8, -0.3], dtype=F64)


def _ybar(y: torch.Tensor, bags: torch.Tensor) -> torch.Tensor:
    m = int(bags.max()) + 1
    return torch.zeros(m, dtype=y.dtype).index_add_(0, bags, y) / torch.bincount(bags, minlength=m).to(y.dtype)


def _random(n: int = 40, m: int = 9, seed: int = 0, dtype: torch.dtype = F64) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    bags = torch.cat([torch.arange(m), torch.randint(0, m, (n - m,), generator=g)])  # unequal sizes, none empty
    bags = bags[torch.randperm(n, generator=g)]
    return torch.randn(n, generator=g, dtype=dtype), torch.randn(m, generator=g, dtype=dtype), bags


# --------------------------------------------------------------------------- golden values
def test_golden_values() -> None:
    ybar = _ybar(Y_G, BAGS_G)
    assert torch.allclose(ybar, torch.tensor([0.25, 1.35, -0.5], dtype=F64))
    pred = X_G @ THETA_G
    assert float(bag_level_loss(pred, ybar, BAGS_G)) == pytest.approx(0.464617, abs=1e-6)
    assert float(instance_level_loss(pred, ybar, BAGS_G)) == pytest.approx(0.7404, abs=1e-10)
    assert float(within_bag_variance(pred, BAGS_G)) == pytest.approx(0.275783, abs=1e-6)
    for rho, want in ((0.0, 0.464617), (0.5, 0.602508), (1.0, 0.7404)):
        assert float(interpolating_aggregate_loss(pred, ybar, BAGS_G, rho)) == pytest.approx(want, abs=1e-6)
        assert float(InterpolatingAggregateLoss(rho)(pred, ybar, BAGS_G)) == pytest.approx(want, abs=1e-6)
    for rho, want in ((0.0, [0.790984, 0.966042]), (0.5, [0.501732, 0.753879]), (1.0, [0.37144, 0.608048])):
        theta = fit_linear_aggregate(X_G, ybar, BAGS_G, rho)
        assert torch.allclose(theta, torch.tensor(want, dtype=F64), atol=1e-6)


# --------------------------------------------------------------------------- the paper's identities
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lemma1_instance_equals_bag_plus_within_bag_variance(seed: int) -> None:
    pred, ybar, bags = _random(seed=seed)  # unequal bag sizes: the k_a / n weighting keeps it exact
    total = bag_level_loss(pred, ybar, bags) + within_bag_variance(pred, bags, ybar.shape[0])
    assert torch.allclose(instance_level_loss(pred, ybar, bags), total, rtol=0, atol=1e-12)
    assert torch.allclose(InstanceLevelLoss()(pred, ybar, bags), total, rtol=0, atol=1e-12)
    assert torch.allclose(BagLevelLoss()(pred, ybar, bags), bag_level_loss(pred, ybar, bags), rtol=0, atol=1e-15)


def test_bag_size_one_is_ordinary_mse() -> None:
    pred, y = torch.randn(12, dtype=F64), torch.randn(12, dtype=F64)
    bags = torch.randperm(12)
    ybar = torch.zeros(12, dtype=F64).index_copy_(0, bags, y)
    mse = torch.nn.functional.mse_loss(pred, y)
    assert float(within_bag_variance(pred, bags)) == 0.0
    for fn in (bag_level_loss, instance_level_loss):
        assert torch.allclose(fn(pred, ybar, bags), mse, atol=1e-14)


def test_within_bag_variance_is_nonnegative_and_zero_iff_constant_in_bags() -> None:
    for seed in range(5):
        pred, _, bags = _random(seed=seed)
        assert float(within_bag_variance(pred, bags)) > 0
    per_bag = torch.randn(9, dtype=F64)
    _, _, bags = _random()
    assert float(within_bag_variance(per_bag[bags], bags)) == pytest.approx(0.0, abs=1e-15)


def test_equal_bags_use_the_papers_one_over_m_weighting() -> None:
    pred, ybar = torch.randn(12, dtype=F64), torch.randn(4, dtype=F64)
    bags = torch.arange(12) % 4
    fbar = torch.stack([pred[bags == a].mean() for a in range(4)])
    assert torch.allclose(bag_level_loss(pred, ybar, bags), ((ybar - fbar) ** 2).mean(), atol=1e-14)
    assert torch.allclose(bag_mean_predictions(pred, bags, 4), fbar, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 3])
def test_matches_the_naive_reference(seed: int) -> None:
    pred, ybar, bags = _random(seed=seed)
    ref = _reference_losses(pred, ybar, bags)
    assert torch.allclose(bag_level_loss(pred, ybar, bags), ref["bag"], atol=1e-13)
    assert torch.allclose(instance_level_loss(pred, ybar, bags), ref["instance"], atol=1e-13)
    assert torch.allclose(within_bag_variance(pred, bags, 9), ref["variance"], atol=1e-13)
    ours = interpolating_aggregate_loss(pred, ybar, bags, 0.3)
    assert torch.allclose(ours, _reference_interpolating(0.3)(pred, ybar, bags), atol=1e-13)


# --------------------------------------------------------------------------- linear closed form
def _linear_problem(
    n: int = 120, d: int = 6, k: int = 4, noise: float = 0.5, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=F64)
    theta = torch.randn(d, generator=g, dtype=F64)
    y = X @ theta + noise * torch.randn(n, generator=g, dtype=F64)
    bags = (torch.randperm(n, generator=g) // k).long()
    return X, y, theta, bags


@pytest.mark.parametrize("rho", [0.0, 0.3, 1.0])
def test_closed_form_is_the_minimiser_found_by_gradient_descent(rho: float) -> None:
    X, y, _, bags = _linear_problem()
    ybar = _ybar(y, bags)
    closed = fit_linear_aggregate(X, ybar, bags, rho)

    def grad(theta: torch.Tensor) -> torch.Tensor:
        theta = theta.clone().requires_grad_(True)
        interpolating_aggregate_loss(X @ theta, ybar, bags, rho).backward()
        return theta.grad

    # conjugate gradient on the quadratic loss, using only autograd gradients (H p = g(p) - g(0))
    theta = torch.zeros(X.shape[1], dtype=F64)
    g0 = grad(torch.zeros_like(theta))
    r = -grad(theta)
    p = r.clone()
    for _ in range(50):
        hp = grad(p) - g0
        alpha = (r @ r) / (p @ hp)
        theta = theta + alpha * p
        r_new = r - alpha * hp
        if float(r_new.norm()) < 1e-13:
            break
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
    assert torch.allclose(theta, closed, atol=1e-6)
    theta_c = closed.clone().requires_grad_(True)
    interpolating_aggregate_loss(X @ theta_c, ybar, bags, rho).backward()
    assert float(theta_c.grad.abs().max()) < 1e-10


def test_noise_free_bag_level_recovers_theta_and_instance_level_is_biased() -> None:
    X, y, theta, bags = _linear_problem(n=120, d=6, k=4, noise=0.0)  # m = 30 >= d
    ybar = _ybar(y, bags)
    assert torch.allclose(fit_linear_aggregate(X, ybar, bags, 0.0), theta, atol=1e-10)
    assert (fit_linear_aggregate(X, ybar, bags, 1.0) - theta).norm() > 0.1
    X1, y1, theta1, bags1 = _linear_problem(n=60, d=6, k=1, noise=0.0)
    assert torch.allclose(fit_linear_aggregate(X1, _ybar(y1, bags1), bags1, 1.0), theta1, atol=1e-10)


def test_fit_ridge_and_singular_system() -> None:
    X, y, _, bags = _linear_problem(n=40, d=15, k=4)  # m = 10 < d: bag-level alone is singular
    ybar = _ybar(y, bags)
    with pytest.raises(ValueError, match="singular"):
        fit_linear_aggregate(X, ybar, bags, 0.0)
    assert torch.isfinite(fit_linear_aggregate(X, ybar, bags, 0.0, ridge=1e-3)).all()
    assert torch.isfinite(fit_linear_aggregate(X, ybar, bags, 0.5)).all()
    with pytest.raises(ValueError, match="fit_linear_aggregate: ridge must be"):
        fit_linear_aggregate(X, ybar, bags, 0.5, ridge=-1.0)
    with pytest.raises(ValueError, match="fit_linear_aggregate: rho must be"):
        fit_linear_aggregate(X, ybar, bags, 1.5)
    with pytest.raises(ValueError, match="X must be"):
        fit_linear_aggregate(X[:, 0], ybar, bags, 0.5)


# --------------------------------------------------------------------------- conformance-style checks
def test_gradcheck_float64() -> None:
    pred, ybar, bags = _random(n=8, m=3)
    loss = InterpolatingAggregateLoss(0.3)
    assert torch.autograd.gradcheck(
        lambda p, yb: loss(p, yb, bags), (pred.requires_grad_(), ybar.requires_grad_()), eps=1e-6, atol=1e-8
    )


def test_permutation_and_bag_relabelling_invariance() -> None:
    pred, ybar, bags = _random()
    base = interpolating_aggregate_loss(pred, ybar, bags, 0.4)
    perm = torch.randperm(pred.shape[0])
    assert torch.allclose(interpolating_aggregate_loss(pred[perm], ybar, bags[perm], 0.4), base, atol=1e-14)
    relabel = torch.randperm(ybar.shape[0])  # bag a becomes relabel[a]
    ybar_new = torch.empty_like(ybar).index_copy_(0, relabel, ybar)
    assert torch.allclose(interpolating_aggregate_loss(pred, ybar_new, relabel[bags], 0.4), base, atol=1e-14)


def test_dtypes_shapes_and_determinism() -> None:
    pred, ybar, bags = _random(dtype=torch.float32)
    loss = InterpolatingAggregateLoss(0.5)
    out = loss(pred, ybar, bags)
    assert out.dtype == torch.float32 and out.shape == ()
    assert torch.equal(out, loss(pred, ybar, bags))
    assert torch.allclose(loss(pred[:, None], ybar, bags), out)  # (n, 1) model outputs accepted
    low = loss(pred.bfloat16(), ybar, bags)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert torch.allclose(loss(pred.double(), ybar.double(), bags), out.double(), atol=1e-5)
    assert loss(pred.double(), ybar, bags).dtype == F64  # ybar follows pred


def test_pickle_and_state_dict_round_trip() -> None:
    loss = InterpolatingAggregateLoss(0.25)
    pred, ybar, bags = _random()
    again = pickle.loads(pickle.dumps(loss))
    assert again.rho == 0.25 and torch.equal(again(pred, ybar, bags), loss(pred, ybar, bags))
    buf = io.BytesIO()
    torch.save(loss.state_dict(), buf)
    assert "rho=0.25" in repr(loss)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p, y, b: bag_level_loss(p[:, None].expand(-1, 2), y, b), ValueError, "pred must have shape"),
        (lambda p, y, b: bag_level_loss(p[:0], y, b[:0]), ValueError, "empty batch: pred"),
        (lambda p, y, b: bag_level_loss(p.long(), y, b), TypeError, "pred must be a floating-point"),
        (lambda p, y, b: bag_level_loss(torch.full_like(p, float("nan")), y, b), ValueError, "pred contains NaN"),
        (lambda p, y, b: bag_level_loss(p, y.clone().fill_(float("inf")), b), ValueError, "ybar contains NaN"),
        (lambda p, y, b: bag_level_loss(p, y[:, None], b), ValueError, "ybar must have shape"),
        (lambda p, y, b: bag_level_loss(p, y[:0], b), ValueError, "ybar must have shape"),
        (lambda p, y, b: bag_level_loss(p, y, b.double()), TypeError, "bag_index must be an integer"),
        (lambda p, y, b: bag_level_loss(p, y, b[:-1]), ValueError, r"bag_index must have shape \(40,\)"),
        (lambda p, y, b: bag_level_loss(p, y, b + 1), ValueError, r"bag_index must lie in \[0, 9\)"),
        (lambda p, y, b: bag_level_loss(p, y, -b), ValueError, r"bag_index must lie in \[0, 9\)"),
        (lambda p, y, b: bag_level_loss(p, torch.cat([y, y[:1]]), b), ValueError, r"bag_index: bag\(s\) \[9\]"),
        (lambda p, y, b: instance_level_loss(p, torch.cat([y, y[:1]]), b), ValueError, "have no instances"),
        (lambda p, y, b: within_bag_variance(p, b, 12), ValueError, "have no instances"),
        (lambda p, y, b: within_bag_variance(p, b, 0), ValueError, "within_bag_variance: num_bags must be"),
        (lambda p, y, b: interpolating_aggregate_loss(p, y, b, -0.1), ValueError, "rho must be a float in"),
        (lambda p, y, b: InterpolatingAggregateLoss(2.0), ValueError, "InterpolatingAggregateLoss: rho must be"),
        (lambda p, y, b: InterpolatingAggregateLoss(0.5, "huber"), ValueError, "base_loss must be one of"),
        (lambda p, y, b: InterpolatingAggregateLoss(True), ValueError, "rho must be"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, error, message) -> None:  # type: ignore[no-untyped-def]
    pred, ybar, bags = _random()
    with pytest.raises(error, match=message):
        call(pred, ybar, bags)
