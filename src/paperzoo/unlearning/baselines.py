"""The simple unlearning baselines every unlearning table compares against.

- :class:`Original`: no edit (the upper end of what the forget set is remembered).
- :class:`Retrain`: a fresh model trained on the retain set with the original recipe (exact
  unlearning at full cost; an independent draw from the protocol's oracle).
- :class:`FinetuneRetain`: fine-tune on the retain set only, hoping for catastrophic forgetting
  of the forget set.
- :class:`GradientAscent`: gradient *ascent* of the cross-entropy on the forget set.
- :class:`RandomLabels`: fine-tune on the forget set relabelled with random wrong classes,
  together with retain batches that hold accuracy.

All fine-tuning runs through :func:`paperzoo.engine.fit` with SGD (momentum 0.9) on batches of
``batch_size``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from paperzoo._validation import Constraint, Interval, validate_params
from paperzoo.engine import TrainConfig, fit, make_loader
from paperzoo.unlearning.base import Unlearner, UnlearningContext, UnlearningData

__all__ = ["FinetuneRetain", "GradientAscent", "Original", "RandomLabels", "Retrain"]

_FINETUNE: dict[str, list[Constraint]] = {
    "epochs": [Interval(int, 1, math.inf, closed="left")],
    "lr": [Interval(float, 0, math.inf, closed="neither")],
    "batch_size": [Interval(int, 1, math.inf, closed="left")],
}


class _Finetune(Unlearner):
    """Hyper-parameters and the SGD run shared by the fine-tuning baselines."""

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = _FINETUNE

    def __init__(self, epochs: int, lr: float, batch_size: int = 128) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"epochs": epochs, "lr": lr, "batch_size": batch_size},
            owner=type(self).__name__,
        )
        self.epochs, self.lr, self.batch_size = int(epochs), float(lr), int(batch_size)

    def _fit(self, model: nn.Module, tensors: tuple[torch.Tensor, ...], compute_loss: Any, seed: int) -> None:
        loader = make_loader(TensorDataset(*tensors), min(self.batch_size, len(tensors[0])), seed=seed)
        optimiser = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)
        config = TrainConfig(epochs=self.epochs, seed=seed, progress=False, desc=type(self).__name__)
        fit(model, None, loader, optimiser, config, compute_loss=compute_loss)

    def extra_repr(self) -> str:
        return f"epochs={self.epochs}, lr={self.lr:g}, batch_size={self.batch_size}"


def _cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


class Original(Unlearner):
    """The original model, unchanged."""

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        return model


class Retrain(Unlearner):
    """Retrain from scratch on the retain set with the original recipe (``context.model_fn`` and
    ``context.train_fn``), from the method's seed."""

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        fresh = context.model_fn()
        context.train_fn(fresh, data.x_retain, data.y_retain, context.seed)
        return fresh


class FinetuneRetain(_Finetune):
    """Fine-tune on the retain set only (cross-entropy, SGD)."""

    def __init__(self, epochs: int = 2, lr: float = 0.01, batch_size: int = 128) -> None:
        super().__init__(epochs, lr, batch_size)

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        model.train()
        self._fit(model, (data.x_retain, data.y_retain), _cross_entropy, context.seed)
        return model


class GradientAscent(_Finetune):
    """Gradient ascent of the cross-entropy on the forget set (SGD on its negative)."""

    def __init__(self, epochs: int = 1, lr: float = 0.001, batch_size: int = 128) -> None:
        super().__init__(epochs, lr, batch_size)

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        model.train()
        self._fit(model, (data.x_forget, data.y_forget), lambda m, b: -_cross_entropy(m, b), context.seed)
        return model


class RandomLabels(_Finetune):
    """Fine-tune on the forget set with each label replaced by a random *other* class (drawn once,
    seeded), plus an equally sized retain batch at each step: cross-entropy on both."""

    def __init__(self, epochs: int = 2, lr: float = 0.01, batch_size: int = 128) -> None:
        super().__init__(epochs, lr, batch_size)

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        g = torch.Generator().manual_seed(context.seed)
        n_f = len(data.forget_idx)
        shift = torch.randint(1, data.num_classes, (n_f,), generator=g)
        wrong = (data.y_forget + shift) % data.num_classes
        retain = data.retain_idx[torch.randint(len(data.retain_idx), (n_f,), generator=g)]

        def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            xf, yf, xr, yr = batch
            return F.cross_entropy(m(torch.cat([xf, xr])), torch.cat([yf, yr]))

        model.train()
        self._fit(model, (data.x_forget, wrong, data.x[retain], data.y[retain]), loss, context.seed)
        return model
