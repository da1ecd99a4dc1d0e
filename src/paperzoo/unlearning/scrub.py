"""SCRUB as benchmarked by Choi & Na (2023), "Towards Machine Unlearning Benchmarks: Forgetting
the Personal Identities in Facial Recognition Systems" (the benchmark's simplified version of
Kurmanji et al.'s teacher-student unlearning).

The teacher is a frozen copy of the original model, the student the model being unlearned. Each
epoch does one pass over the retain set minimising ``CE(student) + KL_T(teacher || student)``
(stay close to the teacher where it should), then one pass over the forget set minimising
``-KL_T(teacher || student)`` (move away from it on the forgotten identities), with one shared
SGD optimiser. ``KL_T = kl_div(log_softmax(s / T), softmax(t / T), reduction="sum") * T^2 / batch``
with temperature ``T = 4``. Benchmark recipe: plain SGD, lr 1e-3, 2 epochs, batch 64.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from paperzoo._validation import Constraint, Interval
from paperzoo.unlearning.base import UnlearningContext, UnlearningData
from paperzoo.unlearning.neggrad import _RECIPE, SGDRecipe

__all__ = ["SCRUB", "distill_kl"]


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """The reference's distillation KL: ``sum KL(softmax(t/T) || softmax(s/T)) * T^2 / batch``."""
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    p_t = F.softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * (t * t) / student_logits.shape[0]


class SCRUB(SGDRecipe):
    """The benchmark's SCRUB: per epoch, a retain pass on ``ce_weight * CE + kl_weight * KL_T``,
    then (for the first ``forget_epochs`` epochs; all epochs when ``None``) a forget pass on
    ``-KL_T``.

    Args:
        lr, epochs, batch_size, momentum: the benchmark recipe (1e-3, 2, 64, 0).
        temperature: distillation temperature ``T`` (4).
        kl_weight: weight of the retain KL (1).
        ce_weight: weight of the retain cross-entropy (1).
        forget_epochs: epochs with a forget (max) pass; ``None`` = every epoch.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **_RECIPE,
        "temperature": [Interval(float, 0, math.inf, closed="neither")],
        "kl_weight": [Interval(float, 0, math.inf, closed="left")],
        "ce_weight": [Interval(float, 0, math.inf, closed="left")],
        "forget_epochs": [None, Interval(int, 0, math.inf, closed="left")],
    }

    def __init__(
        self,
        lr: float = 1e-3,
        epochs: int = 2,
        batch_size: int = 64,
        momentum: float = 0.0,
        temperature: float = 4.0,
        kl_weight: float = 1.0,
        ce_weight: float = 1.0,
        forget_epochs: int | None = None,
    ) -> None:
        super().__init__(
            lr, epochs, batch_size, momentum,
            temperature=temperature, kl_weight=kl_weight, ce_weight=ce_weight, forget_epochs=forget_epochs,
        )  # fmt: skip
        self.temperature, self.kl_weight, self.ce_weight = float(temperature), float(kl_weight), float(ce_weight)
        self.forget_epochs = forget_epochs

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        g = torch.Generator().manual_seed(context.seed)
        opt = self._optimiser(model.parameters())
        n_forget_epochs = self.epochs if self.forget_epochs is None else min(self.forget_epochs, self.epochs)
        model.train()
        for epoch in range(self.epochs):
            for r in self._batches(data.retain_idx, g):
                x = data.x[r]
                s = model(x)
                with torch.no_grad():
                    t = teacher(x)
                loss = self.ce_weight * F.cross_entropy(s, data.y[r]) + self.kl_weight * distill_kl(
                    s, t, self.temperature
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if epoch >= n_forget_epochs:
                continue
            for f in self._batches(data.forget_idx, g):
                x = data.x[f]
                s = model(x)
                with torch.no_grad():
                    t = teacher(x)
                loss = -distill_kl(s, t, self.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return model

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, temperature={self.temperature:g}, kl_weight={self.kl_weight:g}, "
            f"ce_weight={self.ce_weight:g}, forget_epochs={self.forget_epochs}"
        )
