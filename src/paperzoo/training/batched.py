"""Many independent small MLPs trained at once: a generic batched trainer.

Datamodels (train hundreds to thousands of models on random subsets of the training set) and
distributional evaluations such as KLoM (N original models, N retrained oracles) need many
independent trainings of the same small network. Trained one after the other, each tiny model
leaves the CPU mostly idle on Python and kernel-launch overhead. :class:`BatchedMLP` stacks the
parameters of ``K`` MLPs along a leading model axis and runs all of them in one batched matmul
per layer (``einsum`` when the models share their inputs, ``baddbmm`` otherwise); the loss is
the *sum* of the per-model losses, so each model's gradient is exactly its own, and Adam/SGD
(element-wise updates) then update every model exactly as if it were trained alone. Training
on a subset is training with 0/1 per-example weights (:func:`weighted_cross_entropy`), so
subset models with different subsets share one full-batch forward pass.

Nothing here is specific to one paper; the datamodels of paper 45 (Attribute-to-Delete,
:mod:`paperzoo.unlearning.datamodels`) are its first user.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, check_labels, validate_params
from paperzoo.models import MLP

__all__ = ["BatchedMLP", "fit_batched", "train_subset_models", "weighted_cross_entropy"]


class BatchedMLP(nn.Module):
    """``num_models`` independent MLPs ``in_dim -> hidden... -> out_dim`` (ReLU between layers),
    the same architecture as :class:`paperzoo.models.MLP`, with parameters stacked on a leading
    model axis: ``weights[l]`` is ``(K, d_in, d_out)``, ``biases[l]`` is ``(K, d_out)``.

    Model ``k`` is initialised exactly like ``MLP(in_dim, hidden, out_dim)`` built after
    ``torch.manual_seed(seeds[k])`` (the global RNG state is left untouched), so a batched run
    and a loop of independent models start from the same weights.

    ``forward(x)``: ``x`` (B, ...) shared by all models, or (K, B, ...) one batch per model;
    returns logits (K, B, out_dim).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, seeds: Sequence[int]) -> None:
        super().__init__()
        validate_params(
            {
                "in_dim": [Interval(int, 1, math.inf, closed="left")],
                "out_dim": [Interval(int, 1, math.inf, closed="left")],
            },
            {"in_dim": in_dim, "out_dim": out_dim},
            owner="BatchedMLP",
        )
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("BatchedMLP: seeds must name at least one model")
        self.in_dim, self.hidden, self.out_dim = in_dim, tuple(int(h) for h in hidden), out_dim
        modules = []
        with torch.random.fork_rng(devices=[]):
            for s in seeds:
                torch.manual_seed(s)
                modules.append(MLP(in_dim, self.hidden, out_dim))
        self._load_modules(modules)

    @classmethod
    def from_modules(cls, modules: Sequence[MLP]) -> BatchedMLP:
        """Stack existing (dropout-free) :class:`paperzoo.models.MLP` models of one architecture."""
        if not modules:
            raise ValueError("BatchedMLP.from_modules: modules is empty")
        first = modules[0]
        dims = [m.in_features for m in first.net if isinstance(m, nn.Linear)]
        out = cls.__new__(cls)
        nn.Module.__init__(out)
        out.in_dim, out.hidden, out.out_dim = first.in_dim, tuple(dims[1:]), first.out_dim
        out._load_modules(list(modules))
        return out

    def _load_modules(self, modules: Sequence[MLP]) -> None:
        linears = [[m for m in mod.net if isinstance(m, nn.Linear)] for mod in modules]
        if any(len(ls) != len(linears[0]) for ls in linears) or any(
            any(not isinstance(m, (nn.Linear, nn.ReLU)) for m in mod.net) for mod in modules
        ):
            raise ValueError("BatchedMLP: every module must be a dropout-free MLP of the same architecture")
        self.weights = nn.ParameterList(
            [
                nn.Parameter(torch.stack([ls[i].weight.detach().T for ls in linears]).contiguous())
                for i in range(len(linears[0]))
            ]
        )
        self.biases = nn.ParameterList(
            [
                nn.Parameter(torch.stack([ls[i].bias.detach() for ls in linears]).contiguous())
                for i in range(len(linears[0]))
            ]
        )

    @property
    def num_models(self) -> int:
        return int(self.weights[0].shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.num_models
        shared = x.ndim >= 2 and not (x.ndim >= 3 and x.shape[0] == k and math.prod(x.shape[2:]) == self.in_dim)
        if shared:
            h = x.reshape(x.shape[0], -1)
            if h.shape[1] != self.in_dim:
                raise ValueError(f"BatchedMLP expects {self.in_dim} input features, got {h.shape[1]}")
            # one (B, d) x (d, K*h) matmul for the first layer
            w0 = self.weights[0]
            h = (h @ w0.permute(1, 0, 2).reshape(self.in_dim, -1)).reshape(h.shape[0], k, -1).transpose(0, 1)
            h = h + self.biases[0][:, None, :]
        else:
            h = x.reshape(k, x.shape[1], -1)
            h = torch.baddbmm(self.biases[0][:, None, :], h, self.weights[0])
        for w, b in zip(self.weights[1:], self.biases[1:]):
            h = torch.baddbmm(b[:, None, :], torch.relu(h), w)
        return h

    def module(self, k: int) -> MLP:
        """Model ``k`` as a stand-alone :class:`paperzoo.models.MLP` (a copy)."""
        if not 0 <= k < self.num_models:
            raise IndexError(f"BatchedMLP: model index {k} outside [0, {self.num_models})")
        mlp = MLP(self.in_dim, self.hidden, self.out_dim)
        linears = [m for m in mlp.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, self.weights, self.biases):
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k])
        return mlp

    def select(self, index: Sequence[int] | torch.Tensor) -> BatchedMLP:
        """A new :class:`BatchedMLP` holding copies of the models ``index``."""
        idx = torch.as_tensor(index, dtype=torch.long)
        out = BatchedMLP.__new__(BatchedMLP)
        nn.Module.__init__(out)
        out.in_dim, out.hidden, out.out_dim = self.in_dim, self.hidden, self.out_dim
        out.weights = nn.ParameterList([nn.Parameter(w.detach()[idx].clone()) for w in self.weights])
        out.biases = nn.ParameterList([nn.Parameter(b.detach()[idx].clone()) for b in self.biases])
        return out


