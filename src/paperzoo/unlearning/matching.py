"""Oracle Matching, Datamodel Matching and DM-direct of Attribute-to-Delete (paper 45: Georgiev,
Rinberg, Park, Garg, Ilyas, Madry, Neel, ICLR 2025).

If the outputs of the model retrained without the forget set (the oracle) were known, unlearning
would be supervised fine-tuning towards them. **Oracle Matching** (OM) fine-tunes the trained
model so that its logits match the oracle's on a small fine-tuning set: the forget points
(repeated ``forget_multiplier`` times) plus ``retain_multiplier * |F|`` retain points drawn
without replacement; MSE on the logits (or cross-entropy to the oracle's softmax), Adam, an
exponential learning-rate decay per epoch, optionally ``wd_to_init * ||theta - theta_0||^2``.
No label is read. **Datamodel Matching** (DMM) replaces the oracle's outputs by the ones a
datamodel predicts: ``f_theta0(x_i) - dm_multiplier * sum_{j in F} beta[j, i, :]``; the
datamodel is fitted once (up front, on models trained on random subsets of the training set)
and reused for every later deletion request. **DM-direct** applies that correction to the
outputs without fine-tuning; it needs the example's datamodel row, so it only works on the
examples the datamodel was fitted on (an evaluation device, not a deployable model).

Defaults follow the authors' code (Adam, lr 5e-4, batch 512, 5 epochs, decay 0.95 per epoch,
no shuffling, retain multiplier 3, forget multiplier 1, fine-tuning-set seed 42).

The fine-tuning (:meth:`OutputMatching.finetune`) accepts any module whose output matches the
targets' shape, including :class:`paperzoo.training.batched.BatchedMLP` (K models fine-tuned at
once towards (K, B, C) targets, each with its own per-model loss).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, validate_params
from paperzoo.unlearning.base import Unlearner, UnlearningContext, UnlearningData
from paperzoo.unlearning.datamodels import RegressionDatamodel, SubsetTrainingPlan

__all__ = [
    "DatamodelDirect",
    "DatamodelMatching",
    "OracleMatching",
    "OutputMatching",
    "finetune_indices",
    "forget_rows",
    "fit_datamodel",
]

#: ``target_fn(x_ft, positions)``: the targets (B, C) (or (K, B, C)) of the fine-tuning inputs,
#: ``positions`` their indices into the training inputs.
TargetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def finetune_indices(
    forget_pos: np.ndarray | torch.Tensor,
    retain_pos: np.ndarray | torch.Tensor,
    forget_multiplier: float = 1.0,
    retain_multiplier: float = 3.0,
    seed: int = 42,
) -> np.ndarray:
    """The fine-tuning set of OM / DMM: the forget positions repeated ``int(forget_multiplier)``
    times plus a prefix of ``(forget_multiplier % 1) * |F|`` of them, then
    ``floor(retain_multiplier * |F|)`` retain positions drawn without replacement with
    ``numpy.random.default_rng(seed)`` (all of them if fewer exist).

    Raises:
        ValueError: the forget and retain positions overlap, or either is empty.
    """
    f = np.asarray(forget_pos, dtype=np.int64).reshape(-1)
    r = np.asarray(retain_pos, dtype=np.int64).reshape(-1)
    if f.size == 0 or r.size == 0:
        raise ValueError("finetune_indices: forget_pos and retain_pos must be non-empty")
    shared = np.intersect1d(f, r)
    if shared.size:
        raise ValueError(
            f"finetune_indices: the forget set overlaps the retain set in {shared.size} examples "
            f"(e.g. {int(shared[0])}); they must be disjoint"
        )
    reps = int(forget_multiplier)
    part = np.concatenate([np.tile(f, reps), f[: int(math.floor((forget_multiplier - reps) * f.size))]])
    n_retain = min(int(math.floor(retain_multiplier * f.size)), r.size)
    retain = np.random.default_rng(seed).choice(r, size=n_retain, replace=False)
    return np.concatenate([part, retain]).astype(np.int64)


_FINETUNE_CONSTRAINTS: dict[str, list[Any]] = {
    "loss": [Options(("mse", "ce"))],
    "epochs": [Interval(int, 0, math.inf, closed="left")],
    "lr": [Interval(float, 0, math.inf, closed="neither")],
    "batch_size": [Interval(int, 1, math.inf, closed="left")],
    "optimizer": [Options(("adam", "sgd"))],
    "lr_gamma": [Interval(float, 0, 1, closed="right")],
    "retain_multiplier": [Interval(float, 0, math.inf, closed="left")],
    "forget_multiplier": [Interval(float, 0, math.inf, closed="neither")],
    "wd_to_init": [Interval(float, 0, math.inf, closed="left")],
    "train_mode": [Options((True, False))],
    "shuffle": [Options((True, False))],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


class OutputMatching(Unlearner):
    """The fine-tuning shared by OM and DMM: match the model's logits to targets on the
    fine-tuning set. Subclasses provide the targets (:meth:`targets`)."""

    uses_labels = False

    def __init__(
        self,
        loss: str = "mse",
        epochs: int = 5,
        lr: float = 5e-4,
        batch_size: int = 512,
        optimizer: str = "adam",
        lr_gamma: float = 0.95,
        retain_multiplier: float = 3.0,
        forget_multiplier: float = 1.0,
        wd_to_init: float = 0.0,
        train_mode: bool = True,
        shuffle: bool = False,
        seed: int = 42,
    ) -> None:
        super().__init__()
        params = {
            "loss": loss, "epochs": epochs, "lr": lr, "batch_size": batch_size, "optimizer": optimizer,
            "lr_gamma": lr_gamma, "retain_multiplier": retain_multiplier, "forget_multiplier": forget_multiplier,
            "wd_to_init": wd_to_init, "train_mode": train_mode, "shuffle": shuffle, "seed": seed,
        }  # fmt: skip
        validate_params(_FINETUNE_CONSTRAINTS, params, owner=type(self).__name__)
        self.loss, self.epochs, self.lr, self.batch_size = loss, epochs, lr, batch_size
        self.optimizer, self.lr_gamma = optimizer, lr_gamma
        self.retain_multiplier, self.forget_multiplier = retain_multiplier, forget_multiplier
        self.wd_to_init, self.train_mode, self.shuffle, self.seed = wd_to_init, train_mode, shuffle, seed
        self.losses: list[float] = []  # per-step losses of the last fine-tune (summed over models)

    # ------------------------------------------------------------------ the fine-tune
    def finetune(
        self,
        model: nn.Module,
        x_train: torch.Tensor,
        forget_pos: np.ndarray | torch.Tensor,
        retain_pos: np.ndarray | torch.Tensor,
        target_fn: TargetFn,
    ) -> nn.Module:
        """Fine-tune ``model`` in place towards ``target_fn`` on the fine-tuning set drawn from
        ``forget_pos`` / ``retain_pos`` (indices into ``x_train``); returns it. Targets are
        computed once, before the first step, without gradients."""
        pos = torch.from_numpy(
            finetune_indices(forget_pos, retain_pos, self.forget_multiplier, self.retain_multiplier, self.seed)
        )
        xs = x_train[pos]
        with torch.no_grad():
            targets = target_fn(xs, pos).detach().to(xs.dtype)
        init = [p.detach().clone() for p in model.parameters()] if self.wd_to_init > 0 else []
        params = [p for p in model.parameters() if p.requires_grad]
        opt: torch.optim.Optimizer = (
            torch.optim.Adam(params, lr=self.lr) if self.optimizer == "adam" else torch.optim.SGD(params, lr=self.lr)
        )
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_gamma)
        was_training = model.training
        model.train(self.train_mode)
        gen = torch.Generator().manual_seed(self.seed)
        self.losses = []
        n = xs.shape[0]
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
            for lo in range(0, n, self.batch_size):
                b = order[lo : lo + self.batch_size]
                out = model(xs[b])
                tgt = targets[..., b, :]
                loss = self._loss(out, tgt)
                if init:
                    loss = loss + self.wd_to_init * sum(
                        (p - p0).square().sum() for p, p0 in zip(model.parameters(), init)
                    )
                self.losses.append(float(loss.detach()))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
        model.train(was_training)
        return model

    def _loss(self, out: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Mean over the batch and classes of one model; summed over the models of a batched one
        (out (K, B, C)), so each model's gradient is its own."""
        if out.shape != tgt.shape:
            raise ValueError(f"{type(self).__name__}: model output {tuple(out.shape)} != target {tuple(tgt.shape)}")
        if self.loss == "mse":
            per = F.mse_loss(out, tgt, reduction="none").flatten(-2).mean(-1)
        else:
            per = -(F.softmax(tgt, -1) * F.log_softmax(out, -1)).sum(-1).mean(-1)
        return per.sum()

    # ------------------------------------------------------------------ the Unlearner interface
    def targets(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> TargetFn:
        """The target function of this method's fine-tune (OM: the oracle; DMM: the datamodel)."""
        raise NotImplementedError(f"{type(self).__name__} does not define its targets")

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        """Fine-tune ``model`` (in place) towards this method's targets; reads ``data.x`` and the
        split indices, never a label. Positions are indices into ``data.x``."""
        target_fn = self.targets(model, data, context)
        return self.finetune(model, data.x, data.forget_idx, data.retain_idx, target_fn)


class OracleMatching(OutputMatching):
    """OM: the targets are the logits of the oracle (``context.oracle()``, the model retrained
    without the forget set), in eval mode; with several oracles, their mean logits (MSE) or
    mean softmax (CE). Needs the oracle, so it is an upper reference, not a practical method."""

    needs_oracle = True

    def targets(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> TargetFn:
        if context.oracle is None:
            raise ValueError("OracleMatching needs the oracle: the protocol must grant context.oracle")
        oracle = context.oracle()
        return self.oracle_targets([oracle])

    def oracle_targets(self, oracles: list[nn.Module]) -> TargetFn:
        """The target function of a list of oracles (mean logits; for ``loss="ce"``, the log of
        the mean softmax, so that the softmax of the target is the oracles' mean softmax)."""

        def fn(x: torch.Tensor, _pos: torch.Tensor) -> torch.Tensor:
            outs = []
            for o in oracles:
                was = o.training
                o.eval()
                outs.append(o(x))
                o.train(was)
            stacked = torch.stack(outs)
            if self.loss == "ce":
                return torch.log(F.softmax(stacked, -1).mean(0).clamp_min(1e-30))
            return stacked.mean(0)

        return fn


def fit_datamodel(
    data: UnlearningData,
    context: UnlearningContext,
    num_models: int,
    alpha: float = 0.5,
    lams: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0),
    seed: int = 0,
) -> RegressionDatamodel:
    """Fit a ridge datamodel of the logits on every row of ``data.x`` from ``num_models`` models
    trained (``context.model_fn`` / ``context.train_fn``, the original recipe) on random
    ``alpha``-subsets of the training set ``data.train_idx``; the ridge ``lam`` is chosen on the
    last 10 % of the models. Rows of beta are positions in ``sorted(data.train_idx)``; evaluation
    examples are the rows of ``data.x``. Labels are read (training needs them),
    which is why DMM's fitting is the up-front, request-independent part.

    Cost: ``num_models`` trainings on half the data; use
    :func:`paperzoo.training.batched.train_subset_models` for small MLPs instead of this loop.
    """
    train = data.train_idx.sort().values
    plan = SubsetTrainingPlan(int(train.numel()), num_models, alpha, seed)
    outs = []
    for m, mask in enumerate(plan.masks):
        net = context.model_fn()
        sel = train[torch.from_numpy(mask)]
        context.train_fn(net, data.x[sel], data.y[sel], seed * 100_003 + m)
        net.eval()
        with torch.no_grad():
            outs.append(net(data.x).to(torch.float64))
    dm = RegressionDatamodel()
    dm.fit_cv(plan.masks, torch.stack(outs), lams=lams, labels=data.y)
    return dm


def forget_rows(data: UnlearningData) -> np.ndarray:
    """Positions of the forget set in ``sorted(data.train_idx)``: the datamodel rows to remove."""
    return np.searchsorted(data.train_idx.sort().values.numpy(), data.forget_idx.numpy())


class DatamodelMatching(OutputMatching):
    """DMM: the targets are the original model's logits minus ``dm_multiplier`` times the
    datamodel's predicted effect of the forget set, ``sum_{j in F} beta[j, i, :]``.

    ``datamodel``: a fitted :class:`RegressionDatamodel` whose rows are positions in
    ``sorted(data.train_idx)`` and whose evaluation examples are the rows of ``data.x`` (as
    :func:`fit_datamodel` builds it). Without one, :meth:`unlearn` fits one with
    :func:`fit_datamodel` (``num_models`` subset models) on the first request and keeps it for the
    next requests on the same training set (the cost is paid once).
    """

    def __init__(
        self,
        datamodel: RegressionDatamodel | None = None,
        dm_multiplier: float = 1.0,
        num_models: int = 200,
        alpha: float = 0.5,
        **finetune: Any,
    ) -> None:
        super().__init__(**finetune)
        validate_params(
            {
                "dm_multiplier": [Interval(float, 0, math.inf, closed="left")],
                "num_models": [Interval(int, 3, math.inf, closed="left")],
                "alpha": [Interval(float, 0, 1, closed="neither")],
            },
            {"dm_multiplier": dm_multiplier, "num_models": num_models, "alpha": alpha},
            owner="DatamodelMatching",
        )
        self.datamodel, self.dm_multiplier, self.num_models, self.alpha = datamodel, dm_multiplier, num_models, alpha
        self._fitted_on: tuple[int, bytes] | None = None

    def _datamodel(self, data: UnlearningData, context: UnlearningContext) -> RegressionDatamodel:
        key = (id(data.x), data.train_idx.sort().values.numpy().tobytes())
        if self.datamodel is None or (self._fitted_on is not None and self._fitted_on != key):
            self.datamodel = fit_datamodel(data, context, self.num_models, self.alpha, seed=context.seed)
            self._fitted_on = key
        return self.datamodel

    def predicted_oracle(
        self, outputs: torch.Tensor, eval_pos: torch.Tensor, forget_pos: np.ndarray | torch.Tensor
    ) -> torch.Tensor:
        """``outputs`` (..., B, C) of the original model on evaluation examples ``eval_pos`` (B,)
        minus ``dm_multiplier`` times the datamodel's effect of ``forget_pos`` (datamodel train
        positions)."""
        if self.datamodel is None:
            raise RuntimeError("DatamodelMatching: no datamodel yet (pass one, or call unlearn())")
        delta = self.datamodel.effect_of_removal(forget_pos)
        return outputs - self.dm_multiplier * delta[torch.as_tensor(eval_pos, dtype=torch.long)].to(outputs.dtype)

    def original_targets(self, original: nn.Module, forget_pos: np.ndarray | torch.Tensor) -> TargetFn:
        """The target function for fine-tuning inputs identified by their datamodel evaluation
        positions; ``original`` is a frozen copy of the model before unlearning (eval mode)."""

        def fn(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
            was = original.training
            original.eval()
            out = original(x)
            original.train(was)
            return self.predicted_oracle(out, pos, forget_pos)

        return fn

    def targets(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> TargetFn:
        self._datamodel(data, context)
        # evaluation positions are rows of data.x: the indices finetune() passes to the target function
        return self.original_targets(copy.deepcopy(model), forget_rows(data))


class DatamodelDirect(Unlearner):
    """DM-direct: no fine-tuning; the returned module outputs ``model(x) - dm_multiplier *
    sum_{j in F} beta[j, i, :]`` for inputs that are rows ``i`` of ``data.x`` (found by exact
    match) and ``model(x)`` for any other input. Evaluation only: it needs each example's
    datamodel row."""

    uses_labels = False

    def __init__(
        self, datamodel: RegressionDatamodel | None = None, dm_multiplier: float = 1.0, num_models: int = 200
    ) -> None:
        super().__init__()
        self.matcher = DatamodelMatching(datamodel, dm_multiplier, num_models)

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        dm = self.matcher._datamodel(data, context)
        delta = self.matcher.dm_multiplier * dm.effect_of_removal(forget_rows(data))
        return _Corrected(model, data.x, delta)


class _Corrected(nn.Module):
    """``model(x) - delta[i]`` where ``x`` is row ``i`` of ``x_ref`` (exact match), else ``model(x)``."""

    def __init__(self, model: nn.Module, x_ref: torch.Tensor, delta: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("x_ref", x_ref.reshape(x_ref.shape[0], -1).clone())
        self.register_buffer("delta", delta.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        flat = x.reshape(x.shape[0], -1).to(self.x_ref.dtype)
        dist = torch.cdist(flat, self.x_ref, compute_mode="donot_use_mm_for_euclid_dist")
        best = dist.argmin(1)
        hit = dist.gather(1, best[:, None]).squeeze(1) == 0
        return out - torch.where(hit[:, None], self.delta[best].to(out.dtype), torch.zeros_like(out))
