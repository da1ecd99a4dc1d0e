"""Structured (channel) magnitude pruning through torch-pruning: the channel-level analogue of
Global MP, offered as an extra (Gupta et al., 2022, prune single weights, not channels).

Thin wrapper over ``torch_pruning.pruner.MagnitudePruner`` with ``MagnitudeImportance(p=1)``:
with ``global_pruning=True`` every channel of the network is ranked in one pool by the L1 norm of
its (dependency-grouped) weights, the channel counterpart of Global MP's single ranking, and
``max_pruning_ratio`` caps the fraction removed from any one layer, the counterpart of the
Minimum Threshold. torch-pruning's dependency graph keeps coupled layers consistent (residual
additions, normalisation layers) and physically removes the channels, so the returned model is
smaller and faster with dense kernels.

``sparsity`` here is the fraction of *prunable weights* (conv/linear ``weight`` entries) removed,
as :class:`~paperzoo.pruning.base.Pruner` defines it for structured methods: torch-pruning's
``pruning_ratio`` (a fraction of channels) is searched (a coarse scan, then bisection inside the
first step that removes enough) for the smallest ratio removing at least ``sparsity`` of the
weights; if the per-layer cap makes that impossible, the most the cap allows is returned.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from paperzoo.pruning.base import Pruner, check_sparsity

__all__ = ["ChannelMagnitudePruner"]


def _prunable_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))


def _output_layers(model: nn.Module) -> list[nn.Module]:
    """The last conv/linear layer in module order: its outputs are the classes, never pruned."""
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return layers[-1:]


class ChannelMagnitudePruner(Pruner):
    """Global L1 channel pruning (torch-pruning), the model returned smaller.

    Args:
        global_pruning: rank channels of all layers together (True) or prune every layer by the
            same ratio (False).
        max_pruning_ratio: at most this fraction of any layer's channels is removed.
        ignored_layers: qualified module names never pruned (the last conv/linear layer is always
            kept whole).
        tolerance: bisection stops when the kept fraction of weights is within this of the target.

    Needs one calibration input (only its shape is read) to trace the dependency graph.
    """

    structured = True
    needs_calibration = True

    def __init__(
        self,
        global_pruning: bool = True,
        max_pruning_ratio: float = 0.95,
        ignored_layers: Sequence[str] = (),
        tolerance: float = 0.005,
    ) -> None:
        super().__init__()
        if not isinstance(global_pruning, bool):
            raise ValueError(f"ChannelMagnitudePruner: global_pruning must be a bool, got {global_pruning!r}")
        if isinstance(max_pruning_ratio, bool) or not isinstance(max_pruning_ratio, int | float):
            raise ValueError(
                f"ChannelMagnitudePruner: max_pruning_ratio must be a float in (0, 1], got {max_pruning_ratio!r}"
            )
        if not 0.0 < float(max_pruning_ratio) <= 1.0:
            raise ValueError(
                f"ChannelMagnitudePruner: max_pruning_ratio must be a float in (0, 1], got {max_pruning_ratio!r}"
            )
        self.global_pruning = global_pruning
        self.max_pruning_ratio = float(max_pruning_ratio)
        self.ignored_layers = tuple(ignored_layers)
        self.tolerance = float(tolerance)

    def _prune_at(self, model: nn.Module, ratio: float, example: torch.Tensor) -> nn.Module:
        import torch_pruning as tp

        out = copy.deepcopy(model)
        names = dict(out.named_modules())
        ignored = _output_layers(out) + [names[n] for n in self.ignored_layers if n in names]
        pruner = tp.pruner.MagnitudePruner(
            out,
            example,
            importance=tp.importance.MagnitudeImportance(p=1),
            global_pruning=self.global_pruning,
            pruning_ratio=ratio,
            max_pruning_ratio=self.max_pruning_ratio,
            ignored_layers=ignored,
        )
        pruner.step()
        return out

    def prune(self, model: nn.Module, sparsity: float, calibration: torch.Tensor | None = None) -> nn.Module:
        """A new, smaller model keeping about ``1 - sparsity`` of ``model``'s prunable weights."""
        s = check_sparsity(sparsity, type(self).__name__)
        if (
            calibration is None
            or not isinstance(calibration, torch.Tensor)
            or calibration.ndim < 1
            or not len(calibration)
        ):
            raise ValueError(
                "ChannelMagnitudePruner: calibration must hold at least one input (its shape traces the graph)"
            )
        if s == 0.0:
            return copy.deepcopy(model)
        example = calibration[:1]
        was_training = model.training
        model.eval()
        total = _prunable_count(model)

        def removed(ratio: float) -> tuple[float, nn.Module]:
            cand = self._prune_at(model, ratio, example)
            return 1 - _prunable_count(cand) / total, cand

        # torch-pruning's global ranking is not monotone in the ratio once layers hit the cap: scan a
        # coarse grid for the first ratio that removes enough, then bisect inside that step
        grid = [self.max_pruning_ratio * (i + 1) / 12 for i in range(12)]
        lo, best, best_removed = 0.0, None, -1.0
        for r in grid:
            frac, cand = removed(r)
            if frac >= s:
                hi, best, best_removed = r, cand, frac
                break
            if frac > best_removed:
                best, best_removed = cand, frac
            lo = r
        else:  # no ratio reaches the target: the most the cap allows
            model.train(was_training)
            assert best is not None
            return best.train(was_training)
        for _ in range(12):
            if best_removed - s <= self.tolerance:
                break
            mid = (lo + hi) / 2
            frac, cand = removed(mid)
            if frac >= s:
                hi, best, best_removed = mid, cand, frac
            else:
                lo = mid
        model.train(was_training)
        return best.train(was_training)
