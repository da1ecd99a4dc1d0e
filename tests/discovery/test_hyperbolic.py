"""HypCD's hyperbolic pieces: golden values of the official hyptorch code, agreement with geoopt,
the geometry's properties and limits, gradcheck, the loss wiring, bad input."""

from __future__ import annotations

import math

import geoopt
import pytest
import torch

from paperzoo.discovery.heads import DINOHead
from paperzoo.discovery.hyperbolic import (
    FeatureClip,
    HyperbolicContrastive,
    HyperbolicHead,
    HypLinear,
    HypSimGCDLoss,
    ToPoincare,
    class_norms,
    distance_angle_schedule,
    hyperbolic_infonce,
    hyperbolic_supcon,
    poincare_distance_matrix,
)
from paperzoo.discovery.losses import supervised_contrastive, unsupervised_contrastive
from paperzoo.discovery.trainer import GCDBatch, GCDObjective

D64 = torch.float64


def _x() -> torch.Tensor:
    i = torch.arange(4, dtype=D64)[:, None]
    return 1.5 * torch.sin(0.8 * i + 1.3 * torch.arange(5, dtype=D64)[None] + 0.2)


def _linear(bias_curvature: str, c: float = 0.1) -> HypLinear:
    lin = HypLinear(5, 3, c, bias_curvature=bias_curvature).double()
    a, j = torch.arange(3, dtype=D64)[:, None], torch.arange(5, dtype=D64)[None]
    with torch.no_grad():
        lin.weight.copy_(0.3 * torch.cos(0.5 * a - 0.9 * j))
        lin.bias.copy_(torch.tensor([0.1, -0.2, 0.05], dtype=D64))
    return lin


# --------------------------------------------------------------------------- golden values
def test_golden_values_of_the_official_code() -> None:
    z = ToPoincare(0.1, 2.0)(_x())
    want_z = [
        [0.226360, 1.136526, 0.381679, -0.932328, -0.880472],
        [0.955069, 0.846375, -0.502260, -1.115083, -0.094306],
        [1.070980, 0.045728, -1.046516, -0.605611, 0.722515],
        [0.569998, -0.760473, -0.976849, 0.237861, 1.104105],
    ]
    torch.testing.assert_close(z, torch.tensor(want_z, dtype=D64), atol=2e-6, rtol=0)
    want_d = [
        [0, 3.913421, 6.363679, 7.620147],
        [3.913421, 0, 3.764397, 6.215126],
        [6.363679, 3.764397, 0, 3.659320],
        [7.620147, 6.215126, 3.659320, 0],
    ]
    torch.testing.assert_close(poincare_distance_matrix(z, c=0.1), torch.tensor(want_d, dtype=D64), atol=2e-4, rtol=0)
    official = [[0.646332, 1.024855, 0.669117], [0.804238, 0.788723, 0.367069], [0.506630, -0.031292, -0.188531],
                [-0.282301, -0.584838, -0.691003]]  # fmt: skip
    consistent = [[0.866923, 0.717496, 0.799390], [0.956148, 0.550637, 0.442063], [0.515405, -0.080889, -0.169724],
                  [-0.202530, -0.743431, -0.650663]]  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(_linear("official")(z), torch.tensor(official, dtype=D64), atol=2e-6, rtol=0)
        torch.testing.assert_close(_linear("consistent")(z), torch.tensor(consistent, dtype=D64), atol=2e-6, rtol=0)
    assert hyperbolic_infonce(z, 0.1, "distance", 1.0).item() == pytest.approx(2.92546, abs=2e-4)
    assert hyperbolic_infonce(z, 0.1, "angle", 1.0).item() == pytest.approx(1.44983, abs=1e-5)


def test_distance_matrix_equals_geoopt_dist_on_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    ball = geoopt.PoincareBall(c=0.5)
    x = ball.expmap0(0.4 * torch.randn(7, 6, generator=g, dtype=D64))
    y = ball.expmap0(0.4 * torch.randn(5, 6, generator=g, dtype=D64))
    torch.testing.assert_close(
        poincare_distance_matrix(x, y, 0.5), ball.dist(x[:, None], y[None]), atol=1e-6, rtol=1e-6
    )


