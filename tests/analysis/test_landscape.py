"""Tests of the loss-landscape tools of LLA (paper 31, Gabdullin, 2024): the exact regular grid,
the five normalisations, random / Hessian / Adam axes, the Adam-equation surface, freezing and
capping, and that no computation touches the model."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from paperzoo.analysis.hessian import HessianAnalyzer, flat_params
from paperzoo.analysis.landscape import (
    adam_directions,
    adam_eq_surface,
    all_modes,
    freeze_direction,
    hessian_directions,
    landscape_plane,
    loss_line_1d,
    loss_surface_2d,
    losses_at,
    normalize_direction,
    random_directions,
)

F64 = torch.float64
CE = nn.CrossEntropyLoss()


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)
    ).double()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(12, 1, 6, 6, dtype=F64, generator=g), torch.randint(0, 3, (12,), generator=g)


def loss_at(model: nn.Module, theta: torch.Tensor, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    """The reference: a deep copy of the model with the flat vector written into its parameters."""
    twin = copy.deepcopy(model).eval()
    _, layout = flat_params(twin)
    with torch.no_grad():
        for p, t in zip(twin.parameters(), layout.split(theta)):
            p.copy_(t)
        return float(CE(twin(data[0]), data[1]))


# --------------------------------------------------------------------------- the grid
@pytest.mark.parametrize("steps", [6, 7])
def test_grid_is_exact_and_centred(steps: int) -> None:
    model, data = small_cnn(), batch()
    theta, layout = flat_params(model)
    d = random_directions(layout.dim, 2, kind="normal", seed=3, dtype=F64) * 0.05
    surf = loss_surface_2d(model, CE, data, d[0], d[1], dist=2.0, steps=steps)
    c = steps // 2
    assert surf.loss.shape == (steps, steps) and float(surf.a[c]) == 0.0
    assert float(surf.loss[c, c]) == pytest.approx(surf.center_loss, abs=1e-12)
    assert surf.center_loss == pytest.approx(loss_at(model, theta, data), abs=1e-12)
    torch.testing.assert_close(surf.a, (torch.arange(steps, dtype=F64) - c) * 2.0 / steps)
    for i, j in [(0, 0), (1, steps - 1), (steps - 1, 2), (3, 4)]:  # odd columns are not shifted
        point = theta + surf.a[i] * d[0] + surf.b[j] * d[1]
        assert float(surf.loss[i, j]) == pytest.approx(loss_at(model, point, data), abs=1e-10)
    corner = loss_surface_2d(model, CE, data, d[0], d[1], steps=steps, center=False)
    assert float(corner.loss[0, 0]) == pytest.approx(surf.center_loss, abs=1e-12)


def test_nothing_touches_the_model() -> None:
    model, data = small_cnn(), batch()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt.zero_grad()
    CE(model(data[0]), data[1]).backward()
    opt.step()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for axes in ("random", "hessian", "adam"):
        landscape_plane(model, CE, data, axes=axes, optimizer=opt, steps=4)
    m, v = adam_directions(opt, model)
    adam_eq_surface(model, CE, data, m, v, steps=4)
    landscape_plane(model, CE, data, steps=4, mode="train")
    assert all(torch.equal(state[k], t) for k, t in model.state_dict().items())
    assert model.training


def test_cap_and_freeze() -> None:
    model, data = small_cnn(), batch()
    theta, layout = flat_params(model)
    d = random_directions(layout.dim, 2, kind="normal", seed=0, dtype=F64)
    surf = loss_surface_2d(model, CE, data, d[0], d[1], dist=20.0, steps=4, cap=1.5)
    assert float(surf.loss.max()) <= 1.5 and float(surf.loss.min()) >= 0.0
    frozen = freeze_direction(d, layout, 2)  # tensors 2, 3, ... (BN bias and on) stay fixed
    first = layout.numels[0] + layout.numels[1]
    assert torch.equal(frozen[:, :first], d[:, :first]) and bool((frozen[:, first:] == 0).all())
    head = freeze_direction(d, layout, -2)  # the first two tensors stay fixed
    assert bool((head[:, :first] == 0).all()) and torch.equal(head[:, first:], d[:, first:])
    only_head = loss_surface_2d(model, CE, data, d[0], d[1], steps=4, freeze=-(len(layout.shapes) - 1))
    assert only_head.directions is not None and bool((only_head.directions[:, : -layout.numels[-1]] == 0).all())
    with pytest.raises(ValueError, match="freeze"):
        freeze_direction(d, layout, len(layout.shapes))


# --------------------------------------------------------------------------- normalisations
@pytest.mark.parametrize("order", [1, 2])
def test_filter_normalisation_matches_each_filter(order: int) -> None:
    model = small_cnn()
    theta, layout = flat_params(model)
    d = random_directions(layout.dim, 1, seed=0, dtype=F64)[0]
    dn = normalize_direction(d, theta, layout, "filter", order=order)
    for dt, tt in zip(layout.split(dn), layout.split(theta)):
        if dt.dim() >= 2:
            rows_d = torch.linalg.vector_norm(dt.reshape(dt.shape[0], -1), ord=order, dim=1)
            rows_t = torch.linalg.vector_norm(tt.reshape(tt.shape[0], -1), ord=order, dim=1)
            torch.testing.assert_close(rows_d, rows_t, atol=1e-6, rtol=0)
        else:  # 1-D tensors as a whole, once
            assert float(torch.linalg.vector_norm(dt, ord=order)) == pytest.approx(
                float(torch.linalg.vector_norm(tt, ord=order)), abs=1e-6
            )
    skipped = normalize_direction(d, theta, layout, "filter", skip_1d=True)
    for dt in layout.split(skipped):
        assert dt.dim() >= 2 or bool((dt == 0).all())


def test_other_normalisations() -> None:
    model = small_cnn()
    theta, layout = flat_params(model)
    d = random_directions(layout.dim, 2, seed=1, dtype=F64)
    torch.testing.assert_close(normalize_direction(torch.ones_like(theta), theta, layout, "weight"), theta)
    m = normalize_direction(d, theta, layout, "model")
    torch.testing.assert_close(torch.linalg.vector_norm(m, dim=1), torch.linalg.vector_norm(theta).expand(2))
    m1 = normalize_direction(d[0], theta, layout, "model", order=1)  # ||theta||_1 / ||d||_2, as in LLA
    assert float(torch.linalg.vector_norm(m1)) == pytest.approx(float(theta.abs().sum()))
    lay = normalize_direction(d[0], theta, layout, "layer")
    for dt, tt in zip(layout.split(lay), layout.split(theta)):
        assert float(dt.norm()) == pytest.approx(float(tt.norm()), abs=1e-6)
    torch.testing.assert_close(normalize_direction(d, theta, layout, None), d)
    with pytest.raises(ValueError, match="normalization must be"):
        normalize_direction(d[0], theta, layout, "batch")
    with pytest.raises(ValueError, match="order must be"):
        normalize_direction(d[0], theta, layout, "filter", order=3)


def test_random_directions() -> None:
    d = random_directions(500, 3, seed=7, dtype=F64)
    again = random_directions(500, 3, seed=7, dtype=F64)
    assert torch.equal(d, again) and not torch.equal(d, random_directions(500, 3, seed=8, dtype=F64))
    assert float(d[0].min()) >= 0.0 and float(d[0].max()) < 1.0  # LLA's U[0, 1) draws
    gram = d @ d.T
    assert float((gram - torch.diag(gram.diagonal())).abs().max()) < 1e-9
    assert random_directions(10, 2, kind="normal", orthogonal=False).shape == (2, 10)


# --------------------------------------------------------------------------- Hessian and Adam axes
def test_hessian_axis_second_difference_is_the_eigenvalue() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(30, 4, dtype=F64, generator=g), torch.randint(0, 3, (30,), generator=g))
    ha = HessianAnalyzer(model, CE, data)
    v = hessian_directions(ha, 2, method="lanczos", tol=1e-10)
    lam = ha.top_eigen(1, method="lanczos", tol=1e-10).values[0]
    assert float(v[0] @ v[1]) == pytest.approx(0.0, abs=1e-10)
    t, line = loss_line_1d(model, CE, data, v[0], dist=2e-3, steps=2)  # t = -1e-3, 0
    t2, line2 = loss_line_1d(model, CE, data, -v[0], dist=2e-3, steps=2)
    h = float(-t[0])
    second = (float(line[0]) - 2 * float(line[1]) + float(line2[0])) / h**2
    assert second == pytest.approx(float(lam), rel=1e-4)


def test_adam_axes_and_the_adam_equation_surface() -> None:
    model, data = small_cnn(), batch()
    model[1].weight.requires_grad_(True)
    opt = torch.optim.Adam(list(model.parameters())[:-2], lr=1e-2)  # the head has no optimiser state
    for _ in range(3):
        opt.zero_grad()
        CE(model(data[0]), data[1]).backward()
        opt.step()
    model.eval()
    theta, layout = flat_params(model)
    m, v = adam_directions(opt, model)
    head = layout.numels[-1] + layout.numels[-2]
    assert bool((m[-head:] == 0).all()) and bool((v[-head:] == 0).all()) and float(m.abs().sum()) > 0
    first = list(model.parameters())[0]
    torch.testing.assert_close(m[: first.numel()], opt.state[first]["exp_avg"].reshape(-1))
    surf = adam_eq_surface(model, CE, data, m, v, steps=6)
    assert surf.loss.shape == (6, 6) and float(surf.a[3]) == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(surf.loss[3], torch.full((6,), surf.center_loss, dtype=F64), atol=1e-12)
    C = m / (v.sqrt() + 1e-6)
    k = float(surf.a[0] / surf.b[2].sqrt())
    assert float(surf.loss[0, 2]) == pytest.approx(loss_at(model, theta + k * C, data), abs=1e-10)
    no_sqrt = adam_eq_surface(model, CE, data, m, v, steps=6, b_sqrt=False, cap=50.0)
    assert float(no_sqrt.b[0]) == -1.0 and float(no_sqrt.loss.max()) <= 50.0
    with pytest.raises(ValueError, match="no Adam moments"):
        adam_directions(torch.optim.SGD(model.parameters(), lr=0.1), model)
    with pytest.raises(ValueError, match="optimizer"):
        landscape_plane(model, CE, data, axes="adam")


def test_all_modes_preset_runs() -> None:
    model, data = small_cnn(), batch()
    assert len(all_modes("hessian")) == 8 and len(all_modes("adam")) == 10
    theta, layout = flat_params(model)
    shared = random_directions(layout.dim, 2, seed=0, dtype=F64)
    for kw in all_modes("hessian"):
        surf = landscape_plane(
            model, CE, data, axes=kw["axes"], normalization=kw["normalization"], order=kw["order"],
            directions=shared if kw.get("shared") else None, steps=3,
        )  # fmt: skip
        assert bool(torch.isfinite(surf.loss).all())


# --------------------------------------------------------------------------- evaluation and bad input
def test_losses_at_falls_back_when_vmap_cannot_batch() -> None:
    class Scalarising(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x) * float(self.lin.weight.sum() != 0)  # data-dependent Python control flow

    model = Scalarising().double()
    data = (torch.randn(5, 3, dtype=F64), torch.randint(0, 2, (5,)))
    theta, _ = flat_params(model)
    with pytest.warns(UserWarning, match="vmap failed"):
        out = losses_at(model, CE, data, torch.stack([theta, 2 * theta]))
    assert float(out[0]) == pytest.approx(loss_at(model, theta, data), abs=1e-12)


def test_bad_input_is_rejected_clearly() -> None:
    model, data = small_cnn(), batch()
    theta, layout = flat_params(model)
    d = torch.zeros(layout.dim, dtype=F64)
    with pytest.raises(ValueError, match=r"d1 must have shape"):
        loss_surface_2d(model, CE, data, d[:-1], d)
    with pytest.raises(ValueError, match="NaN"):
        loss_surface_2d(model, CE, data, d * float("nan"), d)
    with pytest.raises(ValueError, match="steps must be"):
        loss_surface_2d(model, CE, data, d, d, steps=1)
    with pytest.raises(ValueError, match="dist must be"):
        loss_line_1d(model, CE, data, d, dist=0.0)
    with pytest.raises(ValueError, match="axes must be"):
        landscape_plane(model, CE, data, axes="pca")
    with pytest.raises(ValueError, match="directions must have shape"):
        landscape_plane(model, CE, data, directions=d[None])
    with pytest.raises(ValueError, match="non-negative"):
        adam_eq_surface(model, CE, data, d, d - 1.0)
    with pytest.raises(ValueError, match="thetas must have shape"):
        losses_at(model, CE, data, theta)
    with pytest.raises(ValueError, match="empty batch"):
        loss_line_1d(model, CE, (data[0][:0], data[1][:0]), d)
