"""What every unlearning method here shares: the data (forget / retain / test), the method
interface, and what a method may see besides the trained model.

A method is an :class:`Unlearner`: ``unlearn(model, data, context) -> model``. ``data`` holds
the training set of the original model (forget + retain) and a held-out test set; ``context``
the recipe that trained the original model (for methods that train new models, e.g. datamodels)
and, for the methods that are allowed to see it, the retrained-from-scratch oracle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from paperzoo._validation import check_finite, check_labels

__all__ = ["TrainFn", "Unlearner", "UnlearningContext", "UnlearningData"]

#: ``train_fn(model, x, y, seed)`` trains ``model`` in place on ``(x, y)`` with the original recipe.
TrainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], None]


def _indices(name: str, idx: np.ndarray | torch.Tensor | list[int], n: int) -> torch.Tensor:
    out = torch.as_tensor(np.asarray(idx), dtype=torch.long).reshape(-1)
    if out.numel() == 0:
        raise ValueError(f"UnlearningData: {name} is empty; every split needs at least one sample")
    if int(out.min()) < 0 or int(out.max()) >= n:
        raise ValueError(
            f"UnlearningData: {name} holds indices outside [0, {n}), got {int(out.min())}..{int(out.max())}"
        )
    if torch.unique(out).numel() != out.numel():
        raise ValueError(f"UnlearningData: {name} repeats an index")
    return out


@dataclass(frozen=True, eq=False)
class UnlearningData:
    """Samples ``x`` (N, ...) with labels ``y`` (N,), and three disjoint index sets: ``forget_idx``
    (the samples to unlearn), ``retain_idx`` (the rest of the original training set) and
    ``test_idx`` (never trained on). ``groups`` (N,), optional: the identity or group of each
    sample, for protocols that split by identity.

    Raises:
        ValueError: a split is empty, indices are out of range or repeated, two splits overlap,
            ``y`` is not (N,) integer labels in ``[0, num_classes)``, or ``x`` holds NaN or inf.
    """

    x: torch.Tensor
    y: torch.Tensor
    forget_idx: torch.Tensor
    retain_idx: torch.Tensor
    test_idx: torch.Tensor
    num_classes: int
    groups: torch.Tensor | None = field(default=None)

    def __post_init__(self) -> None:
        if self.x.ndim < 2 or self.x.shape[0] == 0:
            raise ValueError(f"UnlearningData: x must be (N, ...) with N >= 1, got shape {tuple(self.x.shape)}")
        n = self.x.shape[0]
        check_finite(self.x, "x")
        check_labels(self.y, n, "y", self.num_classes)
        for name in ("forget_idx", "retain_idx", "test_idx"):
            object.__setattr__(self, name, _indices(name, getattr(self, name), n))
        pairs = (("forget_idx", "retain_idx"), ("forget_idx", "test_idx"), ("retain_idx", "test_idx"))
        for a, b in pairs:
            shared = np.intersect1d(getattr(self, a).numpy(), getattr(self, b).numpy())
            if shared.size:
                raise ValueError(
                    f"UnlearningData: {a} and {b} overlap in {shared.size} samples (e.g. index {int(shared[0])}); "
                    "the splits must be disjoint"
                )
        if self.groups is not None and self.groups.shape != (n,):
            raise ValueError(f"UnlearningData: groups must be ({n},), got shape {tuple(self.groups.shape)}")

    @property
    def train_idx(self) -> torch.Tensor:
        """The original training set: forget then retain."""
        return torch.cat([self.forget_idx, self.retain_idx])

    @property
    def x_forget(self) -> torch.Tensor:
        return self.x[self.forget_idx]

    @property
    def y_forget(self) -> torch.Tensor:
        return self.y[self.forget_idx]

    @property
    def x_retain(self) -> torch.Tensor:
        return self.x[self.retain_idx]

    @property
    def y_retain(self) -> torch.Tensor:
        return self.y[self.retain_idx]

    @property
    def x_test(self) -> torch.Tensor:
        return self.x[self.test_idx]

    @property
    def y_test(self) -> torch.Tensor:
        return self.y[self.test_idx]

    @property
    def x_train(self) -> torch.Tensor:
        return self.x[self.train_idx]

    @property
    def y_train(self) -> torch.Tensor:
        return self.y[self.train_idx]


@dataclass(frozen=True, eq=False)
class UnlearningContext:
    """What a method may use besides the model and the data: ``model_fn`` builds a fresh model,
    ``train_fn`` trains one with the original recipe, ``seed`` seeds the method, and ``oracle``
    (None unless the protocol grants it) returns the model retrained from scratch on the retain set,
    for oracle-matching methods."""

    model_fn: Callable[[], nn.Module]
    train_fn: TrainFn
    seed: int
    oracle: Callable[[], nn.Module] | None = None


class Unlearner(nn.Module, ABC):
    """An unlearning method. Subclasses set :attr:`uses_labels` (False for label-agnostic methods,
    which must not read ``data.y``) and :attr:`needs_oracle` (True for methods that fit the
    oracle's outputs) and implement :meth:`unlearn`.

    It is an ``nn.Module`` so that ``paperzoo compare --task unlearning`` can build it from a method
    entry like any other component; it holds hyper-parameters, not the model it edits.
    """

    uses_labels: ClassVar[bool] = True
    needs_oracle: ClassVar[bool] = False

    @abstractmethod
    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        """Return the unlearned model (``model`` edited in place or a new module)."""

    def forward(self, *args: object) -> None:  # an Unlearner is applied with unlearn(), never called
        raise TypeError(f"{type(self).__name__} is applied with .unlearn(model, data, context), not called")
