"""What a pruned model costs: per-layer weight counts and densities, parameter counts, dense
and sparse multiply-accumulates (MACs), collapsed layers, and measured CPU inference time.

MACs follow the paper's FLOPs accounting (Gupta et al., 2022, *Is Complexity Required for Neural
Network Pruning?*): per image, a convolution costs ``nnz(W) * H_out * W_out`` and a linear layer
``nnz(W)`` (times the number of tokens it is applied to); the dense figure uses ``numel(W)``.
Output sizes are recorded by forward hooks on one pass of ``example_input``.

Unstructured zeros do not make dense kernels faster: :func:`deployable` turns a pruned model into
what one would ship (masks made permanent, linear layers below a density threshold as CSR sparse
matrices), and :func:`cpu_latency` / :func:`latency_comparison` time the dense and the deployed
model on this CPU, so the speed-up is measured, not assumed.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from paperzoo.pruning.magnitude import LAYER_TYPES, effective_weight, remove_masks

__all__ = [
    "SparseLinear",
    "collapsed_layers",
    "cpu_latency",
    "deployable",
    "latency_comparison",
    "sparsity_report",
]


def _weight_of(module: nn.Module) -> torch.Tensor:
    if isinstance(module, SparseLinear):
        return module.weight_csr
    return effective_weight(module)


def _nnz(w: torch.Tensor) -> int:
    if w.layout == torch.sparse_csr:
        return int((w.values() != 0).sum())
    return int(torch.count_nonzero(w))


@torch.no_grad()
def sparsity_report(
    model: nn.Module,
    example_input: torch.Tensor,
    layer_types: Sequence[type[nn.Module]] = LAYER_TYPES,
) -> dict[str, Any]:
    """Per-layer ``n`` / ``nnz`` / ``density`` / dense and sparse MACs per sample, and totals.

    Returns a dict with ``layers`` (a list of dicts: ``name``, ``type``, ``n``, ``nnz``, ``density``,
    ``dense_macs``, ``sparse_macs``), ``prunable`` (N), ``nonzero`` (nnz over prunable weights),
    ``sparsity`` (1 - nonzero / N), ``parameters`` (every parameter of the model, pruned entries
    included) and ``nonzero_parameters`` (every parameter minus the pruned zeros),
    ``dense_macs`` / ``sparse_macs`` (prunable layers, per sample) and ``mac_reduction``
    (dense / sparse).
    """
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 1 or example_input.shape[0] < 1:
        raise ValueError("sparsity_report: example_input must be a tensor with a batch dimension of at least 1")
    types = (*tuple(layer_types), SparseLinear)
    positions: dict[str, float] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, types):

            def hook(mod: nn.Module, inp: Any, out: torch.Tensor, name: str = name) -> None:
                channels = out.shape[1] if isinstance(mod, nn.Conv2d) else out.shape[-1]
                positions[name] = out.numel() / (out.shape[0] * channels)  # H_out * W_out, or tokens

            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    layers = []
    for name, module in model.named_modules():
        if not isinstance(module, types) or name not in positions:
            continue
        w = _weight_of(module)
        n, nnz = w.numel(), _nnz(w)
        per_sample = positions[name]  # H_out * W_out for a convolution, tokens per sample for a linear layer
        layers.append(
            {
                "name": name,
                "type": type(module).__name__,
                "n": n,
                "nnz": nnz,
                "density": nnz / n if n else 1.0,
                "dense_macs": int(round(n * per_sample)),
                "sparse_macs": int(round(nnz * per_sample)),
            }
        )
    N = sum(r["n"] for r in layers)
    nz = sum(r["nnz"] for r in layers)
    dense = sum(r["dense_macs"] for r in layers)
    sparse = sum(r["sparse_macs"] for r in layers)
    params = 0
    pruned_zeros = 0
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            params += p.numel()
            mask = getattr(module, pname.removesuffix("_orig") + "_mask", None) if pname.endswith("_orig") else None
            if mask is not None:
                pruned_zeros += int((mask == 0).sum())
        if isinstance(module, SparseLinear):
            params += module.weight_csr.numel()
            pruned_zeros += module.weight_csr.numel() - _nnz(module.weight_csr)
    return {
        "layers": layers,
        "prunable": N,
        "nonzero": nz,
        "sparsity": 1.0 - nz / N if N else 0.0,
        "parameters": params,
        "nonzero_parameters": params - pruned_zeros,
        "dense_macs": dense,
        "sparse_macs": sparse,
        "mac_reduction": dense / sparse if sparse else float("inf"),
    }


def collapsed_layers(
    model: nn.Module,
    min_count: int = 1,
    min_density: float | None = None,
    layer_types: Sequence[type[nn.Module]] = LAYER_TYPES,
) -> list[str]:
    """Names of the prunable layers that keep fewer than ``min_count`` non-zero weights or,
    with ``min_density``, a density below it: the paper's layer collapse (a layer that has
    lost (almost) all its weights cuts the signal path)."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, (*tuple(layer_types), SparseLinear)):
            w = _weight_of(module)
            nnz = _nnz(w)
            if nnz < min_count or (min_density is not None and nnz / w.numel() < min_density):
                out.append(name)
    return out


