"""Domain Penalisation (DP) and the GroupDRO baseline: per-domain weights on per-sample losses.

Jena, Rajendran, Seemakurthy, A, M & Poornachari, "Domain penalisation for improved
Out-of-Distribution Generalisation" (arXiv:2408.01746, 2024). Every training sample belongs to
one of ``N`` source domains; its loss ``L_ij`` is scaled by its domain's weight ``w_i``:

* batch loss, every step: ``L_B = sum_{(i, j) in batch} w_i * L_ij`` (or its mean over the
  batch, ``batch_reduction="mean"``);
* weight update, every epoch: the domain's average loss over the epoch
  ``L_D_i = (1 / M_i) sum_j L_ij`` and ``w = softmax(L_D / temperature)`` (temperature 1 in
  the paper); the first epoch uses ``w = 1`` (plain ERM).

So the domains on which the model currently does worst weigh more in the next epoch. The rule
is model-agnostic: it needs only a per-sample loss (a classifier's cross-entropy, a detector's
per-image loss sum) and a domain id per sample.

Baseline: :class:`GroupDROWeights`, online GroupDRO (Sagawa et al., 2020, "Distributionally
Robust Neural Networks"): per step ``q_i <- q_i * exp(eta * mean loss of domain i in the batch)``,
``q`` renormalised, loss ``sum_i q_i * mean loss of domain i``. ERM is plain averaging (or
:class:`DomainPenalisation` before its first :meth:`~DomainPenalisation.end_epoch`).

:class:`DomainWeightedObjective` plugs either weighting into :func:`paperzoo.engine.fit` as its
``compute_loss`` and calls ``end_epoch`` at the epoch boundaries. Everything here is small and
vectorised (``index_add_`` / ``bincount`` over the batch); no library implements DP.

Choices where the paper is silent (also in docs/papers/39-domain-penalisation.md):

* ``rescale=False`` (default) keeps the paper's softmax weights, which sum to 1 after the
  first update (a step-size drop of about ``N`` for SGD; Adam is nearly invariant to it);
  ``rescale=True`` multiplies them by ``N`` so they sum to ``N`` like the initial weights.
* A domain with no sample in an epoch keeps its last known average loss; a domain never seen
  yet gets the mean of the known averages (a neutral weight); an epoch with no sample at all
  leaves the weights unchanged. No NaN can appear.
* The epoch averages come from the training passes (``accumulate`` / ``forward``), or from a
  separate evaluation pass given to ``end_epoch(average_losses=...)``
  (:class:`DomainWeightedObjective` ``source="eval_pass"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, check_labels, validate_params

__all__ = [
    "DomainPenalisation",
    "DomainWeightedObjective",
    "GroupDROWeights",
    "domain_loss_sums",
    "domain_penalisation_weights",
    "domain_weighted_loss",
]

_BATCH_REDUCTIONS = ("sum", "mean")
_SOURCES = ("train_running", "eval_pass")


# --------------------------------------------------------------------------- validation
def _check_losses_domains(per_sample_losses: torch.Tensor, domain_ids: torch.Tensor, num_domains: int) -> None:
    """per_sample_losses: floating (B,), B >= 1, finite; domain_ids: integer (B,) in [0, num_domains)."""
    if not isinstance(per_sample_losses, torch.Tensor) or not per_sample_losses.is_floating_point():
        raise TypeError("per_sample_losses must be a floating-point torch.Tensor of shape (B,)")
    if per_sample_losses.dim() != 1:
        raise ValueError(f"per_sample_losses must have shape (B,), got {tuple(per_sample_losses.shape)}")
    if per_sample_losses.shape[0] == 0:
        raise ValueError("empty batch: per_sample_losses has 0 entries")
    check_finite(per_sample_losses, "per_sample_losses")
    check_labels(domain_ids, per_sample_losses.shape[0], "domain_ids", num_domains)


def _check_domain_vector(values: torch.Tensor, num_domains: int, name: str, *, allow_nan: bool = False) -> None:
    """A floating (num_domains,) tensor; finite (NaN allowed as 'missing' when ``allow_nan``)."""
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape ({num_domains},)")
    if values.shape != (num_domains,):
        raise ValueError(f"{name} must have shape ({num_domains},), got {tuple(values.shape)}")
    check_finite(values[~torch.isnan(values)] if allow_nan else values, name)


# --------------------------------------------------------------------------- pure functions
def domain_penalisation_weights(
    average_losses: torch.Tensor, temperature: float = 1.0, rescale: bool = False
) -> torch.Tensor:
    """The paper's weight update: ``w = softmax(L_D / temperature)`` over domains (times ``N``
    when ``rescale``). ``average_losses``: (N,) finite average loss of each domain.

    >>> w = domain_penalisation_weights(torch.tensor([0.9, 1.4, 0.6], dtype=torch.float64))
    >>> [round(v, 6) for v in w.tolist()]
    [0.295025, 0.486415, 0.21856]
    """
    validate_params(
        {"temperature": [Interval(float, 0, math.inf, closed="neither")], "rescale": [Options((True, False))]},
        {"temperature": temperature, "rescale": rescale},
        owner="domain_penalisation_weights",
    )
    if isinstance(average_losses, torch.Tensor) and average_losses.dim() == 1 and average_losses.shape[0] == 0:
        raise ValueError("empty input: average_losses has 0 domains")
    n = average_losses.shape[0] if isinstance(average_losses, torch.Tensor) and average_losses.dim() == 1 else -1
    _check_domain_vector(average_losses, n, "average_losses")
    w = torch.softmax(average_losses / temperature, dim=0)  # max-subtracted inside softmax
    return w * n if rescale else w


def domain_loss_sums(
    per_sample_losses: torch.Tensor, domain_ids: torch.Tensor, num_domains: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-domain sums of the losses and sample counts, ``(sums (N,), counts (N,))`` (vectorised,
    differentiable in the losses)."""
    validate_params({"num_domains": [Interval(int, 1, math.inf, closed="left")]}, {"num_domains": num_domains},
                    owner="domain_loss_sums")  # fmt: skip
    _check_losses_domains(per_sample_losses, domain_ids, num_domains)
    return _sums_counts(per_sample_losses, domain_ids, num_domains)


