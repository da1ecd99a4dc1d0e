"""The metric-loss check suite passes correct losses and fails deliberately broken ones, each on
the check meant to catch it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses, reducers
from torch import nn

from paperzoo.losses import MultiSimilarityLoss
from paperzoo.testing import check_metric_loss, metric_loss_checks


def _fails(check: Callable[[], None]) -> bool:
    try:
        check()
    except AssertionError:
        return True
    return False


# --------------------------------------------------------------------------- broken losses
class NotPML(nn.Module):
    """A metric loss with the right call signature that is not a PML loss."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        x = F.normalize(embeddings, dim=1)
        same = (labels[:, None] == labels[None, :]).to(x.dtype)
        return ((x @ x.T) * (1.0 - 2.0 * same)).mean()


class _Adjusted(MultiSimilarityLoss):
    """The Multi-Similarity loss with a deliberate bug in :meth:`adjust`."""

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: Any = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.check_call(indices_tuple, ref_emb)
        return self.adjust(super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels), embeddings)

    def check_call(self, indices_tuple: Any, ref_emb: torch.Tensor | None) -> None:
        """Accept every call."""

    def adjust(self, loss: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return loss


class PositionDependent(_Adjusted):
    def adjust(self, loss: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return loss + 1e-2 * embeddings[0].square().sum()


class Noisy(_Adjusted):
    def adjust(self, loss: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return loss + 1e-3 * torch.rand((), dtype=loss.dtype)


class Unpicklable(MultiSimilarityLoss):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transform = lambda x: x


class UnregisteredState(_Adjusted):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = 1.0 + torch.rand(())  # neither a parameter nor a buffer

    def adjust(self, loss: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return loss * self.scale.to(loss.dtype)


class AlwaysFloat32(_Adjusted):
    def adjust(self, loss: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return loss.float()


class _HalfGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return 0.5 * grad


class WrongGradient(_Adjusted):
    def adjust(self, loss: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return _HalfGradient.apply(loss)


class RejectsIndicesTuple(_Adjusted):
    def check_call(self, indices_tuple: Any, ref_emb: torch.Tensor | None) -> None:
        if indices_tuple is not None:
            raise ValueError("miners are not supported")


class RejectsRefEmb(_Adjusted):
    def check_call(self, indices_tuple: Any, ref_emb: torch.Tensor | None) -> None:
        if ref_emb is not None:
            raise ValueError("ref_emb is not supported")


class OnlyMeanReducer(MultiSimilarityLoss):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if type(self.reducer) is not reducers.MeanReducer:
            raise ValueError("only the mean reducer is supported")


BROKEN: list[tuple[str, Callable[..., nn.Module]]] = [
    ("is_pml_loss", NotPML),
    ("gradcheck", WrongGradient),
    ("permutation_invariance", PositionDependent),
    ("determinism", Noisy),
    ("pickle_round_trip", Unpicklable),
    ("state_dict_round_trip", UnregisteredState),
    ("dtype_device", AlwaysFloat32),
    ("miners", RejectsIndicesTuple),
    ("ref_emb", RejectsRefEmb),
    ("reducers", OnlyMeanReducer),
    ("distributed_wrapper", NotPML),
]


# --------------------------------------------------------------------------- tests
def test_correct_losses_pass_every_check() -> None:
    check_metric_loss(MultiSimilarityLoss, dim=5, classes=3, per_class=2, seed=3)


@pytest.mark.parametrize(("check_name", "make"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_check_fails_on_the_loss_it_targets(check_name: str, make: Callable[..., nn.Module]) -> None:
    checks = dict(metric_loss_checks(make))
    assert _fails(checks[check_name])


def test_pml_losses_without_paperzoo_validation_fail_only_the_bad_input_checks() -> None:
    failed = [name for name, check in metric_loss_checks(losses.ContrastiveLoss) if _fails(check)]
    assert failed == [
        "bad_input[embeddings_1d]",
        "bad_input[labels_wrong_length]",
        "bad_input[labels_float]",
        "bad_input[embeddings_nan]",
        "bad_input[empty_batch]",
    ]


def test_the_suite_names_the_failed_checks_only() -> None:
    with pytest.raises(AssertionError, match=r"^1 of \d+ checks failed:\n  permutation_invariance: "):
        check_metric_loss(PositionDependent)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="per_class >= 2"):
        metric_loss_checks(MultiSimilarityLoss, per_class=1)
