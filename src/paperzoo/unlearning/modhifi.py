"""ModHiFi-U (Kashyap et al., NeurIPS 2025): class unlearning by editing the high-fidelity
components of the class to forget (Algorithm 2 of the paper for the negating form).

The components that reconstruct a layer's outputs *on the forget class* are the ones that carry
its prediction: ModHiFi-U computes each selected layer's component similarity matrices on inputs
of the forget class only (centred on the mean of general, all-class inputs), takes the ``k =
ceil(fraction * c_in)`` highest-scoring components of every output channel (its HiFi set) and
zeroes exactly those weights ``W[c, i]`` (a whole kernel for a conv) - or negates them, the
paper's edit for LayerNorm + residual networks. No labels, loss, gradients or fine-tuning.

The scores and CSMs are those of :mod:`paperzoo.pruning.modhifi`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import nn

from paperzoo._validation import Interval, Options, validate_params
from paperzoo.pruning.modhifi import (
    SCORES,
    CalibrationStats,
    hifi_membership,
    layer_scores,
    synthetic_like,
)
from paperzoo.unlearning.base import Unlearner, UnlearningContext, UnlearningData

__all__ = ["ModHiFiUnlearner", "default_unlearning_layers", "modhifi_unlearn"]


def default_unlearning_layers(model: nn.Module) -> list[str]:
    """The last third (rounded up) of the Conv2d / Linear layers after the first one (the layers
    whose inputs are hidden components), by module order."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)][1:]
    if not names:
        raise ValueError("ModHiFiUnlearner: the model has no Conv2d/Linear layer with hidden inputs to edit")
    return names[-math.ceil(len(names) / 3) :]


