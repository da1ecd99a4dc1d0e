"""Model soup: the parameter average of several fine-tuned checkpoints, KaLM-Embedding-V2's last
training step (Zhao et al., 2025, arXiv:2506.20923). Which checkpoints the paper averages, and
with which weights, is not given; the default is the uniform soup of Wortsman et al. (2022).

A thin utility: floating-point entries of the state dicts are averaged (optionally weighted),
integer and boolean buffers (e.g. ``position_ids``, batch-norm counters) are copied from the first
checkpoint. For sentence-transformers models, ``SentenceTransformer.merge(models, method="linear")``
does the same through the optional ``mergekit`` package; :func:`uniform_soup` needs nothing beyond
torch and returns a state dict to ``load_state_dict`` into any model of the same architecture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["uniform_soup"]


def uniform_soup(
    models: Sequence[nn.Module | Mapping[str, Tensor]], weights: Sequence[float] | None = None
) -> dict[str, Tensor]:
    """The (weighted) average of the models' state dicts.

    Args:
        models: modules or state dicts with the same keys and shapes.
        weights: one non-negative weight per model, normalised to sum 1 (default: uniform).

    Returns:
        a new state dict (tensors detached, on the first model's devices and dtypes).
    """
    states = [m.state_dict() if isinstance(m, nn.Module) else dict(m) for m in models]
    if not states:
        raise ValueError("models is empty: a soup needs at least one model")
    w = [1.0] * len(states) if weights is None else [float(x) for x in weights]
    if len(w) != len(states) or any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(
            f"weights must be {len(states)} finite non-negative numbers with a positive sum, got {weights}"
        )
    total = sum(w)
    w = [x / total for x in w]
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys:
            missing = set(keys) ^ set(s)
            raise ValueError(f"models[{i}] has other state-dict keys than models[0]: {sorted(missing)[:5]}")
    out: dict[str, Tensor] = {}
    for k in keys:
        first = states[0][k]
        for i, s in enumerate(states[1:], 1):
            if s[k].shape != first.shape:
                raise ValueError(f"models[{i}][{k!r}] has shape {tuple(s[k].shape)}, models[0] {tuple(first.shape)}")
        if first.is_floating_point() or first.is_complex():
            acc = torch.zeros_like(first, dtype=torch.complex128 if first.is_complex() else torch.float64)
            for wi, s in zip(w, states):
                acc += wi * s[k].detach().to(device=first.device, dtype=acc.dtype)
            out[k] = acc.to(first.dtype)
        else:
            out[k] = first.detach().clone()
    return out