def _sums_counts(losses: torch.Tensor, domain_ids: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    sums = losses.new_zeros(n).index_add(0, domain_ids, losses)
    counts = torch.bincount(domain_ids, minlength=n).to(losses.dtype)
    return sums, counts


def domain_weighted_loss(
    per_sample_losses: torch.Tensor, domain_ids: torch.Tensor, weights: torch.Tensor, batch_reduction: str = "sum"
) -> torch.Tensor:
    """The paper's batch loss ``L_B = sum_j w_{d_j} * L_j`` (``"sum"``) or its mean over the
    batch (``"mean"``). ``weights``: (N,) non-negative domain weights.

    >>> w = domain_penalisation_weights(torch.tensor([0.9, 1.4, 0.6], dtype=torch.float64))
    >>> losses, dom = torch.tensor([1.0, 2.0, 0.5, 0.8], dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    >>> round(float(domain_weighted_loss(losses, dom, w)), 5)
    1.76627
    """
    validate_params({"batch_reduction": [Options(_BATCH_REDUCTIONS)]}, {"batch_reduction": batch_reduction},
                    owner="domain_weighted_loss")  # fmt: skip
    n = weights.shape[0] if isinstance(weights, torch.Tensor) and weights.dim() == 1 else -1
    _check_domain_vector(weights, n, "weights")
    if n > 0 and bool((weights < 0).any()):
        raise ValueError(f"weights must be non-negative, got a minimum of {float(weights.min())}")
    _check_losses_domains(per_sample_losses, domain_ids, n)
    return _weighted(per_sample_losses, domain_ids, weights, batch_reduction)


def _weighted(losses: torch.Tensor, domain_ids: torch.Tensor, weights: torch.Tensor, reduction: str) -> torch.Tensor:
    total = (weights.to(losses.dtype)[domain_ids] * losses).sum()
    return total / losses.shape[0] if reduction == "mean" else total


# --------------------------------------------------------------------------- Domain Penalisation
class DomainPenalisation(nn.Module):
    """Domain Penalisation: per-domain weights on per-sample losses, recomputed every epoch as
    the softmax of the domains' average losses (Jena et al., 2024; see the module docstring).

    Use: ``loss = dp(per_sample_losses, domain_ids)`` every step (weighted batch loss; it also
    accumulates the detached losses per domain), then ``dp.end_epoch()`` after every epoch.
    ``dp.loss`` / ``dp.accumulate`` do the two halves separately.

    Args:
        num_domains: ``N``, the number of source domains (ids ``0 .. N-1``).
        rescale: multiply the softmax weights by ``N`` (sum ``N`` instead of 1).
        temperature: softmax temperature (1 in the paper).
        batch_reduction: ``"sum"`` (the paper's ``L_B``) or ``"mean"`` (divided by the batch size).

    Buffers (saved in ``state_dict``): ``weights`` (N,), the current weights (1 before the first
    update); ``average_losses`` (N,), the last epoch average of each domain (NaN: never seen);
    ``loss_sum`` / ``count`` (N,), this epoch's accumulators (float64); ``epochs`` ().
    """

    _parameter_constraints = {
        "num_domains": [Interval(int, 1, math.inf, closed="left")],
        "rescale": [Options((True, False))],
        "temperature": [Interval(float, 0, math.inf, closed="neither")],
        "batch_reduction": [Options(_BATCH_REDUCTIONS)],
    }

    weights: torch.Tensor
    average_losses: torch.Tensor
    loss_sum: torch.Tensor
    count: torch.Tensor
    epochs: torch.Tensor

    def __init__(
        self, num_domains: int, rescale: bool = False, temperature: float = 1.0, batch_reduction: str = "sum"
    ) -> None:
        super().__init__()
        params = {"num_domains": num_domains, "rescale": rescale, "temperature": temperature,
                  "batch_reduction": batch_reduction}  # fmt: skip
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        self.num_domains, self.rescale = int(num_domains), bool(rescale)
        self.temperature, self.batch_reduction = float(temperature), batch_reduction
        self.register_buffer("weights", torch.ones(num_domains))
        self.register_buffer("average_losses", torch.full((num_domains,), math.nan, dtype=torch.float64))
        self.register_buffer("loss_sum", torch.zeros(num_domains, dtype=torch.float64))
        self.register_buffer("count", torch.zeros(num_domains, dtype=torch.float64))
        self.register_buffer("epochs", torch.zeros((), dtype=torch.int64))

    def extra_repr(self) -> str:
        return (
            f"num_domains={self.num_domains}, rescale={self.rescale}, temperature={self.temperature}, "
            f"batch_reduction={self.batch_reduction!r}"
        )

    def loss(self, per_sample_losses: torch.Tensor, domain_ids: torch.Tensor) -> torch.Tensor:
        """The weighted batch loss with the current weights (no state change)."""
        _check_losses_domains(per_sample_losses, domain_ids, self.num_domains)
        return _weighted(per_sample_losses, domain_ids, self.weights, self.batch_reduction)

    @torch.no_grad()
    def accumulate(self, per_sample_losses: torch.Tensor, domain_ids: torch.Tensor) -> None:
        """Add the (detached) losses to this epoch's per-domain running sums and counts."""
        _check_losses_domains(per_sample_losses, domain_ids, self.num_domains)
        sums, counts = _sums_counts(per_sample_losses.detach().to(torch.float64), domain_ids, self.num_domains)
        self.loss_sum += sums.to(self.loss_sum.device)
        self.count += counts.to(self.count.device)

    def forward(self, per_sample_losses: torch.Tensor, domain_ids: torch.Tensor) -> torch.Tensor:
        """:meth:`accumulate` (in training mode) then :meth:`loss`."""
        out = self.loss(per_sample_losses, domain_ids)
        if self.training:
            self.accumulate(per_sample_losses, domain_ids)
        return out

    @torch.no_grad()
    def end_epoch(self, average_losses: torch.Tensor | None = None) -> torch.Tensor:
        """Recompute the weights from this epoch's per-domain averages and reset the accumulators.

        Args:
            average_losses: (N,) per-domain averages from an evaluation pass (NaN: domain not
                seen), used instead of the accumulated training losses.

        Returns:
            A copy of the new weights (N,).
        """
        if average_losses is None:
            seen = self.count > 0
            current = torch.where(seen, self.loss_sum / self.count.clamp(min=1), torch.nan)
        else:
            _check_domain_vector(average_losses, self.num_domains, "average_losses", allow_nan=True)
            current = average_losses.detach().to(device=self.average_losses.device, dtype=torch.float64)
            seen = ~torch.isnan(current)
        known = torch.where(seen, current, self.average_losses)  # missing: carry the last average forward
        self.average_losses.copy_(known)
        have = ~torch.isnan(known)
        if bool(have.any()):
            filled = torch.where(have, known, known[have].mean())  # never seen: a neutral (mean) loss
            w = domain_penalisation_weights(filled, self.temperature, self.rescale)
            self.weights.copy_(w.to(self.weights.dtype))
        self.loss_sum.zero_()
        self.count.zero_()
        self.epochs += 1
        return self.weights.clone()


# --------------------------------------------------------------------------- GroupDRO baseline
class GroupDROWeights(nn.Module):
    """Online GroupDRO (Sagawa et al., 2020), the paper's baseline, with the same interface as
    :class:`DomainPenalisation`: ``loss = dro(per_sample_losses, domain_ids)``.

    Each training-mode call first updates ``q_i <- q_i * exp(eta * Lhat_i)`` (``Lhat_i``: mean
    loss of domain ``i`` in the batch, 0 when absent), renormalises ``q`` (kept as log-weights,
    so it stays on the simplex), then returns ``sum_i q_i * Lhat_i``. With ``eta = 0`` that is
    the uniform average of the domain means. ``end_epoch`` is a no-op returning ``q``.
    """

    _parameter_constraints = {
        "num_domains": [Interval(int, 1, math.inf, closed="left")],
        "eta": [Interval(float, 0, math.inf, closed="left")],
    }

    log_q: torch.Tensor

    def __init__(self, num_domains: int, eta: float = 0.01) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"num_domains": num_domains, "eta": eta}, owner="GroupDROWeights")
        self.num_domains, self.eta = int(num_domains), float(eta)
        self.register_buffer("log_q", torch.full((num_domains,), -math.log(num_domains), dtype=torch.float64))

    def extra_repr(self) -> str:
        return f"num_domains={self.num_domains}, eta={self.eta}"

    @property
    def weights(self) -> torch.Tensor:
        """The current ``q`` (N,), on the simplex."""
        return torch.softmax(self.log_q, 0)

    def forward(self, per_sample_losses: torch.Tensor, domain_ids: torch.Tensor) -> torch.Tensor:
        _check_losses_domains(per_sample_losses, domain_ids, self.num_domains)
        sums, counts = _sums_counts(per_sample_losses, domain_ids, self.num_domains)
        means = sums / counts.clamp(min=1)
        if self.training:
            with torch.no_grad():
                self.log_q += self.eta * means.detach().to(self.log_q)
                self.log_q -= torch.logsumexp(self.log_q, 0)
        return (self.weights.to(means) * means).sum()

    def end_epoch(self, average_losses: torch.Tensor | None = None) -> torch.Tensor:
        """No epoch-level update (GroupDRO updates every step); returns ``q``."""
        return self.weights.clone()


