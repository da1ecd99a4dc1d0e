"""DatasetEquity's likelihood-weighted loss (Shrivastava et al., ICCV 2023 Workshops): the weight's
golden values and limits, the loss's weighting mechanics, and the conformance suite, once for the
plain path (no likelihood: cross-entropy) and once with a likelihood bound to every sample."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import check_logits_target
from paperzoo.losses import (
    ClassificationLoss,
    DatasetEquityLoss,
    OneHotMSELoss,
    check_likelihood,
    dataset_equity_loss,
    dataset_equity_weight,
)
from paperzoo.losses.dataset_equity import bench_dataset_equity, bench_reference
from paperzoo.testing import classification_loss_checks

# --------------------------------------------------------------------------- golden values
P = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
GOLDEN = [  # (eta, gamma, w(P)), the formula evaluated independently in float64
    (1.0, 5.0, [1.0, 0.795245, 0.618652, 0.515625, 0.500005, 0.5]),
    (0.5, 5.0, [1.0, 0.726993, 0.491536, 0.354167, 0.333340, 0.333333]),
    (1.0, 2.0, [1.0, 0.905, 0.78125, 0.625, 0.505, 0.5]),
]


@pytest.mark.parametrize(("eta", "gamma", "expected"), GOLDEN)
def test_weight_golden_values(eta: float, gamma: float, expected: list[float]) -> None:
    w = dataset_equity_weight(torch.tensor(P, dtype=torch.float64), eta, gamma)
    torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-6)
    np.testing.assert_allclose(dataset_equity_weight(np.array(P), eta, gamma), expected, atol=1e-6)
    assert dataset_equity_weight(0.5, eta, gamma) == pytest.approx(expected[3], abs=1e-6)


def test_weight_limits_and_range() -> None:
    p = torch.linspace(0, 1, 201, dtype=torch.float64)
    assert torch.equal(dataset_equity_weight(p, 1.0, 0.0), torch.ones_like(p))  # gamma = 0: no weighting
    for eta in (0.1, 0.5, 1.0, 3.0):
        for gamma in (0.5, 2.0, 5.0):
            w = dataset_equity_weight(p, eta, gamma)
            assert float(w[-1]) == pytest.approx(eta / (eta + 1))  # the most common sample
            assert float(w[0]) == pytest.approx(1.0)  # the rare limit
            assert bool((w.diff() <= 0).all())  # non-increasing in p
            assert bool((w >= eta / (eta + 1) - 1e-15).all() and (w <= 1).all())
            assert float(w[0] / w[-1]) == pytest.approx((eta + 1) / eta)  # the largest rare/common ratio
    assert float((dataset_equity_weight(p, 1e9, 5.0) - 1).abs().max()) < 1e-8  # eta -> inf


def test_weight_keeps_type_and_shape() -> None:
    assert isinstance(dataset_equity_weight(0.3), float)
    arr = dataset_equity_weight(np.full((2, 3), 0.3, dtype=np.float32))
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 3)
    t = dataset_equity_weight(torch.full((4, 2), 0.3, dtype=torch.float32))
    assert t.dtype == torch.float32 and t.shape == (4, 2)


@pytest.mark.parametrize(
    ("p", "kwargs", "error", "match"),
    [
        (torch.tensor([0.5, 1.2]), {}, ValueError, r"lie in \[0, 1\]"),
        (torch.tensor([-0.1, 0.5]), {}, ValueError, r"lie in \[0, 1\]"),
        (torch.tensor([0.5, float("nan")]), {}, ValueError, "NaN"),
        (torch.tensor([1, 0]), {}, TypeError, "floating-point"),
        (np.array(["a"]), {}, TypeError, "float"),
        (0.5, {"eta": 0.0}, ValueError, "dataset_equity_weight: eta must be a float in"),
        (0.5, {"gamma": -1.0}, ValueError, "dataset_equity_weight: gamma must be a float in"),
    ],
)
def test_weight_bad_input(p: object, kwargs: dict[str, float], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        dataset_equity_weight(p, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the loss
def _inputs(b: int = 7, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(b, c, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (b,), generator=g)
    p = torch.rand(b, generator=g, dtype=torch.float64)
    p[0], p[1] = 1.0, 0.0
    return logits, target, p


def test_loss_is_weighted_cross_entropy() -> None:
    logits, target, p = _inputs()
    ce = F.cross_entropy(logits, target, reduction="none")
    w = (0.5 + (1 - p) ** 5) / 1.5
    loss = DatasetEquityLoss(eta=0.5, gamma=5.0, reduction="none")
    torch.testing.assert_close(loss(logits, target, likelihood=p), w * ce)
    torch.testing.assert_close(DatasetEquityLoss(eta=0.5)(logits, target, likelihood=p), (w * ce).mean())
    torch.testing.assert_close(
        DatasetEquityLoss(eta=0.5, reduction="sum")(logits, target, likelihood=p), (w * ce).sum()
    )
    out = dataset_equity_loss(logits, target, p, eta=0.5, gamma=5.0)
    torch.testing.assert_close(out, (w * ce).mean())


def test_gamma_zero_and_no_likelihood_give_the_base_loss_exactly() -> None:
    logits, target, p = _inputs()
    ce = F.cross_entropy(logits, target, reduction="none")
    for reduction, base in (("none", ce), ("sum", ce.sum()), ("mean", ce.mean())):
        assert torch.equal(DatasetEquityLoss(gamma=0.0, reduction=reduction)(logits, target, likelihood=p), base)
        assert torch.equal(DatasetEquityLoss(reduction=reduction)(logits, target), base)
    torch.testing.assert_close(DatasetEquityLoss()(logits, target), F.cross_entropy(logits, target))


def test_equal_likelihoods_give_a_constant_multiple() -> None:
    logits, target, _ = _inputs()
    for value in (0.0, 0.3, 1.0):
        p = torch.full((7,), value, dtype=torch.float64)
        out = DatasetEquityLoss(reduction="none")(logits, target, likelihood=p)
        torch.testing.assert_close(
            out, dataset_equity_weight(value) * F.cross_entropy(logits, target, reduction="none")
        )
        # normalised weights of equal likelihoods are all 1: the base loss
        normed = DatasetEquityLoss(normalize=True)(logits, target, likelihood=p)
        torch.testing.assert_close(normed, F.cross_entropy(logits, target))


def test_gradients_are_scaled_by_exactly_the_weight() -> None:
    logits, target, p = _inputs()
    x1, x2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    DatasetEquityLoss(reduction="sum")(x1, target, likelihood=p).backward()
    F.cross_entropy(x2, target, reduction="sum").backward()
    assert x1.grad is not None and x2.grad is not None
    torch.testing.assert_close(x1.grad, dataset_equity_weight(p)[:, None] * x2.grad)


def test_normalize_divides_by_the_batch_mean_weight() -> None:
    logits, target, p = _inputs()
    w = dataset_equity_weight(p)
    ce = F.cross_entropy(logits, target, reduction="none")
    out = DatasetEquityLoss(normalize=True, reduction="none")(logits, target, likelihood=p)
    torch.testing.assert_close(out, w / w.mean() * ce)
    torch.testing.assert_close(
        DatasetEquityLoss(normalize=True)(logits, target, likelihood=p), (w * ce).sum() / w.sum()
    )


def test_sample_weights_apply_on_top() -> None:
    logits, target, p = _inputs()
    u = torch.rand(7, dtype=torch.float64) + 0.1
    w = dataset_equity_weight(p)
    ce = F.cross_entropy(logits, target, reduction="none")
    out = DatasetEquityLoss()(logits, target, u, likelihood=p)
    torch.testing.assert_close(out, (u * w * ce).sum() / u.sum())


def test_base_losses() -> None:
    logits, target, p = _inputs()
    w = dataset_equity_weight(p)
    mse = DatasetEquityLoss(base_loss=OneHotMSELoss(), reduction="none")(logits, target, likelihood=p)
    torch.testing.assert_close(mse, w * OneHotMSELoss(reduction="none")(logits, target))
    smooth = nn.CrossEntropyLoss(reduction="none", label_smoothing=0.1)
    out = DatasetEquityLoss(base_loss=smooth, reduction="none")(logits, target, likelihood=p)
    torch.testing.assert_close(out, w * smooth(logits, target))
    with pytest.raises(ValueError, match=r"per-sample losses of shape \(7,\)"):
        DatasetEquityLoss(base_loss=nn.CrossEntropyLoss())(logits, target, likelihood=p)
    with pytest.raises(TypeError, match="base_loss must be None"):
        DatasetEquityLoss(base_loss=F.cross_entropy)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("p", "error", "match"),
    [
        (torch.full((6,), 0.5), ValueError, r"likelihood must have shape \(7,\)"),
        (torch.full((7, 1), 0.5), ValueError, r"likelihood must have shape \(7,\)"),
        (torch.full((7,), 1.5), ValueError, r"lie in \[0, 1\]"),
        (torch.full((7,), float("inf")), ValueError, "NaN or infinite"),
        (torch.ones(7, dtype=torch.long), TypeError, "floating-point"),
    ],
)
def test_loss_rejects_bad_likelihood(p: torch.Tensor, error: type[Exception], match: str) -> None:
    logits, target, _ = _inputs()
    with pytest.raises(error, match=match):
        DatasetEquityLoss()(logits, target, likelihood=p)
    with pytest.raises(error, match=match):
        dataset_equity_loss(logits, target, p)


def test_loss_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="DatasetEquityLoss: eta must be a float in"):
        DatasetEquityLoss(eta=-1.0)
    with pytest.raises(ValueError, match="DatasetEquityLoss: normalize must be one of"):
        DatasetEquityLoss(normalize=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dataset_equity_loss: gamma must be"):
        dataset_equity_loss(*_inputs(), gamma=float("nan"))
    check_likelihood(torch.zeros(3), 3)  # p = 0 (the rare limit) is allowed


def test_bench_entries_agree_with_the_reference() -> None:
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(64, 1000, generator=g), torch.randint(0, 1000, (64,), generator=g)
    torch.testing.assert_close(bench_dataset_equity()(logits, target), bench_reference()(logits, target))


# --------------------------------------------------------------------------- conformance
CHECKS = classification_loss_checks(DatasetEquityLoss, dataset_equity_loss)


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_conformance_without_likelihood(name: str, check: Callable[[], None]) -> None:
    check()


def _likelihood_of(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """A likelihood per sample that follows the sample under permutations (a function of its
    target), covering p = 0 and p = 1."""
    return (target.to(logits.dtype) / (logits.shape[1] - 1)).to(torch.float64)


class LikelihoodBound(DatasetEquityLoss):
    """:class:`DatasetEquityLoss` with eta 0.5, gamma 3 and the likelihood of :func:`_likelihood_of`,
    so that the suite's ``loss(logits, target[, weight])`` exercises the weighting."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(eta=0.5, gamma=3.0, reduction=reduction)

    def forward(  # type: ignore[override]
        self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_logits_target(logits, target)  # bad inputs: the error the suite expects, before the likelihood
        p = _likelihood_of(target, logits).to(logits.device)
        return super().forward(logits, target, weight, likelihood=p)


def _bound_functional(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    check_logits_target(logits, target)  # bad inputs: the error the suite expects, before the likelihood
    return dataset_equity_loss(logits, target, _likelihood_of(target, logits), 0.5, 3.0, reduction=reduction)


BOUND_CHECKS = classification_loss_checks(LikelihoodBound, _bound_functional, num_classes=4, batch=9, seed=3)


@pytest.mark.parametrize(("name", "check"), BOUND_CHECKS, ids=[name for name, _ in BOUND_CHECKS])
def test_conformance_with_likelihood(name: str, check: Callable[[], None]) -> None:
    check()


def test_is_a_classification_loss() -> None:
    assert isinstance(DatasetEquityLoss(), ClassificationLoss)
    assert "eta=1.0, gamma=5.0, normalize=False" in repr(DatasetEquityLoss())
