"""Sparsity -> accuracy curves for any :class:`~paperzoo.pruning.base.Pruner` on any model:
for each sparsity of a grid, a copy of the trained model is pruned (and optionally fine-tuned
with its masks kept), evaluated, and measured: parameters, MACs (the FLOPs accounting of Gupta
et al., 2022) and CPU inference time of the dense model against the deployed pruned one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from paperzoo.pruning.base import Pruner, check_sparsity
from paperzoo.pruning.report import latency_comparison, sparsity_report

__all__ = ["CurvePoint", "accuracy_of", "sparsity_curve"]


@dataclass(frozen=True)
class CurvePoint:
    """One sparsity of a curve. ``mac_reduction`` and ``speedup`` are against the dense model
    (reference MACs over the pruned model's sparse MACs; dense over deployed-pruned CPU time,
    ``nan`` when latency was not measured)."""

    sparsity: float
    accuracy: float
    achieved_sparsity: float
    parameters: int
    nonzero_parameters: int
    dense_macs: int
    sparse_macs: int
    mac_reduction: float
    latency_dense_s: float
    latency_pruned_s: float
    speedup: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@torch.no_grad()
def accuracy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in evaluation mode."""
    model.eval()
    pred = torch.cat([model(x[i : i + chunk]).argmax(dim=1) for i in range(0, len(x), chunk)])
    return float((pred == y).float().mean())


def sparsity_curve(
    model: nn.Module,
    pruner: Pruner,
    sparsities: Sequence[float],
    evaluate: Callable[[nn.Module], float] | tuple[torch.Tensor, torch.Tensor],
    example_input: torch.Tensor,
    *,
    finetune: Callable[[nn.Module], None] | None = None,
    calibration: torch.Tensor | None = None,
    latency: bool | Sequence[float] = True,
    latency_input: torch.Tensor | None = None,
    warmup: int = 2,
    repeats: int = 9,
) -> list[CurvePoint]:
    """Prune a copy of ``model`` at each of ``sparsities`` with ``pruner`` and measure it.

    Args:
        model: the trained dense model (left untouched).
        pruner: any Pruner; ``calibration`` is passed to it (data-free ones ignore it).
        sparsities: the grid, each in ``[0, 1)``.
        evaluate: ``f(model) -> score`` or ``(x, y)`` for top-1 accuracy.
        example_input: one batch for the MAC count (per sample).
        finetune: ``f(model)`` run on each pruned copy (e.g. a few epochs of
            :func:`~paperzoo.pruning.magnitude.masked_finetune`); the masks stay in place.
        latency: time the dense model against the deployed pruned copy on the CPU
            (``latency_input``, default ``example_input``): at every sparsity (True), none
            (False), or at the sparsities listed.
    """
    grid = [check_sparsity(s, "sparsity_curve") for s in sparsities]
    score = evaluate if callable(evaluate) else (lambda m: accuracy_of(m, *evaluate))  # type: ignore[misc]
    dense_report = sparsity_report(model, example_input)
    timing_input = example_input if latency_input is None else latency_input
    points = []
    for s in grid:
        pruned = pruner.prune(copy.deepcopy(model), s, calibration)
        if finetune is not None:
            finetune(pruned)
        rep = sparsity_report(pruned, example_input)
        if latency is True or (not isinstance(latency, bool) and s in tuple(latency)):
            lat = latency_comparison(model, pruned, timing_input, warmup=warmup, repeats=repeats)
        else:
            lat = {"dense_s": float("nan"), "pruned_s": float("nan"), "speedup": float("nan")}
        points.append(
            CurvePoint(
                sparsity=s,
                accuracy=float(score(pruned)),
                achieved_sparsity=1.0 - rep["nonzero"] / dense_report["prunable"],
                parameters=rep["parameters"],
                nonzero_parameters=rep["nonzero_parameters"],
                dense_macs=dense_report["dense_macs"],
                sparse_macs=rep["sparse_macs"],
                mac_reduction=dense_report["dense_macs"] / max(1, rep["sparse_macs"]),
                latency_dense_s=lat["dense_s"],
                latency_pruned_s=lat["pruned_s"],
                speedup=lat["speedup"],
            )
        )
    return points
