"""SuperGlobal pooling modules: golden values from the official modules, limiting cases, bad input."""

import pytest
import torch

from paperzoo.models.superglobal import GeM, GeMPlus, RegionalGeM, ReLUPlus, ScaleGeM, gem_pool, multiscale_descriptor


def _golden_map() -> torch.Tensor:
    x = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    x[0, 0] = torch.arange(16, dtype=torch.float64).reshape(4, 4) / 10
    x[0, 1] = torch.tensor([[0, 1, 0, 2], [3, 0, 0, 0.5], [0, 0, 4, 0], [1, 0, 0, 0]], dtype=torch.float64)
    return x


def test_regional_gem_golden() -> None:
    r = RegionalGeM(2.5, 5)(_golden_map())
    want1 = [
        [1.053696, 1.381545, 1.066678, 1.984516],
        [2.364167, 0.76415, 0.881545, 1.0134],
        [1.014458, 0.82874, 3.027708, 0.984004],
        [1.551076, 0.858341, 1.052003, 0.96196],
    ]
    torch.testing.assert_close(r[0, 1], torch.tensor(want1, dtype=torch.float64), atol=1e-6, rtol=0)
    want0 = torch.tensor([0.350498, 0.411572, 0.470286, 0.527051], dtype=torch.float64)
    torch.testing.assert_close(r[0, 0, 0], want0, atol=1e-6, rtol=0)


def test_gem_plus_golden() -> None:
    x = _golden_map()
    torch.testing.assert_close(GeMPlus(4.6)(x)[0], torch.tensor([1.05745627, 2.32197221], dtype=torch.float64))
    got = GeMPlus(4.6)(RegionalGeM()(x))[0]
    torch.testing.assert_close(got, torch.tensor([0.93827789, 1.83420018], dtype=torch.float64))


def test_relu_plus_golden() -> None:
    got = ReLUPlus(0.014)(torch.tensor([-1.0, 0.0, 0.01, 0.5]))
    torch.testing.assert_close(got, torch.tensor([0.014, 0.014, 0.014, 0.5]))


def test_scale_gem_golden() -> None:
    v = torch.tensor([[1, 2, 3, -1], [2, 0, 1, 1], [0.5, 0.5, 4, 0]], dtype=torch.float64)[:, None]
    want_max = torch.tensor([[0.81649658, 0.51639778, 0.98473193, 0.40824829]], dtype=torch.float64)
    want_pow = torch.tensor([[1.69275893, 1.6881423, 3.52575907, 0.79209183]], dtype=torch.float64)
    torch.testing.assert_close(ScaleGeM("max")(v), want_max)
    torch.testing.assert_close(ScaleGeM("power", 10.0)(list(v)), want_pow)


def test_gem_limits_and_homogeneity() -> None:
    x = torch.rand(3, 5, 6, 6, dtype=torch.float64) + 0.1
    torch.testing.assert_close(GeMPlus(1.0)(x), x.mean(dim=(2, 3)))
    big = GeMPlus(200.0)(x)
    assert torch.allclose(big, x.amax(dim=(2, 3)), rtol=0.02)
    torch.testing.assert_close(GeMPlus(4.6)(3.0 * x), 3.0 * GeMPlus(4.6)(x))
    torch.testing.assert_close(GeMPlus(4.6)(x.flatten(2)), GeMPlus(4.6)(x))  # (B, C, L) form
    p_increasing = [GeMPlus(p)(x) for p in (1.0, 3.0, 4.6, 8.0)]
    assert all(bool((a <= b + 1e-12).all()) for a, b in zip(p_increasing, p_increasing[1:]))


def test_learnable_gem_has_gradient_for_p() -> None:
    gem = GeM(3.0)
    gem(torch.rand(2, 4, 5, 5)).sum().backward()
    assert gem.p.grad is not None and torch.isfinite(gem.p.grad)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64) + 0.1
    torch.testing.assert_close(gem_pool(x, 3.0, 1e-6), GeM(3.0).double()(x).detach())


def test_regional_gem_shape_and_constant_identity() -> None:
    x = torch.rand(2, 3, 7, 9)
    assert RegionalGeM()(x).shape == x.shape
    const = torch.full((1, 2, 6, 6), 0.7, dtype=torch.float64)
    torch.testing.assert_close(RegionalGeM()(const), const)


def test_scale_gem_identical_inputs() -> None:
    v = torch.randn(4, 8, dtype=torch.float64)
    same = torch.stack([v, v, v])
    torch.testing.assert_close(ScaleGeM("max")(same), torch.nn.functional.normalize(v, dim=1))
    torch.testing.assert_close(ScaleGeM("power")(same), v)


def test_multiscale_descriptor_shape_and_norm() -> None:
    images = torch.rand(3, 1, 28, 28)
    conv = torch.nn.Conv2d(1, 6, 3)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return GeMPlus()(torch.relu(conv(x)))

    with torch.no_grad():
        d = multiscale_descriptor(fn, images)
    assert d.shape == (3, 6)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(3))


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="GeMPlus: p must be"):
        GeMPlus(p=0.0)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        RegionalGeM(kernel_size=4)
    with pytest.raises(ValueError, match="mode must be"):
        ScaleGeM(mode="mean")
    with pytest.raises(ValueError, match="x must be a feature map"):
        GeMPlus()(torch.rand(4, 5))
    with pytest.raises(ValueError, match="x"):
        GeMPlus()(torch.full((1, 2, 3, 3), float("nan")))
    with pytest.raises(ValueError, match="too small"):
        RegionalGeM(kernel_size=5)(torch.rand(1, 2, 2, 2))
    with pytest.raises(ValueError, match="descriptors must have shape"):
        ScaleGeM()(torch.rand(3, 4))