# --------------------------------------------------------------------------- properties
def test_to_poincare_inside_ball_plain_expmap_below_radius_and_clipping_above() -> None:
    c, r = 0.1, 2.0
    g = torch.Generator().manual_seed(1)
    h = 50 * torch.randn(64, 8, generator=g, dtype=D64)
    assert (ToPoincare(c, r)(h).norm(dim=1) < 1 / math.sqrt(c)).all()
    assert (ToPoincare(c, None)(h).norm(dim=1) < 1 / math.sqrt(c)).all()  # projection keeps huge inputs inside
    small = torch.nn.functional.normalize(torch.randn(5, 8, generator=g, dtype=D64), dim=1) * 1.5
    torch.testing.assert_close(ToPoincare(c, r)(small), geoopt.PoincareBall(c=c).expmap0(small))
    u = torch.randn(1, 8, generator=g, dtype=D64)
    outs = [ToPoincare(c, r)(a * r * u / u.norm()) for a in (1.5, 3.0, 100.0)]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(outs[0], outs[2], atol=1e-5, rtol=0)


def test_distance_metric_properties_and_distance_from_origin() -> None:
    c = 0.1
    g = torch.Generator().manual_seed(2)
    u = torch.randn(12, 4, generator=g, dtype=D64)
    z = ToPoincare(c, 2.0)(u)
    d = poincare_distance_matrix(z, c=c)
    torch.testing.assert_close(d, d.T)
    assert d.diagonal().abs().max() < 1e-6
    tri = d[:, None, :] - (d[:, :, None] + d[None, :, :])  # d(i,k) - d(i,j) - d(j,k) <= 0
    assert tri.max() < 1e-9
    small = 0.5 * torch.nn.functional.normalize(u, dim=1)  # below the clip radius, far from the boundary
    zs = ToPoincare(c, 2.0)(small)
    d0 = poincare_distance_matrix(torch.zeros(1, 4, dtype=D64), zs, c)[0]
    torch.testing.assert_close(d0, 2 * small.norm(dim=1))


def test_small_curvature_limit_is_euclidean() -> None:
    c = 1e-8
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, 5, generator=g, dtype=D64), torch.randn(4, 5, generator=g, dtype=D64)
    torch.testing.assert_close(ToPoincare(c, None)(x), x, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(poincare_distance_matrix(x, y, c), 2 * torch.cdist(x, y), atol=1e-4, rtol=1e-4)
    lin = _linear("consistent", c)
    with torch.no_grad():
        torch.testing.assert_close(lin(x[:, :5]), x @ lin.weight.T + lin.bias, atol=1e-5, rtol=1e-5)


def test_angle_losses_equal_simgcd_terms_on_the_euclidean_feature() -> None:
    g = torch.Generator().manual_seed(4)
    h = 3 * torch.randn(16, 6, generator=g, dtype=D64)
    z = ToPoincare(0.1, 2.0)(h)
    labels, mask = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), torch.arange(8) < 5
    assert hyperbolic_infonce(z, 0.1, "angle", 1.0).item() == pytest.approx(unsupervised_contrastive(h, 1.0).item())
    got = hyperbolic_supcon(z, labels, mask, 0.1, "angle", 0.07).item()
    assert got == pytest.approx(supervised_contrastive(h, labels, mask, 0.07).item(), rel=1e-6)


def test_schedule_and_loss_mixture() -> None:
    assert distance_angle_schedule(0) == pytest.approx(1 / 200)
    assert distance_angle_schedule(199) == 1.0 and distance_angle_schedule(500) == 1.0
    assert distance_angle_schedule(3, start=5, end=10) == 0.0
    g = torch.Generator().manual_seed(5)
    z = ToPoincare(0.1, 2.0)(torch.randn(8, 6, generator=g, dtype=D64))
    logits = torch.randn(8, 3, generator=g, dtype=D64).tanh()
    labels, mask = torch.tensor([0, 1, 2, 0]), torch.tensor([True, True, False, False])
    loss = HypSimGCDLoss(c=0.1, hts=0.3, schedule=(0, 10, 1.0))
    for epoch in (0, 4, 9):
        w = (epoch + 1) / 10
        t = loss(z, logits, labels, mask, epoch)
        want_u = (1 - w) * hyperbolic_infonce(z, 0.1, "angle", 0.3) + w * hyperbolic_infonce(z, 0.1, "distance", 1.0)
        want_s = (1 - w) * hyperbolic_supcon(z, labels, mask, 0.1, "angle", 0.07 * 0.3) + w * hyperbolic_supcon(
            z, labels, mask, 0.1, "distance", 0.07
        )
        assert t["rep_unsup"].item() == pytest.approx(want_u.item())
        assert t["rep_sup"].item() == pytest.approx(want_s.item())
        cls = 0.65 * (t["cls_unsup"] + 1.0 * t["me_max"]) + 0.35 * t["cls_sup"]
        assert t["total"].item() == pytest.approx((cls + 0.65 * want_u + 0.35 * want_s).item())


