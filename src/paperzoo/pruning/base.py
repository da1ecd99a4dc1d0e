"""The interface every pruning method here shares, so that one protocol (sparsity -> accuracy,
parameters, FLOPs and CPU latency; ``paperzoo compare --task pruning``) runs any of them on any model.

A method is a :class:`Pruner`: ``prune(model, sparsity, calibration) -> model``. Unstructured
methods zero weights through ``torch.nn.utils.prune`` masks and return the same module; structured
methods remove channels and may return a new, smaller module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

__all__ = ["Pruner", "check_sparsity"]


def check_sparsity(sparsity: float, owner: str) -> float:
    """``sparsity`` as a float in ``[0, 1)``; a ``ValueError`` naming ``owner`` otherwise."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"{owner}: sparsity must be a float in [0, 1), got {sparsity!r}")
    return float(sparsity)


class Pruner(nn.Module, ABC):
    """A pruning method. :attr:`structured` says whether it removes whole channels (the sparsity is
    then the fraction of prunable parameters removed) or single weights. :attr:`needs_calibration`
    says whether :meth:`prune` reads the calibration inputs (unlabelled samples of the training
    distribution); data-free methods ignore them.

    It is an ``nn.Module`` so that ``paperzoo compare --task pruning`` builds it from a method entry
    like any other component; it holds hyper-parameters, not the model it prunes.
    """

    structured: ClassVar[bool] = False
    needs_calibration: ClassVar[bool] = False

    @abstractmethod
    def prune(self, model: nn.Module, sparsity: float, calibration: torch.Tensor | None = None) -> nn.Module:
        """Return ``model`` pruned to ``sparsity`` in ``[0, 1)`` (in place, or a new smaller module)."""

    def forward(self, *args: object) -> None:  # a Pruner is applied with prune(), never called
        raise TypeError(f"{type(self).__name__} is applied with .prune(model, sparsity, calibration), not called")