class SparseLinear(nn.Module):
    """A linear layer whose weight is a CSR sparse matrix (``y = x W^T + b`` through
    ``torch.sparse.mm``): what an unstructured-pruned linear layer becomes at deployment."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = effective_weight(linear).detach()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            self.weight_csr = w.to_sparse_csr()
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        y = torch.sparse.mm(self.weight_csr, x2.T).T
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)


def deployable(model: nn.Module, sparse_below: float | None = 0.3) -> nn.Module:
    """A copy of ``model`` as one would ship it: masks made permanent (no hooks) and every
    ``nn.Linear`` whose density is below ``sparse_below`` replaced by a :class:`SparseLinear`
    (``None``: keep all dense). Convolutions stay dense (PyTorch has no fast sparse CPU conv)."""
    out = remove_masks(copy.deepcopy(model))
    if sparse_below is None:
        return out.eval()
    for parent in list(out.modules()):
        for cname, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                w = child.weight
                if _nnz(w) / w.numel() < sparse_below:
                    setattr(parent, cname, SparseLinear(child))
    return out.eval()


@torch.no_grad()
def cpu_latency(
    model: nn.Module, example_input: torch.Tensor, warmup: int = 3, repeats: int = 20, threads: int | None = 1
) -> float:
    """Seconds of one forward pass of ``model`` on ``example_input`` on the CPU: the fastest of
    ``repeats`` timed passes after ``warmup`` (the one least disturbed by other processes, as
    ``timeit`` advises), in eval mode on ``threads`` intra-op threads (``None``: the current setting)."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"cpu_latency: warmup must be >= 0 and repeats >= 1, got {warmup} and {repeats}")
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    try:
        for _ in range(warmup):
            model(example_input)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(example_input)
            times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
        torch.set_num_threads(old)
    return min(times)


def latency_comparison(
    dense: nn.Module,
    pruned: nn.Module,
    example_input: torch.Tensor,
    warmup: int = 3,
    repeats: int = 20,
    sparse_below: float | None = 0.3,
) -> dict[str, float]:
    """CPU seconds of ``dense`` and of ``deployable(pruned)`` (:func:`cpu_latency`, three
    interleaved rounds so a busy machine disturbs both alike; the fastest round of each), and the
    speed-up ``dense / pruned``."""
    shipped = deployable(pruned, sparse_below)
    base = deployable(dense, None)
    d_times, p_times = [], []
    for _ in range(3):
        d_times.append(cpu_latency(base, example_input, warmup, max(1, repeats // 3)))
        p_times.append(cpu_latency(shipped, example_input, warmup, max(1, repeats // 3)))
    d, p = min(d_times), min(p_times)
    return {"dense_s": d, "pruned_s": p, "speedup": d / p if p > 0 else float("inf")}
