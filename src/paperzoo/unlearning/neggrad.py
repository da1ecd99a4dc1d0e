"""NegGrad and advanced NegGrad (NegGrad+), as benchmarked by Choi & Na (2023), "Towards Machine
Unlearning Benchmarks: Forgetting the Personal Identities in Facial Recognition Systems".

Both follow the benchmark's reference notebooks: start from the original model, plain SGD (no
momentum), lr 1e-3, 2 epochs, batch 64. The loop is paced by the *retain* batches: at each step
the next forget batch is drawn (the forget loader cycles when exhausted) and the step is skipped
when its size differs from the retain batch's.

- :class:`NegGrad`: minimise ``-CE(forget batch)`` (gradient ascent on the forget set); the retain
  batch only paces the loop.
- :class:`NegGradPlus` (the paper's "advanced NegGrad"): minimise
  ``retain_weight * CE(retain batch) - forget_weight * CE(forget batch)``, both weights 1 as in the
  benchmark (Kurmanji et al.'s NegGrad+ writes the same loss as ``alpha * CE_r - (1 - alpha) * CE_f``).

The shared recipe (:class:`SGDRecipe`, seeded shuffling of each split) is reused by the
benchmark's other baselines (:mod:`~paperzoo.unlearning.scrub`, :mod:`~paperzoo.unlearning.unsir`,
:mod:`~paperzoo.unlearning.cfk`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from paperzoo._validation import Constraint, Interval, validate_params
from paperzoo.unlearning.base import Unlearner, UnlearningContext, UnlearningData

__all__ = ["AdvancedNegGrad", "NegGrad", "NegGradPlus", "SGDRecipe"]

_RECIPE: dict[str, list[Constraint]] = {
    "lr": [Interval(float, 0, math.inf, closed="left")],
    "epochs": [Interval(int, 0, math.inf, closed="left")],
    "batch_size": [Interval(int, 1, math.inf, closed="left")],
    "momentum": [Interval(float, 0, 1, closed="left")],
}


class SGDRecipe(Unlearner):
    """The benchmark's unlearning recipe: SGD (``momentum`` 0 = plain, as the reference), ``lr``,
    ``epochs``, ``batch_size``, and per-epoch shuffled batches of a split drawn from a
    ``torch.Generator`` seeded with the context's seed (``model.train()`` during the updates, as
    the reference, which trains with the train transform)."""

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = _RECIPE

    def __init__(
        self, lr: float = 1e-3, epochs: int = 2, batch_size: int = 64, momentum: float = 0.0, **extra: Any
    ) -> None:
        super().__init__()
        params = {"lr": lr, "epochs": epochs, "batch_size": batch_size, "momentum": momentum, **extra}
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        self.lr, self.epochs, self.batch_size, self.momentum = float(lr), int(epochs), int(batch_size), float(momentum)

    def _optimiser(self, params: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)

    def _batches(self, idx: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
        """One epoch of shuffled index batches of ``idx`` (the last one may be short)."""
        return list(idx[torch.randperm(len(idx), generator=g)].split(self.batch_size))

    def _cycle(self, idx: torch.Tensor, g: torch.Generator) -> Iterator[torch.Tensor]:
        """Shuffled batches of ``idx`` forever, reshuffled at each pass (a cycling loader)."""
        while True:
            yield from self._batches(idx, g)

    def extra_repr(self) -> str:
        return f"lr={self.lr:g}, epochs={self.epochs}, batch_size={self.batch_size}, momentum={self.momentum:g}"


class _PacedByRetain(SGDRecipe):
    """Steps paced by the retain batches, each paired with the next (cycling) forget batch."""

    def _loss(
        self, model: nn.Module, xr: torch.Tensor, yr: torch.Tensor, xf: torch.Tensor, yf: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        g = torch.Generator().manual_seed(context.seed)
        opt = self._optimiser(model.parameters())
        forget = self._cycle(data.forget_idx, g)
        model.train()
        for _ in range(self.epochs):
            for r in self._batches(data.retain_idx, g):
                f = next(forget)
                if len(f) != len(r):  # the reference skips a step whose batches differ in size
                    continue
                loss = self._loss(model, data.x[r], data.y[r], data.x[f], data.y[f])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return model


class NegGrad(_PacedByRetain):
    """Gradient ascent on the forget set, paced by the retain batches: minimise ``-CE(forget)``.

    Args:
        lr: SGD learning rate (1e-3 in the benchmark).
        epochs: passes over the retain set (2).
        batch_size: batch size of both splits (64).
        momentum: SGD momentum (0: plain SGD, as the reference).
    """

    def _loss(
        self, model: nn.Module, xr: torch.Tensor, yr: torch.Tensor, xf: torch.Tensor, yf: torch.Tensor
    ) -> torch.Tensor:
        return -F.cross_entropy(model(xf), yf)


class NegGradPlus(_PacedByRetain):
    """Advanced NegGrad: minimise ``retain_weight * CE(retain) - forget_weight * CE(forget)`` at
    each step (both weights 1 in the benchmark).

    Args:
        lr, epochs, batch_size, momentum: as :class:`NegGrad`.
        retain_weight: weight of the retain cross-entropy (>= 0).
        forget_weight: weight of the negated forget cross-entropy (>= 0).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **_RECIPE,
        "retain_weight": [Interval(float, 0, math.inf, closed="left")],
        "forget_weight": [Interval(float, 0, math.inf, closed="left")],
    }

    def __init__(
        self,
        lr: float = 1e-3,
        epochs: int = 2,
        batch_size: int = 64,
        momentum: float = 0.0,
        retain_weight: float = 1.0,
        forget_weight: float = 1.0,
    ) -> None:
        super().__init__(lr, epochs, batch_size, momentum, retain_weight=retain_weight, forget_weight=forget_weight)
        self.retain_weight, self.forget_weight = float(retain_weight), float(forget_weight)

    def _loss(
        self, model: nn.Module, xr: torch.Tensor, yr: torch.Tensor, xf: torch.Tensor, yf: torch.Tensor
    ) -> torch.Tensor:
        # two forward passes, as the reference (batch-norm statistics per split)
        return self.retain_weight * F.cross_entropy(model(xr), yr) - self.forget_weight * F.cross_entropy(model(xf), yf)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, retain_weight={self.retain_weight:g}, forget_weight={self.forget_weight:g}"


#: The paper's name for :class:`NegGradPlus`.
AdvancedNegGrad = NegGradPlus
