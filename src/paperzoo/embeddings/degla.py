"""DeGLA's training pieces: the EMA teacher and a ``compute_loss`` for :func:`paperzoo.engine.fit`.

From Hu et al., "Decoupled Global-Local Alignment for Improving Compositional Understanding"
(ACM MM 2025). The frozen teacher is an exponential moving average of the student (its
self-distillation section; the official ``update_teacher_ema``): after every optimiser step
``theta* <- a theta* + (1 - a) theta`` over ``parameters()`` only (buffers are left alone),
starting from a copy of the pre-trained model (the reference averages from the first step; this
is why ``torch.optim.swa_utils.AveragedModel``, which *copies* on its first update, is not used).

:class:`DeGLAObjective` is the per-batch procedure of the paper's training loop as a
``compute_loss(model, batch)`` for :func:`paperzoo.engine.fit` (which has no post-step hook):
before each forward it applies the *previous* step's post-step work (clamp CLIP's logit scale,
EMA-update the teacher), which gives exactly the reference's sequence; call :meth:`finish`
once after ``fit`` for the last step's update.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from paperzoo._validation import Constraint, Interval, validate_params
from paperzoo.losses.degla import DeGLALoss

__all__ = ["DeGLAObjective", "EMATeacher"]


class EMATeacher(nn.Module):
    """A frozen exponential-moving-average copy of a model.

    Args:
        model: the student; the teacher starts as a deep copy of it (eval mode, no gradients).
        decay: the EMA decay ``a`` in ``[0, 1]`` (paper: 0.9996; 1 freezes the teacher).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {"decay": [Interval(float, 0.0, 1.0, closed="both")]}

    def __init__(self, model: nn.Module, decay: float = 0.9996) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"decay": decay}, owner=type(self).__name__)
        self.decay = float(decay)
        self.module = copy.deepcopy(model)
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> EMATeacher:
        """The teacher stays in eval mode whatever ``mode`` is."""
        super().train(mode)
        self.module.eval()
        return self

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """``theta* <- decay theta* + (1 - decay) theta`` for every parameter (not buffers)."""
        ps = list(student.parameters())
        pt = list(self.module.parameters())
        if len(ps) != len(pt) or any(a.shape != b.shape for a, b in zip(ps, pt)):
            raise ValueError("student must have the teacher's architecture (same parameters, same shapes)")
        if self.decay == 1.0:
            return
        torch._foreach_mul_(pt, self.decay)
        torch._foreach_add_(pt, [p.detach() for p in ps], alpha=1.0 - self.decay)

    @torch.no_grad()
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


class DeGLAObjective:
    """``compute_loss(model, batch)`` of DeGLA fine-tuning for :func:`paperzoo.engine.fit`.

    The model is a dual encoder ``model(images, texts) -> (image_emb, text_emb, scale)`` with
    a ``logit_scale`` parameter (e.g. :class:`paperzoo.models.dual_encoder.DualEncoder`); the
    batch is ``(images (N, ...), texts (N(1+K), ...))`` with the texts laid out as positives,
    then K negatives per image sample-major. The teacher (when the loss needs it) embeds the
    same images and texts under ``no_grad``.

    Args:
        loss: the :class:`DeGLALoss` (weights 0 give NegCLIP, and with
            ``base_includes_negatives=False`` plain CLIP fine-tuning).
        teacher: the :class:`EMATeacher` of the model (None when the loss needs no teacher).
        max_logit_scale: the logit scale is clamped to ``[0, max_logit_scale]`` (CLIP: ln 100).
    """

    def __init__(
        self, loss: DeGLALoss, teacher: EMATeacher | None = None, max_logit_scale: float = math.log(100.0)
    ) -> None:
        if teacher is None and (loss.w_tgc > 0 or loss.w_distill > 0):
            raise ValueError("teacher is required when the loss has w_tgc > 0 or w_distill > 0")
        self.loss = loss
        self.teacher = teacher
        self.max_logit_scale = float(max_logit_scale)
        self.steps = 0
        self.last_terms: dict[str, float] = {}

    def _post_step(self, model: nn.Module) -> None:
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, self.max_logit_scale)
        if self.teacher is not None:
            self.teacher.update(model)

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        images, texts = batch[0], batch[1]
        if self.steps > 0:
            self._post_step(model)
        self.steps += 1
        v, t, s = model(images, texts)
        tv = tt = None
        if self.teacher is not None:
            tv, tt, _ = self.teacher(images, texts)
        out = self.loss(v, t, s, tv, tt)
        self.last_terms = {k: float(x.detach()) for k, x in out.items()}
        return out["loss"]

    def finish(self, model: nn.Module) -> None:
        """The post-step work of the last step (call once after ``fit``)."""
        if self.steps > 0:
            self._post_step(model)