def weighted_cross_entropy(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-model weighted mean cross-entropy: logits (K, B, C), labels (B,), weights (K, B) >= 0
    (e.g. 0/1 subset masks) or None (plain mean). Returns (K,). A model whose weights are all
    zero gets loss 0."""
    k, b, c = logits.shape
    # log-sum-exp written out: ~4x faster than F.cross_entropy on CPU for few classes and K*B rows
    top = logits.detach().amax(-1, keepdim=True)
    lse = (logits - top).exp().sum(-1).log() + top.squeeze(-1)
    ce = lse - logits.gather(2, y.reshape(1, b, 1).expand(k, b, 1)).squeeze(2)
    if weights is None:
        return ce.mean(1)
    if weights.shape != (k, b):
        raise ValueError(f"weighted_cross_entropy: weights must be ({k}, {b}), got {tuple(weights.shape)}")
    return (ce * weights).sum(1) / weights.sum(1).clamp_min(1e-12)


def fit_batched(
    model: nn.Module,
    loss_fn: Callable[[nn.Module], torch.Tensor],
    steps: int,
    lr: float,
    optimizer: str = "adam",
    record: bool = False,
) -> torch.Tensor | None:
    """``steps`` optimiser steps on ``loss_fn(model).sum()``, where ``loss_fn`` returns one loss
    per model (K,). Summing keeps each model's gradient its own; Adam and SGD update element-wise,
    so model ``k`` follows the trajectory it would follow alone. Returns the per-step losses
    (steps, K) when ``record`` is set."""
    validate_params(
        {
            "steps": [Interval(int, 0, math.inf, closed="left")],
            "lr": [Interval(float, 0, math.inf, closed="neither")],
            "optimizer": [Options(("adam", "sgd"))],
        },
        {"steps": steps, "lr": lr, "optimizer": optimizer},
        owner="fit_batched",
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        losses = loss_fn(model)
        if record:
            history.append(losses.detach().clone())
        losses.sum().backward()
        opt.step()
    return torch.stack(history) if record and history else None


def train_subset_models(
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | np.ndarray,
    hidden: Sequence[int],
    num_classes: int,
    seeds: Sequence[int],
    steps: int = 100,
    lr: float = 2e-2,
    chunk: int = 256,
    eval_x: torch.Tensor | None = None,
) -> torch.Tensor:
    """Train one MLP per row of ``masks`` (M, n) on the examples the row selects (full-batch Adam,
    ``steps`` steps, cross-entropy averaged over the selected examples), ``chunk`` models at a
    time, and return their logits on ``eval_x`` (default ``x``): (M, n_eval, num_classes).

    Model ``m`` is initialised from ``seeds[m]`` (see :class:`BatchedMLP`), so the result does not
    depend on ``chunk``.
    """
    masks_t = torch.as_tensor(np.asarray(masks), dtype=x.dtype)
    n = x.shape[0]
    if masks_t.ndim != 2 or masks_t.shape[1] != n:
        raise ValueError(f"train_subset_models: masks must be (M, {n}), got {tuple(masks_t.shape)}")
    if len(seeds) != masks_t.shape[0]:
        raise ValueError(f"train_subset_models: {masks_t.shape[0]} masks but {len(seeds)} seeds")
    if bool((masks_t.sum(1) == 0).any()):
        raise ValueError("train_subset_models: a mask selects no example")
    check_finite(x, "x")
    check_labels(y, n, "y", num_classes)
    ev = x if eval_x is None else eval_x
    outs = []
    for lo in range(0, masks_t.shape[0], chunk):
        sl = slice(lo, lo + chunk)
        model = BatchedMLP(x[0].numel(), hidden, num_classes, seeds[sl]).to(x.dtype)
        w = masks_t[sl]
        fit_batched(model, lambda m, w=w: weighted_cross_entropy(m(x), y, w), steps, lr)
        with torch.no_grad():
            outs.append(model(ev))
    return torch.cat(outs)
