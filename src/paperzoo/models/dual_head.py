"""The dual-head student of Dual-Head Knowledge Distillation (Yang, Zong, Huang, Feng & An,
KDD 2025, arXiv:2411.08937): one backbone feature ``h``, two classifiers reading it.

* head 1 (``fc``, linear ``F -> K``): trained by cross-entropy, the only head used at inference;
* head 2 (``fc2``, auxiliary, training only): trained by the logit-level distillation loss,
  either linear (``aux_head="linear"``) or the official non-linear classifier
  ``Linear(F, 200) -> Dropout(0.1) -> BatchNorm1d(200) -> ReLU -> Linear(200, K)``.

The losses and the training objective are in :mod:`paperzoo.training.distillation`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, validate_params

__all__ = ["DualHeadClassifier"]


class DualHeadClassifier(nn.Module):
    """A backbone returning features (N, F) with an inference head and an auxiliary head.

    ``forward(x, return_aux=None)`` returns ``(logits_main, logits_aux)`` when ``return_aux``
    is true, else ``logits_main`` only; ``None`` (default) means "in train mode", so a trained
    model evaluates (``model.eval()``) with head 1 alone, as the paper does.

    Args:
        backbone: module mapping inputs to features (N, ``feat_dim``).
        feat_dim: F, the feature dimension.
        num_classes: K >= 2.
        aux_head: ``"linear"`` or ``"nonlinear"`` (the official non-linear classifier).
        aux_hidden: hidden width of the non-linear auxiliary head (200 officially).
        aux_dropout: its dropout probability (0.1 officially).

    The initialisation of ``backbone`` and ``fc`` happens before that of ``fc2``, so a
    seeded model has the same backbone and head 1 whatever its auxiliary head.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "feat_dim": [Interval(int, 1, math.inf, closed="left")],
        "num_classes": [Interval(int, 2, math.inf, closed="left")],
        "aux_head": [Options(("linear", "nonlinear"))],
        "aux_hidden": [Interval(int, 1, math.inf, closed="left")],
        "aux_dropout": [Interval(float, 0, 1, closed="left")],
    }

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int,
        num_classes: int,
        aux_head: str = "linear",
        aux_hidden: int = 200,
        aux_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {
                "feat_dim": feat_dim,
                "num_classes": num_classes,
                "aux_head": aux_head,
                "aux_hidden": aux_hidden,
                "aux_dropout": aux_dropout,
            },
            owner=type(self).__name__,
        )
        self.backbone = backbone
        self.feat_dim, self.num_classes, self.aux_head = int(feat_dim), int(num_classes), aux_head
        self.fc = nn.Linear(feat_dim, num_classes)
        if aux_head == "linear":
            self.fc2: nn.Module = nn.Linear(feat_dim, num_classes)
        else:
            self.fc2 = nn.Sequential(
                nn.Linear(feat_dim, aux_hidden),
                nn.Dropout(p=aux_dropout),
                nn.BatchNorm1d(aux_hidden),
                nn.ReLU(inplace=True),
                nn.Linear(aux_hidden, num_classes),
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The shared backbone feature h (N, F)."""
        h = self.backbone(x)
        if h.dim() != 2 or h.shape[1] != self.feat_dim:
            raise ValueError(f"backbone must return features of shape (N, {self.feat_dim}), got {tuple(h.shape)}")
        return h

    def forward(
        self, x: torch.Tensor, return_aux: bool | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        if return_aux is None:
            return_aux = self.training
        if not return_aux:
            return self.fc(h)
        return self.fc(h), self.fc2(h)
