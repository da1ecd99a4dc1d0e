"""Pruning: methods that remove weights or channels from a trained model, and the one protocol
that measures what that buys (sparsity -> accuracy, parameters, MACs and CPU latency).

* :mod:`paperzoo.pruning.base`: :class:`Pruner` (``prune(model, sparsity, calibration)``), the
  interface every method shares, and :func:`check_sparsity`.
* :mod:`paperzoo.pruning.magnitude`: Global MP with the Minimum Threshold (paper 22), uniform
  layer-wise magnitude and random pruning, the gradual cubic schedule, masked fine-tuning.
* :mod:`paperzoo.pruning.report`: :func:`sparsity_report` (per-layer n / nnz / density, dense and
  sparse MACs), :func:`collapsed_layers`, :func:`cpu_latency` and :func:`latency_comparison`.
* :mod:`paperzoo.pruning.structured`: :class:`ChannelMagnitudePruner`, global L1 channel pruning
  through torch-pruning (the model returned smaller).
* :mod:`paperzoo.pruning.curves`: :func:`sparsity_curve`, any :class:`Pruner` on any model over a
  grid of sparsities.

Other methods live in their own modules and are imported by their path (e.g.
``paperzoo.pruning.modhifi``). ``paperzoo compare --task pruning`` runs any Pruner against the
built-in baselines.
"""

from paperzoo.pruning.base import Pruner, check_sparsity
from paperzoo.pruning.curves import CurvePoint, sparsity_curve
from paperzoo.pruning.magnitude import (
    GlobalMagnitudePruner,
    GradualGlobalPruner,
    RandomPruner,
    UniformMagnitudePruner,
    apply_masks,
    cubic_sparsity,
    effective_weight,
    global_magnitude_masks,
    masked_finetune,
    minimum_threshold_allocation,
    prunable_parameters,
    random_pruning,
    remove_masks,
    uniform_magnitude_pruning,
)
from paperzoo.pruning.report import (
    SparseLinear,
    collapsed_layers,
    cpu_latency,
    deployable,
    latency_comparison,
    sparsity_report,
)
from paperzoo.pruning.structured import ChannelMagnitudePruner

__all__ = [
    "ChannelMagnitudePruner",
    "CurvePoint",
    "GlobalMagnitudePruner",
    "GradualGlobalPruner",
    "Pruner",
    "RandomPruner",
    "SparseLinear",
    "UniformMagnitudePruner",
    "apply_masks",
    "check_sparsity",
    "collapsed_layers",
    "cpu_latency",
    "cubic_sparsity",
    "deployable",
    "effective_weight",
    "global_magnitude_masks",
    "latency_comparison",
    "masked_finetune",
    "minimum_threshold_allocation",
    "prunable_parameters",
    "random_pruning",
    "remove_masks",
    "sparsity_curve",
    "sparsity_report",
    "uniform_magnitude_pruning",
]