# --------------------------------------------------------------------------- engine.fit adapter
Weighting = DomainPenalisation | GroupDROWeights


def _cross_entropy_per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target, reduction="none")


class DomainWeightedObjective:
    """``compute_loss(model, batch)`` for :func:`paperzoo.engine.fit` with batches
    ``(x, y, domain_ids)``: the per-sample loss of ``model(x)`` weighted by ``weighting``
    (``None``: plain mean, ERM).

    ``fit`` has no epoch hook, so the objective counts its calls: before the first step of each
    new epoch (every ``steps_per_epoch`` calls, i.e. ``len(loader)``) it calls
    ``weighting.end_epoch``; call :meth:`finish` after ``fit`` for the update after the last
    epoch. It assumes ``fit`` runs whole epochs from step 0 (no resume from a mid-run checkpoint).

    Args:
        weighting: :class:`DomainPenalisation`, :class:`GroupDROWeights` or ``None``.
        steps_per_epoch: optimiser steps per epoch (``len(loader)``).
        per_sample_loss: ``(outputs, y) -> (B,)`` losses; default cross-entropy.
        source: ``"train_running"`` (averages of the epoch's training losses) or ``"eval_pass"``
            (averages recomputed on ``eval_data`` with the model in eval mode, no gradient).
        eval_data: ``(x, y, domain_ids)`` tensors for ``"eval_pass"``.
        eval_batch_size: chunk size of the evaluation pass.

    ``weight_history`` holds the weights in force during each epoch (the first one included) and,
    after :meth:`finish`, those of the update after the last epoch.
    """

    def __init__(
        self,
        weighting: Weighting | None,
        steps_per_epoch: int,
        per_sample_loss: Callable[[Any, torch.Tensor], torch.Tensor] = _cross_entropy_per_sample,
        *,
        source: str = "train_running",
        eval_data: Sequence[torch.Tensor] | None = None,
        eval_batch_size: int = 4096,
    ) -> None:
        validate_params(
            {
                "steps_per_epoch": [Interval(int, 1, math.inf, closed="left")],
                "source": [Options(_SOURCES)],
                "eval_batch_size": [Interval(int, 1, math.inf, closed="left")],
            },
            {"steps_per_epoch": steps_per_epoch, "source": source, "eval_batch_size": eval_batch_size},
            owner="DomainWeightedObjective",
        )
        if source == "eval_pass" and (eval_data is None or len(eval_data) != 3):
            raise ValueError("DomainWeightedObjective: source='eval_pass' needs eval_data=(x, y, domain_ids)")
        self.weighting, self.steps_per_epoch = weighting, int(steps_per_epoch)
        self.per_sample_loss, self.source = per_sample_loss, source
        self.eval_data, self.eval_batch_size = eval_data, int(eval_batch_size)
        self.calls = 0
        self.weight_history: list[list[float]] = []

    def _record(self) -> None:
        if self.weighting is not None:
            self.weight_history.append([float(v) for v in self.weighting.weights.detach().cpu()])

    @torch.no_grad()
    def _eval_averages(self, model: nn.Module) -> torch.Tensor:
        assert self.eval_data is not None and isinstance(self.weighting, DomainPenalisation)
        x, y, d = self.eval_data
        was_training = model.training
        model.eval()
        sums = torch.zeros(self.weighting.num_domains, dtype=torch.float64)
        counts = torch.zeros_like(sums)
        for i in range(0, len(y), self.eval_batch_size):  # chunks of a batch, not samples
            sl = slice(i, i + self.eval_batch_size)
            s, c = _sums_counts(self.per_sample_loss(model(x[sl]), y[sl]).double().cpu(), d[sl].cpu(), len(sums))
            sums += s
            counts += c
        model.train(was_training)
        return torch.where(counts > 0, sums / counts.clamp(min=1), torch.nan)

    def _end_epoch(self, model: nn.Module) -> None:
        if self.weighting is None:
            return
        if self.source == "eval_pass" and isinstance(self.weighting, DomainPenalisation):
            self.weighting.end_epoch(self._eval_averages(model))
        else:
            self.weighting.end_epoch()

    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.calls == 0:
            self._record()
        elif self.calls % self.steps_per_epoch == 0:
            self._end_epoch(model)
            self._record()
        self.calls += 1
        x, y, d = batch[0], batch[1], batch[2]
        losses = self.per_sample_loss(model(x), y)
        if self.weighting is None:
            return losses.mean()
        return self.weighting(losses, d)

    def finish(self, model: nn.Module) -> None:
        """The weight update after the last epoch (after ``fit`` returns)."""
        if self.calls and self.calls % self.steps_per_epoch == 0:
            self._end_epoch(model)
            self._record()