@torch.no_grad()
def modhifi_unlearn(
    model: nn.Module,
    forget_inputs: torch.Tensor,
    reference_inputs: torch.Tensor | None = None,
    layers: Sequence[str] | None = None,
    fraction: float = 0.1,
    edit: Literal["zero", "negate"] = "zero",
    score: str = "rowsum",
    center: Literal["none", "self", "reference"] = "reference",
    mean: Literal["channel", "map"] = "channel",
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """Edit ``model`` in place: in each of ``layers``, zero (or negate) the weights ``W[c, i]`` of
    the ``ceil(fraction * c_in)`` top-scoring components of every output channel ``c``, scored on
    ``forget_inputs`` (unlabelled samples of the class to forget). ``center="reference"``
    subtracts the mean of ``reference_inputs`` (unlabelled general data). Statistics of all
    layers come from the unedited model. Returns ``{layer name: bool (c_out, c_in) edited mask}``.
    """
    validate_params(
        {
            "fraction": [Interval(float, 0, 1, closed="right")],
            "edit": [Options(("zero", "negate"))],
            "score": [Options(tuple(SCORES))],
            "center": [Options(("none", "self", "reference"))],
            "mean": [Options(("channel", "map"))],
        },
        {"fraction": fraction, "edit": edit, "score": score, "center": center, "mean": mean},
        owner="ModHiFiUnlearner",
    )
    if center == "reference" and reference_inputs is None:
        raise ValueError("ModHiFiUnlearner: center='reference' needs reference_inputs (general, all-class data)")
    names = list(layers) if layers is not None else default_unlearning_layers(model)
    modules = {name: model.get_submodule(name) for name in names}
    stats = CalibrationStats.collect(model, forget_inputs, modules, batch_size)
    ref = (
        CalibrationStats.collect(model, reference_inputs, modules, batch_size)
        if center == "reference" and reference_inputs is not None
        else None
    )
    masks: dict[str, torch.Tensor] = {}
    for name, layer in modules.items():
        scores = layer_scores(layer, stats[name], score, center=center, mean=mean, ref_stats=ref[name] if ref else None)
        mask = hifi_membership(scores, keep_fraction=fraction)
        w = layer.weight
        sel = mask.reshape(*mask.shape, *([1] * (w.ndim - 2))).expand(w.shape)
        if edit == "zero":
            w.masked_fill_(sel, 0.0)
        else:
            w.copy_(torch.where(sel, -w, w))
        masks[name] = mask
    return masks


class ModHiFiUnlearner(Unlearner):
    """ModHiFi-U as an :class:`~paperzoo.unlearning.base.Unlearner`.

    What it reads: the *inputs* of the forget set (``data.x_forget``, the samples of the class to
    forget: the paper's synthetic forget-class samples) and, for ``center="reference"``, the
    inputs of the whole original training set (``data.x_train``, forget + retain, as unlabelled
    general data; at most ``max_reference`` of them, drawn with the context's seed). With
    ``calibration="gmm"`` it replaces both by samples of diagonal Gaussian mixtures fitted to those
    inputs (:func:`~paperzoo.pruning.modhifi.synthetic_like`), the paper's "distributional access".
    It never reads labels (``data.y``) of any split, nor the oracle, nor trains.

    Args:
        fraction: ``p``, the fraction of components edited per output channel (``k = ceil(p c_in)``).
        layers: names of the Conv2d / Linear layers to edit (default: the last third of those
            after the first layer).
        edit: ``"zero"`` (BatchNorm networks) or ``"negate"`` (LayerNorm + residual networks).
        score: ``"rowsum"`` (default), ``"fidelity"``, ``"alpha"`` or ``"cholesky_rownorm"``.
        center: ``"reference"`` (default), ``"self"`` or ``"none"``.
        mean: ``"channel"`` or ``"map"``.
        max_reference: cap on the reference inputs.
        calibration: ``"data"`` (the inputs themselves) or ``"gmm"`` (synthetic samples).
        n_synthetic: with ``"gmm"``, samples drawn for the forget set (five times as many for the
            reference).
    """

    uses_labels: ClassVar[bool] = False
    needs_oracle: ClassVar[bool] = False

    def __init__(
        self,
        fraction: float = 0.1,
        layers: Sequence[str] | None = None,
        edit: Literal["zero", "negate"] = "zero",
        score: str = "rowsum",
        center: Literal["none", "self", "reference"] = "reference",
        mean: Literal["channel", "map"] = "channel",
        max_reference: int = 2000,
        calibration: Literal["data", "gmm"] = "data",
        n_synthetic: int = 200,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        validate_params(
            {
                "fraction": [Interval(float, 0, 1, closed="right")],
                "edit": [Options(("zero", "negate"))],
                "score": [Options(tuple(SCORES))],
                "center": [Options(("none", "self", "reference"))],
                "mean": [Options(("channel", "map"))],
                "max_reference": [Interval(int, 1, math.inf, closed="left")],
                "calibration": [Options(("data", "gmm"))],
                "n_synthetic": [Interval(int, 1, math.inf, closed="left")],
                "batch_size": [Interval(int, 1, math.inf, closed="left")],
            },
            {
                "fraction": fraction,
                "edit": edit,
                "score": score,
                "center": center,
                "mean": mean,
                "max_reference": max_reference,
                "calibration": calibration,
                "n_synthetic": n_synthetic,
                "batch_size": batch_size,
            },
            owner="ModHiFiUnlearner",
        )
        self.fraction, self.layers, self.edit, self.score = (
            fraction,
            None if layers is None else tuple(layers),
            edit,
            score,
        )
        self.center, self.mean, self.max_reference, self.batch_size = center, mean, max_reference, batch_size
        self.calibration, self.n_synthetic = calibration, n_synthetic
        self.last_masks: dict[str, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}, layers={self.layers}, edit={self.edit!r}, score={self.score!r}, center={self.center!r}"

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        model = copy.deepcopy(model)
        seed = int(context.seed)
        x_forget, x_ref = data.x[data.forget_idx], None
        if self.center == "reference":
            x_ref = data.x[data.train_idx]
            if len(x_ref) > self.max_reference:
                gen = torch.Generator().manual_seed(seed)
                x_ref = x_ref[torch.randperm(len(x_ref), generator=gen)[: self.max_reference]]
        if self.calibration == "gmm":
            lo, hi = float(data.x.min()), float(data.x.max())
            x_forget = synthetic_like(x_forget, self.n_synthetic, seed=seed, clip=(lo, hi))
            if x_ref is not None:
                x_ref = synthetic_like(x_ref, 5 * self.n_synthetic, seed=seed + 1, clip=(lo, hi))
        self.last_masks = modhifi_unlearn(
            model,
            x_forget,
            x_ref,
            self.layers,
            self.fraction,
            self.edit,
            self.score,
            self.center,
            self.mean,
            self.batch_size,
        )
        return model
