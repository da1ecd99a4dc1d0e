"""CF-k ("catastrophically forgetting the last k layers") and plain fine-tuning, as benchmarked
by Choi & Na (2023), "Towards Machine Unlearning Benchmarks: Forgetting the Personal Identities in
Facial Recognition Systems".

Both fine-tune the original model on the retain set with cross-entropy (benchmark recipe: plain
SGD, lr 1e-3, 2 epochs, batch 64), hoping the forget set is forgotten. CF-k freezes everything
except the last ``k`` layers: for the paper's ResNet-18 (CF-3), ``layer3``, ``layer4`` and ``fc``
(pass ``trainable=("layer3", "layer4", "fc")``); for a generic model, the last ``k`` modules that
own parameters (for an MLP, its last ``k`` Linear layers). ``k=None`` trains everything: the
benchmark's fine-tuning baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from paperzoo._validation import Constraint, Interval
from paperzoo.unlearning.base import UnlearningContext, UnlearningData
from paperzoo.unlearning.neggrad import _RECIPE, SGDRecipe

__all__ = ["CFk", "trainable_parameters"]


def trainable_parameters(model: nn.Module, k: int | None = None, trainable: Sequence[str] | None = None) -> list[str]:
    """Names of the parameters CF-k trains: those under the name prefixes ``trainable`` if given,
    else those of the last ``k`` modules that own parameters (all parameters when ``k`` is None).

    Raises:
        ValueError: ``k`` exceeds the number of such modules, or no parameter matches ``trainable``.
    """
    names = [n for n, _ in model.named_parameters()]
    if trainable is not None:
        prefixes = tuple(trainable)
        chosen = [n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)]
        if not chosen:
            raise ValueError(f"CFk: trainable={list(prefixes)} matches no parameter of the model")
        return chosen
    if k is None:
        return names
    owners = [m for m, mod in model.named_modules() if any(True for _ in mod.parameters(recurse=False))]
    if k > len(owners):
        raise ValueError(f"CFk: k must be at most the {len(owners)} modules with parameters, got {k}")
    last = owners[len(owners) - k :]
    return [n for n in names if n.rpartition(".")[0] in last]


class CFk(SGDRecipe):
    """Fine-tune only the last ``k`` layers (or the ``trainable`` name prefixes) on the retain set.

    Args:
        k: number of last parameter-owning modules left trainable; ``None``: all (fine-tuning).
        trainable: parameter-name prefixes to train instead of ``k`` (e.g. ResNet-18's
            ``("layer3", "layer4", "fc")``).
        lr, epochs, batch_size, momentum: the benchmark recipe (1e-3, 2, 64, 0).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **_RECIPE,
        "k": [None, Interval(int, 1, math.inf, closed="left")],
    }

    def __init__(
        self,
        k: int | None = 2,
        trainable: Sequence[str] | None = None,
        lr: float = 1e-3,
        epochs: int = 2,
        batch_size: int = 64,
        momentum: float = 0.0,
    ) -> None:
        super().__init__(lr, epochs, batch_size, momentum, k=k)
        self.k = k
        self.trainable = tuple(trainable) if trainable is not None else None

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        chosen = set(trainable_parameters(model, self.k, self.trainable))
        params = dict(model.named_parameters())
        flags = {n: p.requires_grad for n, p in params.items()}
        for n, p in params.items():
            p.requires_grad_(n in chosen)
        g = torch.Generator().manual_seed(context.seed)
        opt = self._optimiser([params[n] for n in params if n in chosen])
        model.train()
        try:
            for _ in range(self.epochs):
                for r in self._batches(data.retain_idx, g):
                    loss = F.cross_entropy(model(data.x[r]), data.y[r])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        finally:
            for n, p in params.items():
                p.requires_grad_(flags[n])
        return model

    def extra_repr(self) -> str:
        return f"k={self.k}, trainable={self.trainable}, {super().extra_repr()}"