def test_head_and_projected_loss_work_in_the_gcd_objective() -> None:
    torch.manual_seed(0)
    h = torch.randn(8, 16)
    head = HyperbolicHead(16, 5)
    z, logits = head(h)
    assert logits.shape == (8, 5) and (logits.abs() < 1 / math.sqrt(0.1)).all()
    labels, mask = torch.tensor([0, 1, 2, -1]), torch.tensor([True, True, True, False])
    obj = GCDObjective(HypSimGCDLoss())
    obj(GCDBatch(h, z, logits, labels, mask), 0)["total"].backward()
    assert head.classifier.weight.grad is not None and head.classifier.weight.grad.abs().sum() > 0
    zd, ld = DINOHead(16, 5, hidden=32, bottleneck=8)(h)  # Euclidean projections: project=True maps them
    assert torch.isfinite(GCDObjective(HypSimGCDLoss(project=True))(GCDBatch(h, zd, ld, labels, mask), 3)["total"])


def test_class_norms() -> None:
    z = ToPoincare(0.1, None)(torch.tensor([[0.5, 0.0], [0.0, 1.0], [2.0, 0.0]], dtype=D64))
    got = class_norms(z, [0, 0, 1], 0.1)
    torch.testing.assert_close(got, torch.tensor([1.5, 4.0], dtype=D64))


# --------------------------------------------------------------------------- gradcheck
def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(6)
    x = ToPoincare(0.1, 2.0)(torch.randn(6, 4, generator=g, dtype=D64)).requires_grad_(True)
    y = ToPoincare(0.1, 2.0)(torch.randn(3, 4, generator=g, dtype=D64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: poincare_distance_matrix(a, b, 0.1), (x, y))
    h = torch.randn(6, 4, generator=g, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(ToPoincare(0.1, 2.0), (h,))
    for bc in ("official", "consistent"):
        lin = _linear(bc)
        lin.in_dim = 4
        lin.weight = torch.nn.Parameter(lin.weight[:, :4].detach().clone())
        assert torch.autograd.gradcheck(lin, (x,))
    labels, mask = torch.tensor([0, 1, 0]), torch.tensor([True, True, True])
    for sim in ("distance", "angle"):
        assert torch.autograd.gradcheck(lambda a, sim=sim: hyperbolic_infonce(a, 0.1, sim, 0.5), (x,))
        assert torch.autograd.gradcheck(lambda a, sim=sim: hyperbolic_supcon(a, labels, mask, 0.1, sim, 0.5), (x,))


# --------------------------------------------------------------------------- bad input
def test_bad_input() -> None:
    outside = torch.tensor([[4.0, 0.0], [0.0, 0.1]])
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        poincare_distance_matrix(outside, c=0.1)
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        HypLinear(2, 3)(outside)
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        hyperbolic_infonce(outside, 0.1)
    for bad_c in (0.0, -1.0):
        with pytest.raises(ValueError, match="c"):
            ToPoincare(bad_c)
        with pytest.raises(ValueError, match="c"):
            poincare_distance_matrix(torch.zeros(2, 2), c=bad_c)
        with pytest.raises(ValueError, match="c"):
            HypLinear(2, 3, c=bad_c)
    with pytest.raises(ValueError, match="radius"):
        FeatureClip(0.0)
    with pytest.raises(ValueError, match="bias_curvature"):
        HypLinear(2, 3, bias_curvature="geoopt")
    with pytest.raises(ValueError, match="similarity"):
        HyperbolicContrastive("infonce", "euclid")
    with pytest.raises(ValueError, match="NaN|finite"):
        ToPoincare()(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="odd"):
        hyperbolic_infonce(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="end"):
        distance_angle_schedule(0, start=5, end=5)
    with pytest.raises(ValueError, match="epoch"):
        distance_angle_schedule(-1)
