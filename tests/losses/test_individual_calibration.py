"""Tests of RCAL's individual representation calibration term (Zhang et al., ICCV 2023): zero at
the frozen representation, gradient only into the current one, the distance definitions, and the
boundary checks. It is not a classification loss (it compares two representation batches), so
the checks the classification conformance suite would run are written here."""

from __future__ import annotations

import pickle

import pytest
import torch

from paperzoo.losses import IndividualCalibrationLoss, individual_calibration_loss


def _pair(b: int = 6, d: int = 4, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, d, generator=g, dtype=dtype), torch.randn(b, d, generator=g, dtype=dtype)


def test_zero_at_frozen_with_finite_zero_gradient() -> None:
    cur, _ = _pair()
    cur.requires_grad_(True)
    for distance in ("l2", "sq_l2"):
        loss = IndividualCalibrationLoss(beta=2.0, distance=distance)(cur, cur.detach().clone())
        (grad,) = torch.autograd.grad(loss, cur)
        assert float(loss.detach()) == 0.0
        assert torch.equal(grad, torch.zeros_like(grad))


def test_gradient_flows_only_into_current() -> None:
    cur, fro = _pair()
    cur.requires_grad_(True)
    fro.requires_grad_(True)
    IndividualCalibrationLoss()(cur, fro).backward()
    assert cur.grad is not None and float(cur.grad.abs().sum()) > 0
    assert fro.grad is None


def test_matches_the_naive_definition() -> None:
    cur, fro = _pair()
    naive_l2 = torch.stack([torch.sqrt(((c - f) ** 2).sum()) for c, f in zip(cur, fro)])
    naive_sq = torch.stack([((c - f) ** 2).sum() for c, f in zip(cur, fro)])
    torch.testing.assert_close(individual_calibration_loss(cur, fro, 0.5, "l2", "none"), 0.5 * naive_l2)
    torch.testing.assert_close(individual_calibration_loss(cur, fro, 0.5, "sq_l2", "none"), 0.5 * naive_sq)
    torch.testing.assert_close(individual_calibration_loss(cur, fro, 0.5), 0.5 * naive_l2.mean())
    torch.testing.assert_close(individual_calibration_loss(cur, fro, 0.5, reduction="sum"), 0.5 * naive_l2.sum())


def test_l2_gradient_is_the_unit_direction() -> None:
    cur, fro = _pair(b=1)
    cur.requires_grad_(True)
    individual_calibration_loss(cur, fro, reduction="sum").backward()
    diff = (cur - fro).detach()
    torch.testing.assert_close(cur.grad, diff / diff.norm())


def test_beta_zero_gives_zero_and_module_equals_functional() -> None:
    cur, fro = _pair()
    assert float(IndividualCalibrationLoss(beta=0.0)(cur, fro)) == 0.0
    mod = IndividualCalibrationLoss(beta=0.3, distance="sq_l2", reduction="none")
    torch.testing.assert_close(mod(cur, fro), individual_calibration_loss(cur, fro, 0.3, "sq_l2", "none"))


@pytest.mark.parametrize("distance", ["l2", "sq_l2"])
def test_gradcheck(distance: str) -> None:
    cur, fro = _pair(b=3, d=3)
    cur.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: individual_calibration_loss(c, fro, 0.7, distance), (cur,))


def test_follows_dtype_and_pickles() -> None:
    cur, fro = _pair(dtype=torch.float32)
    assert IndividualCalibrationLoss()(cur, fro).dtype == torch.float32
    mod = pickle.loads(pickle.dumps(IndividualCalibrationLoss(beta=0.2, distance="sq_l2")))
    assert (mod.beta, mod.distance) == (0.2, "sq_l2")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"beta": -1.0}, "beta"), ({"distance": "cosine"}, "distance"), ({"reduction": "max"}, "reduction")],
)
def test_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IndividualCalibrationLoss(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_name_the_argument() -> None:
    cur, fro = _pair()
    loss = IndividualCalibrationLoss()
    with pytest.raises(ValueError, match="frozen must have the shape"):
        loss(cur, fro[:, :2])
    with pytest.raises(ValueError, match="current must have shape"):
        loss(cur[0], fro[0])
    with pytest.raises(ValueError, match="empty batch"):
        loss(cur[:0], fro[:0])
    bad = cur.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="current contains NaN"):
        loss(bad, fro)
    with pytest.raises(ValueError, match="frozen contains NaN"):
        loss(cur, bad)
    with pytest.raises(TypeError, match="current must be a floating-point"):
        loss(cur.long(), fro)
