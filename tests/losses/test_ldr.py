"""Tests of the LDR-KL and ALDR-KL losses (Zhu, Ying & Yang, ICML 2023): golden values of the
official loss classes (float64), the closed form's limiting cases (temperature-scaled CE,
Crammer-Singer, the linear mean), the worst-case distribution, the sign of the true-class
gradient, the adaptive temperature's range and buffer, the label-noise generators, and the
classification-loss conformance suite."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses import (
    ALDRKLLoss,
    LDRKLLoss,
    aldr_kl_loss,
    ldr_kl_loss,
    ldr_worst_case_distribution,
    pairflip_label_noise,
    uniform_label_noise,
)
from paperzoo.losses.ldr import _psi, _reference_ldr
from paperzoo.testing import classification_loss_checks

LOGITS = [[1.0, -0.5, 0.3, 2.0], [0.2, 0.1, -1.2, 0.7], [-0.3, 2.5, 0.4, -1.0]]
Y = [3, 0, 1]
# LDRLoss_V1(threshold=c, Lambda=lam): c, lam, mean loss, d loss / d logits row 0
GOLDEN_LDR = [
    (0.1, 10.0, -0.657488, [0.0904873, 0.0449158, 0.0695682, -0.133519]),
    (0.1, 1.0, -0.493772, [0.0785369, 0.0271066, 0.0487711, -0.102559]),
    (1.0, 1.0, 0.0911335, [0.107282, 0.0370279, 0.0666217, -0.140096]),
]
# ALDRLoss_V1(N=3, threshold=0.1, Lambda=lam0, alpha=2, softplus=False), ids [0, 1, 2], two calls
GOLDEN_ALDR = [
    (10.0, -1.13391, [9.98302, 9.97268, 9.97047], [0.20246, -0.0349402, 0.19603, -0.139369], -1.13391,
     [9.98296, 9.97253, 9.97029]),
    (1.0, -0.565466, [0.861168, 0.877544, 0.744895], [0.118676, -0.0303539, 0.0748913, -0.0781602], -0.559577,
     [0.826055, 0.857623, 0.645618]),
]  # fmt: skip


def golden() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(Y)


def close(actual: torch.Tensor, expected: float | list[float], rtol: float = 2e-5, atol: float = 1e-6) -> None:
    torch.testing.assert_close(
        actual.detach().double(), torch.tensor(expected, dtype=torch.float64), rtol=rtol, atol=atol
    )


@pytest.mark.parametrize(("c", "lam", "loss", "grad0"), GOLDEN_LDR)
def test_golden_ldr(c: float, lam: float, loss: float, grad0: list[float]) -> None:
    x, y = golden()
    x.requires_grad_(True)
    value = LDRKLLoss(lam=lam, margin=c)(x, y)
    close(value, loss)
    value.backward()
    close(x.grad[0], grad0)
    one_hot = F.one_hot(y, 4).double()  # the official API's one-hot targets
    close(ldr_kl_loss(x, one_hot, lam=lam, margin=c), loss)


@pytest.mark.parametrize(("lam0", "loss1", "lam1", "grad0", "loss2", "lam2"), GOLDEN_ALDR)
def test_golden_aldr_two_calls(lam0, loss1, lam1, grad0, loss2, lam2) -> None:
    x, y = golden()
    loss = ALDRKLLoss(num_samples=3, lam0=lam0, alpha=2.0, margin=0.1, normalize="l1_mean")
    ids = torch.arange(3)
    xg = x.clone().requires_grad_(True)
    first = loss(xg, y, index=ids)
    first.backward()
    close(first, loss1)
    close(loss.current_lambdas(), lam1)
    close(xg.grad[0], grad0)
    close(loss(x, y, index=ids), loss2)
    close(loss.current_lambdas(), lam2)
    # stateless: one step from lam0, the first call's value, nothing stored
    close(aldr_kl_loss(x, y, lam0=lam0), loss1)
    close(ALDRKLLoss(lam0=lam0)(x, y), loss1)


# --------------------------------------------------------------------------- closed form
def _raw_d(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    d = c + x - x.gather(1, y[:, None])
    return d.scatter(1, y[:, None], 0.0)


def _random(b: int = 16, k: int = 6, seed: int = 0, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(b, k, generator=g, dtype=torch.float64), torch.randint(0, k, (b,), generator=g)


def test_no_margin_is_temperature_scaled_cross_entropy() -> None:
    x, y = _random()
    for lam in (0.3, 1.0, 10.0):
        expected = lam * (F.cross_entropy(x / lam, y, reduction="none") - math.log(6))
        torch.testing.assert_close(ldr_kl_loss(x, y, lam=lam, margin=0.0, normalize=None, reduction="none"), expected)


def test_limits_crammer_singer_and_mean() -> None:
    x, y = _random()
    d = _raw_d(x, y, 0.1)
    small = ldr_kl_loss(x, y, lam=1e-4, margin=0.1, normalize=None, reduction="none")
    torch.testing.assert_close(small, d.max(dim=1).values, atol=1e-3, rtol=0)
    assert bool((d.max(dim=1).values >= 0).all())  # d_y = 0: the hinge max(0, max_{k != y} c + f_k - f_y)
    large = ldr_kl_loss(x, y, lam=1e6, margin=0.1, normalize=None, reduction="none")
    torch.testing.assert_close(large, d.mean(dim=1), atol=1e-4, rtol=0)


def test_shift_invariance_of_the_raw_loss() -> None:
    x, y = _random()
    raw = ldr_kl_loss(x, y, normalize=None, reduction="none")
    torch.testing.assert_close(ldr_kl_loss(x + 3.7, y, normalize=None, reduction="none"), raw)
    normalised = ldr_kl_loss(x, y, reduction="none")
    assert not torch.allclose(ldr_kl_loss(x + 3.7, y, reduction="none"), normalised)  # softplus/mean is not


def test_worst_case_distribution_attains_the_maximum() -> None:
    x, y = _random()
    for lam, c in ((0.5, 0.1), (10.0, 1.0)):
        p = ldr_worst_case_distribution(x, y, lam=lam, margin=c)
        d = _raw_d(x, y, c)
        kl = (p * torch.log(6 * p)).sum(1)
        value = (p * d).sum(1) - lam * kl
        torch.testing.assert_close(value, ldr_kl_loss(x, y, lam=lam, margin=c, normalize=None, reduction="none"))
        # any other distribution does no better (the objective is concave in p)
        q = torch.softmax(torch.randn(16, 6, dtype=torch.float64), 1)
        assert bool(((q * d).sum(1) - lam * (q * torch.log(6 * q)).sum(1) <= value + 1e-12).all())


def test_true_class_gradient_is_minus_one_minus_p_star() -> None:
    x, y = _random()
    x.requires_grad_(True)
    ldr_kl_loss(x, y, lam=2.0, margin=0.3, normalize=None, reduction="sum").backward()
    p = ldr_worst_case_distribution(x.detach(), y, lam=2.0, margin=0.3)
    g_true = x.grad.gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(g_true, -(1 - p.gather(1, y[:, None]).squeeze(1)))
    assert bool((g_true <= 0).all())


def test_matches_naive_reference_value_and_gradient() -> None:
    x, y = _random(b=32, k=9, seed=3)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, ref = LDRKLLoss()(x1, y), _reference_ldr()(x2, y)
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(x1.grad, x2.grad)


# --------------------------------------------------------------------------- ALDR
def test_aldr_with_huge_alpha_is_ldr() -> None:
    x, y = _random()
    for norm in ("l1_mean", "softplus_mean", None):
        aldr = aldr_kl_loss(x, y, lam0=3.0, alpha=1e12, normalize=norm, reduction="none")
        torch.testing.assert_close(aldr, ldr_kl_loss(x, y, lam=3.0, normalize=norm, reduction="none"))


def test_aldr_lambdas_stay_in_range_and_only_visited_entries_change() -> None:
    x, y = _random(b=16, k=6, scale=4.0)
    for alpha in (1.5, 2.0, 10.0):
        loss = ALDRKLLoss(num_samples=40, lam0=5.0, alpha=alpha, normalize=None)
        ids = torch.arange(3, 40, 2)[:16]
        for _ in range(3):
            loss(x, y, index=ids)
        lam = loss.current_lambdas()
        assert bool((lam[ids] >= 5.0 * (1 - 1 / alpha) - 1e-12).all()) and bool((lam[ids] <= 5.0).all())
        assert bool((lam[ids] < 5.0).all())
        others = torch.ones(40, dtype=torch.bool)
        others[ids] = False
        assert bool((lam[others] == 5.0).all())


def test_aldr_confident_samples_get_smaller_temperatures() -> None:
    x = torch.tensor([[8.0, 0.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.05]], dtype=torch.float64)
    loss = ALDRKLLoss(num_samples=2, lam0=1.0, normalize=None)
    loss(x, torch.tensor([0, 0]), index=torch.arange(2))
    lam = loss.current_lambdas()
    assert float(lam[0]) < float(lam[1]) < 1.0


def test_aldr_gradient_is_ldr_gradient_at_the_detached_temperatures() -> None:
    x, y = _random(b=8, k=5, seed=4)
    loss = ALDRKLLoss(num_samples=8, lam0=2.0, normalize=None)
    xg = x.clone().requires_grad_(True)
    loss(xg, y, index=torch.arange(8)).backward()
    lam = loss.current_lambdas()

    def fixed(z: torch.Tensor) -> torch.Tensor:
        return _psi(z, y, lam, 0.1).mean()

    xf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(fixed(xf), xf)
    torch.testing.assert_close(xg.grad, expected)
    assert torch.autograd.gradcheck(fixed, (x.clone().requires_grad_(True),))


def test_aldr_state_dict_carries_the_temperatures() -> None:
    x, y = _random(b=8, k=5)
    loss = ALDRKLLoss(num_samples=8)
    loss(x, y, index=torch.arange(8))
    copy = ALDRKLLoss(num_samples=8)
    copy.load_state_dict(loss.state_dict())
    torch.testing.assert_close(copy.current_lambdas(), loss.current_lambdas())


# --------------------------------------------------------------------------- conformance and errors
LDR_CHECKS = classification_loss_checks(LDRKLLoss, ldr_kl_loss)
ALDR_CHECKS = [(n, c) for n, c in classification_loss_checks(ALDRKLLoss, aldr_kl_loss) if n != "gradcheck"]


@pytest.mark.parametrize(("name", "check"), LDR_CHECKS, ids=[n for n, _ in LDR_CHECKS])
def test_conformance_ldr(name, check) -> None:
    check()


@pytest.mark.parametrize(("name", "check"), ALDR_CHECKS, ids=[n for n, _ in ALDR_CHECKS])
def test_conformance_aldr(name, check) -> None:
    # gradcheck is left out: the adaptive temperature is detached (the official choice), so the
    # autograd gradient is the LDR gradient at fixed temperatures (tested above), not the total one
    check()


def test_errors_name_the_argument() -> None:
    x, y = golden()
    with pytest.raises(ValueError, match="index needs ALDRKLLoss"):
        ALDRKLLoss()(x, y, index=torch.arange(3))
    with pytest.raises(ValueError, match="index"):
        ALDRKLLoss(num_samples=3)(x, y, index=torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="index"):
        ALDRKLLoss(num_samples=3)(x, y, index=torch.arange(2))
    with pytest.raises(ValueError, match="one-hot"):
        LDRKLLoss()(x, 2 * F.one_hot(y, 4))
    with pytest.raises(ValueError, match="alpha must be"):
        ALDRKLLoss(alpha=1.0)
    with pytest.raises(ValueError, match="lam must be"):
        LDRKLLoss(lam=0.0)
    with pytest.raises(ValueError, match="normalize must be"):
        ldr_kl_loss(x, y, normalize="l2")
    with pytest.raises(ValueError, match="lambdas must be"):
        aldr_kl_loss(x, y, lambdas=torch.ones(2, dtype=torch.float64))


# --------------------------------------------------------------------------- label noise
def test_uniform_noise_rate_and_range() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 20000)
    noisy, mask = uniform_label_noise(y, 10, 0.6, rng)
    assert abs(mask.mean() - 0.6) < 0.02 and noisy.min() >= 0 and noisy.max() < 10
    assert np.array_equal(noisy[~mask], y[~mask])
    assert abs((noisy != y).mean() - 0.6 * 0.9) < 0.02  # a uniform draw may keep the true class


def test_pairflip_noise_maps_to_the_next_class_or_given_pairs() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 20000)
    noisy, mask = pairflip_label_noise(y, 10, 0.3, rng)
    assert abs(mask.mean() - 0.3) < 0.02
    assert np.array_equal(noisy[mask], (y[mask] + 1) % 10) and np.array_equal(noisy[~mask], y[~mask])
    noisy, mask = pairflip_label_noise(np.array([0, 1, 2]), 3, 1.0, rng, pairs={0: 2})
    assert noisy.tolist() == [2, 2, 0] and mask.all()
    with pytest.raises(ValueError, match="y must hold labels"):
        uniform_label_noise(np.array([0, 10]), 10, 0.5, rng)
    with pytest.raises(ValueError, match="eta must be"):
        pairflip_label_noise(y, 10, 1.5, rng)


@pytest.mark.parametrize("normalize", [None, "softplus_mean", "l1_mean", "softplus_l1_mean"])
def test_fused_path_equals_autograd_through_the_definition(normalize: str | None) -> None:
    from paperzoo.losses.ldr import _ldr_fast, _normalize

    x, y = _random(b=10, k=5, seed=6)
    lam = 0.5 + torch.rand(10, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for c in (0.0, 0.3):
        for scale in (2.0, lam):
            fused = _ldr_fast(x, y, scale, c, normalize)
            torch.testing.assert_close(fused, _psi(_normalize(x, normalize), y, scale, c))
            x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            _ldr_fast(x1, y, scale, c, normalize).sum().backward()
            _psi(_normalize(x2, normalize), y, scale, c).sum().backward()
            torch.testing.assert_close(x1.grad, x2.grad)
    assert torch.autograd.gradcheck(lambda z: _ldr_fast(z, y, lam, 0.3, normalize), (x.clone().requires_grad_(True),))
