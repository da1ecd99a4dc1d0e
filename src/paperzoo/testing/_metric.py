"""The check suite of pytorch-metric-learning-compatible metric losses."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from pytorch_metric_learning import miners, reducers
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper
from torch import nn

from paperzoo._validation import check_embeddings_labels
from paperzoo.testing._common import (
    Check,
    as_checks,
    assert_close,
    assert_equal,
    assert_finite,
    assert_raises_like,
    perturb_state,
    pickle_copy,
    reference_error,
    run_checks,
    state_dict_copy,
)

__all__ = ["check_metric_loss", "metric_loss_checks"]

MakeLoss = Callable[..., nn.Module]


class _Case:
    """Random embeddings with ``per_class`` samples of each of ``classes`` labels (shuffled),
    and a reference set of the same composition, from one seed."""

    def __init__(self, dim: int, classes: int, per_class: int, seed: int, device: torch.device) -> None:
        self.dim, self.classes, self.per_class, self.seed, self.device = dim, classes, per_class, seed, device
        self.batch = classes * per_class

    def __call__(
        self, dtype: torch.dtype = torch.float64
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        base = torch.arange(self.classes).repeat_interleave(self.per_class)
        emb = torch.randn(self.batch, self.dim, generator=g, dtype=torch.float64)
        labels = base[torch.randperm(self.batch, generator=g)]
        ref_emb = torch.randn(self.batch, self.dim, generator=g, dtype=torch.float64)
        ref_labels = base[torch.randperm(self.batch, generator=g)]
        return (
            emb.to(self.device, dtype),
            labels.to(self.device),
            ref_emb.to(self.device, dtype),
            ref_labels.to(self.device),
        )

    def permutation(self) -> torch.Tensor:
        return torch.randperm(self.batch, generator=torch.Generator().manual_seed(self.seed + 1)).to(self.device)


def _scalar_with_finite_grad(loss: torch.Tensor, leaves: tuple[torch.Tensor, ...], what: str) -> None:
    if loss.shape != ():
        raise AssertionError(f"{what}: the loss must be a scalar, got shape {tuple(loss.shape)}")
    assert_finite(loss, what)
    if loss.requires_grad:
        for g in torch.autograd.grad(loss, leaves, allow_unused=True):
            if g is not None:
                assert_finite(g, f"{what}: gradient")


def metric_loss_checks(
    make_loss: MakeLoss,
    *,
    dim: int = 16,
    classes: int = 4,
    per_class: int = 4,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[Check]:
    """The checks of a pytorch-metric-learning (PML) compatible metric loss, as
    ``(name, check)`` pairs (``check()`` raises ``AssertionError`` on failure); see
    :func:`paperzoo.testing.classification_loss_checks` for the pytest pattern.

    Args:
        make_loss: ``make_loss(**kwargs) -> BaseMetricLossFunction`` with the hyper-parameters
            under test; ``kwargs`` may hold PML's ``reducer``. Called as
            ``loss(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None)``.
        dim: embedding dimension.
        classes, per_class: the batch holds ``per_class`` samples of each of ``classes``
            labels (``per_class >= 2`` so that every anchor has positives).
        seed: seed of the random inputs.
        device: where the inputs and the loss live (the loss is moved with ``.to(device)``).

    The checks:

    * ``is_pml_loss``: a subclass of PML's ``BaseMetricLossFunction``;
    * ``bad_input[...]``: 1-D embeddings, labels of the wrong length, float labels, NaN
      embeddings and an empty batch raise the error of
      :func:`paperzoo._validation.check_embeddings_labels` (type and message);
    * ``gradcheck``: ``torch.autograd.gradcheck`` in float64 w.r.t. the embeddings;
    * ``permutation_invariance``: permuting the batch leaves the loss unchanged;
    * ``determinism``: two calls give identical results;
    * ``pickle_round_trip`` and ``state_dict_round_trip``: as for classification losses;
    * ``dtype_device``: float32 and float64 embeddings give a loss of their dtype and device;
    * ``miners``: the ``indices_tuple`` of PML's ``MultiSimilarityMiner`` and
      ``TripletMarginMiner`` is accepted and gives a finite scalar with finite gradients;
    * ``ref_emb``: ``ref_emb`` / ``ref_labels`` are accepted (finite loss and gradients);
    * ``reducers``: an explicit ``MeanReducer`` equals the default when the default reducer is
      a ``MeanReducer``; ``SumReducer`` and ``ThresholdReducer(low=0)`` give finite values;
    * ``distributed_wrapper``: PML's ``DistributedLossWrapper`` accepts the loss and, in a
      single process, returns the bare loss's value and gradient. PML returns the bare loss
      (with a warning) when no process group is initialised, and also under a 1-process group
      (world size 1 skips the gather), so no group is started; under a multi-process group
      the check fails, as the value then depends on the other ranks.
    """
    if per_class < 2 or classes < 2 or dim < 1:
        raise ValueError(
            f"metric_loss_checks needs classes >= 2, per_class >= 2, dim >= 1, got {classes}, {per_class}, {dim}"
        )
    dev = torch.device(device)
    case = _Case(dim, classes, per_class, seed, dev)

    def make(**kwargs: Any) -> nn.Module:
        return make_loss(**kwargs).to(dev)

    def is_pml_loss() -> None:
        loss = make()
        if not isinstance(loss, BaseMetricLossFunction):
            raise AssertionError(f"{type(loss).__name__} is not a pytorch-metric-learning BaseMetricLossFunction")

    def bad_input(x: torch.Tensor, y: torch.Tensor) -> None:
        expected = reference_error(partial(check_embeddings_labels, x, y))
        assert_raises_like(partial(make(), x, y), expected)

    def gradcheck() -> None:
        emb, labels, _, _ = case()
        loss = make()
        x = emb.clone().requires_grad_(True)
        if not torch.autograd.gradcheck(lambda e: loss(e, labels), (x,), raise_exception=False):
            raise AssertionError("gradcheck failed")

    def permutation_invariance() -> None:
        emb, labels, _, _ = case()
        p = case.permutation()
        loss = make()
        assert_close(loss(emb[p], labels[p]), loss(emb, labels), "loss of the permuted batch")

    def determinism() -> None:
        emb, labels, _, _ = case()
        loss = make()
        assert_equal(loss(emb, labels), loss(emb, labels), "two calls")

    def round_trip(kind: str) -> None:
        emb, labels, _, _ = case()
        loss = make()
        perturb_state(loss, seed)
        copy = pickle_copy(loss) if kind == "pickle" else state_dict_copy(loss, make)
        assert_equal(copy(emb, labels), loss(emb, labels), f"{kind} round trip")

    def dtype_device() -> None:
        for dtype in (torch.float32, torch.float64):
            emb, labels, _, _ = case(dtype)
            out = make()(emb, labels)
            if out.dtype != dtype or out.device != emb.device:
                raise AssertionError(f"{dtype} embeddings on {emb.device} gave a loss of {out.dtype} on {out.device}")

    def with_miners() -> None:
        emb, labels, _, _ = case()
        for miner in (miners.MultiSimilarityMiner(), miners.TripletMarginMiner(margin=0.2, type_of_triplets="all")):
            x = emb.clone().requires_grad_(True)
            tup = miner(x, labels)
            _scalar_with_finite_grad(make()(x, labels, tup), (x,), f"with {type(miner).__name__}")

    def ref_emb() -> None:
        emb, labels, ref, ref_labels = case()
        x, r = emb.clone().requires_grad_(True), ref.clone().requires_grad_(True)
        _scalar_with_finite_grad(make()(x, labels, ref_emb=r, ref_labels=ref_labels), (x, r), "with ref_emb")

    def with_reducers() -> None:
        emb, labels, _, _ = case()
        default = make()
        if type(default.reducer) is reducers.MeanReducer:
            assert_close(make(reducer=reducers.MeanReducer())(emb, labels), default(emb, labels), "MeanReducer")
        for reducer in (reducers.SumReducer(), reducers.ThresholdReducer(low=0)):
            x = emb.clone().requires_grad_(True)
            _scalar_with_finite_grad(make(reducer=reducer)(x, labels), (x,), f"with {type(reducer).__name__}")

    def distributed_wrapper() -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_world_size() > 1:
                raise AssertionError("the distributed_wrapper check needs a single process")
        emb, labels, _, _ = case()
        x1, x2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
        loss = make()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="DistributedLossWrapper is being used in a non-distributed")
            wrapped = DistributedLossWrapper(loss)(x1, labels)
        bare = loss(x2, labels)
        assert_close(wrapped, bare, "DistributedLossWrapper vs the bare loss")
        if bare.requires_grad:
            wrapped.backward()
            bare.backward()
            assert_close(x1.grad, x2.grad, "DistributedLossWrapper vs the bare loss, gradient")

    emb, labels, _, _ = case(torch.float32)
    nan = emb.clone()
    nan[0, 0] = float("nan")
    bad_inputs = {
        "embeddings_1d": (emb[:, 0], labels),
        "labels_wrong_length": (emb, labels[:-1]),
        "labels_float": (emb, labels.float()),
        "embeddings_nan": (nan, labels),
        "empty_batch": (emb[:0], labels[:0]),
    }
    checks: list[Check] = [("is_pml_loss", is_pml_loss)]
    checks += [(f"bad_input[{name}]", partial(bad_input, *xy)) for name, xy in bad_inputs.items()]
    checks += [
        ("gradcheck", gradcheck),
        ("permutation_invariance", permutation_invariance),
        ("determinism", determinism),
        ("pickle_round_trip", partial(round_trip, "pickle")),
        ("state_dict_round_trip", partial(round_trip, "state_dict")),
        ("dtype_device", dtype_device),
        ("miners", with_miners),
        ("ref_emb", ref_emb),
        ("reducers", with_reducers),
        ("distributed_wrapper", distributed_wrapper),
    ]
    return as_checks(checks)


def check_metric_loss(
    make_loss: MakeLoss,
    *,
    dim: int = 16,
    classes: int = 4,
    per_class: int = 4,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> None:
    """Run every check of :func:`metric_loss_checks`; raise one ``AssertionError`` naming
    each check that failed."""
    run_checks(metric_loss_checks(make_loss, dim=dim, classes=classes, per_class=per_class, seed=seed, device=device))
