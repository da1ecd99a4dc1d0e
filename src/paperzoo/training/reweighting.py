"""Dynamic loss-based sample reweighting (Sow, Woisetschläger, Bulusu, Wang, Jacobsen & Liang,
"Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining", ICLR 2025,
arXiv:2502.06733).

Each mini-batch is reweighted online from the per-sample losses the model already computes; no
reference model and no per-sample history. The rule comes from a min-max objective over sample
weights with a KL penalty toward uniform (temperature ``r``), whose solution is an exponential
tilt of a shaping function of the normalised losses:

* min-max normalisation to ``[-delta, delta]``:
  ``h_i = (2 delta l_i - delta (l_max + l_min)) / max(l_max - l_min, 1e-6)``
  (:func:`normalize_losses`);
* a strategy ``f_i = F(h_i)`` (:data:`STRATEGIES`): LinUpper ``min(h + delta, delta)``,
  Quadratic ``1 - h^2 / delta^2``, Extremes ``|h|``, Upper ``0.5 h + 0.5 delta``, and true
  uniform;
* the KL-regularised weights ``w_i = softmax(f / r)_i``, summing to 1 over the global batch
  (:func:`loss_based_weights`), computed without gradient;
* the loss that is back-propagated, as in the authors' released trainer:
  ``L = N * sum_i w_i * len_norm_i * l_i`` with ``len_norm_i = n_i / sum_j n_j`` (the share of the
  local batch's target tokens) and ``N`` the global batch size, so that uniform weights give the
  token-weighted mean loss (:func:`reweighted_loss`); the first ``warmup_steps`` steps use uniform
  weights (the released configurations' 1000 "burn-out" steps).

:class:`LossReweighter` holds the strategy, ``r``, ``delta``, the warm-up and a step counter, and
gathers the losses of all data-parallel ranks when ``torch.distributed`` is initialised (the
weights are normalised over the global batch). :class:`ReweightedObjective` wraps any per-sample
loss ``(model, batch) -> losses`` into the ``compute_loss(model, batch)`` that
:func:`paperzoo.engine.fit` drives. :func:`per_sequence_lm_loss` is the causal-LM per-sequence
loss (mean next-token cross-entropy over a sequence's active target tokens).

Pure PyTorch; nothing here is a wrapper of another library.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, check_logits_target, validate_params

__all__ = [
    "STRATEGIES",
    "LossReweighter",
    "ReweightedCrossEntropy",
    "ReweightedObjective",
    "loss_based_weights",
    "normalize_losses",
    "per_sequence_lm_loss",
    "reweighted_loss",
    "strategy_scores",
]

#: The spread below which the min-max normalisation's denominator is clamped (released code).
SPREAD_FLOOR = 1e-6


def _linupper(h: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.clamp(h + delta, max=delta)


def _quadratic(h: torch.Tensor, delta: float) -> torch.Tensor:
    return 1.0 - h.square() / (delta * delta)


def _extremes(h: torch.Tensor, delta: float) -> torch.Tensor:
    return h.abs()


def _upper(h: torch.Tensor, delta: float) -> torch.Tensor:
    return 0.5 * h + 0.5 * delta


def _uniform(h: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.zeros_like(h)


#: Strategy name -> shaping function ``F(h, delta)`` of the normalised losses. ``"uniform"`` is
#: truly uniform (``F = 0``); the authors' README key of that name tilts toward high loss instead.
STRATEGIES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "linupper": _linupper,
    "quadratic": _quadratic,
    "extremes": _extremes,
    "upper": _upper,
    "uniform": _uniform,
}

_CONSTRAINTS: dict[str, list[Any]] = {
    "strategy": [Options(tuple(STRATEGIES))],
    "r": [Interval(float, 0.0, math.inf, closed="neither")],
    "delta": [Interval(float, 0.0, math.inf, closed="neither")],
    "warmup_steps": [Interval(int, 0, math.inf, closed="left")],
    "distributed": [Options((True, False)), None],
    "ignore_index": [Interval(int, -math.inf, math.inf, closed="neither")],
}


def _check_losses(losses: torch.Tensor, name: str = "losses") -> None:
    if not isinstance(losses, torch.Tensor) or not losses.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (B,)")
    if losses.dim() != 1:
        raise ValueError(f"{name} must have shape (B,), got {tuple(losses.shape)}")
    if losses.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 entries")
    check_finite(losses, name)


def _check_token_counts(token_counts: torch.Tensor, n: int) -> None:
    if not isinstance(token_counts, torch.Tensor) or token_counts.dtype == torch.bool or token_counts.is_complex():
        raise TypeError(f"token_counts must be a real torch.Tensor of shape ({n},)")
    if token_counts.shape != (n,):
        raise ValueError(f"token_counts must have shape ({n},), got {tuple(token_counts.shape)}")
    check_finite(token_counts, "token_counts")
    if bool((token_counts < 0).any()):
        raise ValueError(f"token_counts must be non-negative, got a minimum of {float(token_counts.min())}")
    if not bool((token_counts > 0).any()):
        raise ValueError("token_counts must have a positive sum (every sequence has 0 target tokens)")


# --------------------------------------------------------------------------- the weighting rule
def normalize_losses(losses: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Min-max normalise per-sample losses (B,) to ``[-delta, delta]`` (the released ``h_func``).

    ``h = (2 delta l - delta (l_max + l_min)) / max(l_max - l_min, 1e-6)``; all-equal losses give
    ``h = 0`` (no NaN). Invariant to ``l -> a l + b`` with ``a > 0`` (up to the clamp). Detached.
    """
    validate_params(_CONSTRAINTS, {"delta": delta}, owner="normalize_losses")
    _check_losses(losses)
    return _normalize(losses.detach(), delta)


def _normalize(losses: torch.Tensor, delta: float) -> torch.Tensor:
    lo, hi = torch.aminmax(losses)
    spread = torch.clamp(hi - lo, min=SPREAD_FLOOR)
    return (2.0 * delta * losses - delta * (hi + lo)) / spread


def strategy_scores(h: torch.Tensor, strategy: str = "linupper", delta: float = 1.0) -> torch.Tensor:
    """The strategy's shaping ``F(h)`` of normalised losses ``h`` (see :data:`STRATEGIES`)."""
    validate_params(_CONSTRAINTS, {"strategy": strategy, "delta": delta}, owner="strategy_scores")
    _check_losses(h, "h")
    return STRATEGIES[strategy](h, delta)


def loss_based_weights(
    losses: torch.Tensor, strategy: str = "linupper", r: float = 1.0, delta: float = 1.0
) -> torch.Tensor:
    """Sample weights (B,), non-negative and summing to 1, from per-sample losses (B,).

    ``w = softmax(F(h) / r)`` with ``h`` the min-max normalised losses (the released ``h_func``,
    ``f_func_*`` and ``g_func``); computed without gradient, in the losses' dtype. Larger ``r``
    is closer to uniform; ``"uniform"`` gives exactly ``1/B``.
    """
    validate_params(_CONSTRAINTS, {"strategy": strategy, "r": r, "delta": delta}, owner="loss_based_weights")
    _check_losses(losses)
    return _weights(losses.detach(), strategy, r, delta)


def _weights(losses: torch.Tensor, strategy: str, r: float, delta: float) -> torch.Tensor:
    if strategy == "uniform":
        return torch.full_like(losses, 1.0 / losses.shape[0])
    f = STRATEGIES[strategy](_normalize(losses, delta), delta)
    return torch.softmax(f / r, dim=0)


def reweighted_loss(
    losses: torch.Tensor,
    weights: torch.Tensor,
    token_counts: torch.Tensor | None = None,
    global_batch_size: int | None = None,
) -> torch.Tensor:
    """The back-propagated loss of the released trainer: ``N * sum_i w_i * len_norm_i * l_i``.

    ``losses`` (B,) carry the gradient; ``weights`` (B,) are treated as constants (detached);
    ``len_norm_i = n_i / sum_j n_j`` over this batch's ``token_counts`` (``1/B`` when None);
    ``N = global_batch_size`` (default ``B``), the number of samples the weights were normalised
    over, so that uniform weights ``1/N`` give the token-weighted mean of ``losses``.
    """
    _check_losses(losses)
    n = losses.shape[0]
    if not isinstance(weights, torch.Tensor) or weights.shape != (n,):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights must have shape ({n},), got {shape}")
    check_finite(weights, "weights")
    if bool((weights < 0).any()):
        raise ValueError(f"weights must be non-negative, got a minimum of {float(weights.min())}")
    if token_counts is not None:
        _check_token_counts(token_counts, n)
    size = n if global_batch_size is None else global_batch_size
    validate_params({"global_batch_size": [Interval(int, n, math.inf, closed="left")]}, {"global_batch_size": size},
                    owner="reweighted_loss")  # fmt: skip
    return _combine(losses, weights.detach(), token_counts, size)


def _combine(losses: torch.Tensor, w: torch.Tensor, token_counts: torch.Tensor | None, size: int) -> torch.Tensor:
    if token_counts is None:
        len_norm = torch.full_like(w, 1.0 / losses.shape[0])
    else:
        counts = token_counts.detach().to(w.dtype)
        len_norm = counts / counts.sum()
    return size * (w.to(losses.dtype) * len_norm.to(losses.dtype) * losses).sum()


# --------------------------------------------------------------------------- causal LM loss
def per_sequence_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence next-token loss of a causal LM: ``(losses (B,), n_tokens (B,))``.

    ``logits`` (B, T, V) predict the token after each position, so ``logits[:, :-1]`` is scored
    against ``labels[:, 1:]``; ``losses_i`` is the mean cross-entropy over sequence ``i``'s
    target tokens that are not ``ignore_index`` (0 for a sequence with none), ``n_tokens_i``
    their number.
    """
    validate_params(_CONSTRAINTS, {"ignore_index": ignore_index}, owner="per_sequence_lm_loss")
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() != 3:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a floating-point tensor of shape (B, T, V), got {shape}")
    b, t, v = logits.shape
    if b == 0:
        raise ValueError("empty batch: logits has 0 sequences")
    if t < 2:
        raise ValueError(f"logits must have at least 2 positions (T >= 2) for next-token targets, got T = {t}")
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError("labels must be an integer torch.Tensor of shape (B, T)")
    if labels.shape != (b, t):
        raise ValueError(f"labels must have shape ({b}, {t}), got {tuple(labels.shape)}")
    check_finite(logits, "logits")
    target = labels[:, 1:]
    active = target != ignore_index
    if bool(active.any()):
        lo, hi = int(target[active].min()), int(target[active].max())
        if lo < 0 or hi >= v:
            raise ValueError(f"labels must lie in [0, {v}) or equal ignore_index, got values in [{lo}, {hi}]")
    flat = logits[:, :-1].reshape(-1, v)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()  # half-precision logits are scored in float32
    token = F.cross_entropy(flat, target.reshape(-1), ignore_index=ignore_index, reduction="none").view(b, t - 1)
    n_tokens = active.sum(1)
    losses = token.sum(1) / n_tokens.clamp(min=1)
    return losses.to(logits.dtype), n_tokens


# --------------------------------------------------------------------------- the engine hook
def _gather(losses: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' losses in rank order (sizes may differ) and where this rank's start."""
    import torch.distributed as dist

    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([losses.shape[0]], device=losses.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    padded = torch.zeros(max(counts), dtype=losses.dtype, device=losses.device)
    padded[: losses.shape[0]] = losses
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]), sum(counts[:rank])


class LossReweighter(nn.Module):
    """Turn per-sample losses into the paper's reweighted training loss, step by step.

    Args:
        strategy: a key of :data:`STRATEGIES` (``"linupper"``, ``"quadratic"``, ``"extremes"``,
            ``"upper"``, ``"uniform"``).
        r: temperature of the KL regulariser (the released configurations' ``kl_reg``: 1.0
            or 0.4); larger is closer to uniform.
        delta: half-width of the normalised loss range (1 in all released configurations).
        warmup_steps: steps trained with uniform weights first (the released ``burnout_steps``,
            1000 of 20k steps).
        distributed: gather the losses of all ranks before weighting (the weights are normalised
            over the global batch) - ``None``: when ``torch.distributed`` is initialised with
            more than one rank.

    ``forward(losses, token_counts=None, step=None)`` returns the scalar loss of
    :func:`reweighted_loss`; in training mode each call counts one step (``steps``, saved in
    the ``state_dict``), and ``step`` overrides the counter. The weights of the last call are in
    ``last_weights`` (this rank's share of the global weights).
    """

    def __init__(
        self,
        strategy: str = "linupper",
        r: float = 1.0,
        delta: float = 1.0,
        warmup_steps: int = 1000,
        distributed: bool | None = None,
    ) -> None:
        super().__init__()
        params = {"strategy": strategy, "r": r, "delta": delta, "warmup_steps": warmup_steps}
        validate_params(_CONSTRAINTS, {**params, "distributed": distributed}, owner="LossReweighter")
        self.strategy, self.r, self.delta = strategy, float(r), float(delta)
        self.warmup_steps, self.distributed = int(warmup_steps), distributed
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.last_weights: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"strategy={self.strategy!r}, r={self.r:g}, delta={self.delta:g}, warmup_steps={self.warmup_steps}"

    def _gathering(self) -> bool:
        import torch.distributed as dist

        if self.distributed is False:
            return False
        ready = dist.is_available() and dist.is_initialized()
        if self.distributed and not ready:
            raise RuntimeError("LossReweighter: distributed=True needs an initialised torch.distributed process group")
        return ready and dist.get_world_size() > 1

    def weights(self, losses: torch.Tensor, step: int | None = None) -> tuple[torch.Tensor, int]:
        """This rank's weights (B,) and the global batch size they were normalised over."""
        _check_losses(losses)
        current = int(self.steps) if step is None else int(step)
        strategy = "uniform" if current < self.warmup_steps else self.strategy
        detached = losses.detach()
        if self._gathering():
            everyone, start = _gather(detached)
            w = _weights(everyone, strategy, self.r, self.delta)
            return w[start : start + losses.shape[0]], everyone.shape[0]
        return _weights(detached, strategy, self.r, self.delta), losses.shape[0]

    def forward(
        self, losses: torch.Tensor, token_counts: torch.Tensor | None = None, step: int | None = None
    ) -> torch.Tensor:
        if step is not None:
            validate_params(
                {"step": [Interval(int, 0, math.inf, closed="left")]}, {"step": step}, owner="LossReweighter"
            )
        _check_losses(losses)
        if token_counts is not None:
            _check_token_counts(token_counts, losses.shape[0])
        with torch.no_grad():
            w, size = self.weights(losses, step)
        self.last_weights = w
        if self.training:
            self.steps += 1
        return _combine(losses, w, token_counts, size)


class ReweightedCrossEntropy(nn.Module):
    """Cross-entropy with the paper's online instance weights, as a drop-in classification loss
    ``forward(logits (B, C), target (B,))`` (e.g. a ``paperzoo compare`` method): the per-example
    ``F.cross_entropy`` fed to a :class:`LossReweighter` built from the same arguments. A thin
    composition; :class:`ReweightedObjective` does the same for any per-sample loss."""

    def __init__(
        self, strategy: str = "linupper", r: float = 1.0, delta: float = 1.0, warmup_steps: int = 1000
    ) -> None:
        super().__init__()
        self.reweighter = LossReweighter(strategy, r, delta, warmup_steps)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_logits_target(logits, target)
        return self.reweighter(F.cross_entropy(logits, target, reduction="none"))


PerSampleLoss = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]


class ReweightedObjective:
    """The ``compute_loss(model, batch)`` hook of :func:`paperzoo.engine.fit` for any per-sample
    loss: ``ReweightedObjective(per_sample, LossReweighter(...))``.

    ``per_sample(model, batch)`` returns the losses (B,) with gradient, or ``(losses,
    token_counts)`` for sequences of different lengths (as :func:`per_sequence_lm_loss` does).
    :meth:`classification` and :meth:`causal_lm` build the two common cases.
    """

    def __init__(self, per_sample: PerSampleLoss, reweighter: LossReweighter) -> None:
        if not callable(per_sample):
            raise TypeError(f"per_sample must be callable (model, batch) -> losses, got {type(per_sample).__name__}")
        if not isinstance(reweighter, LossReweighter):
            raise TypeError(f"reweighter must be a LossReweighter, got {type(reweighter).__name__}")
        self.per_sample, self.reweighter = per_sample, reweighter

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        out = self.per_sample(model, batch)
        losses, counts = out if isinstance(out, tuple) else (out, None)
        return self.reweighter(losses, counts)

    @classmethod
    def classification(cls, reweighter: LossReweighter) -> ReweightedObjective:
        """Per-example cross-entropy of ``model(x)`` for batches ``(x, y, ...)``."""
        return cls(_per_example_ce, reweighter)

    @classmethod
    def causal_lm(cls, reweighter: LossReweighter, ignore_index: int = -100) -> ReweightedObjective:
        """:func:`per_sequence_lm_loss` of ``model(tokens)`` (logits (B, T, V)) for batches
        ``tokens`` (B, T) or ``(tokens, labels, ...)``; labels default to the tokens."""
        validate_params(_CONSTRAINTS, {"ignore_index": ignore_index}, owner="ReweightedObjective.causal_lm")
        return cls(_LMPerSequence(ignore_index), reweighter)


def _per_example_ce(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch[0], batch[1]
    return F.cross_entropy(model(x), y, reduction="none")


class _LMPerSequence:
    def __init__(self, ignore_index: int) -> None:
        self.ignore_index = ignore_index

    def __call__(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, torch.Tensor):
            tokens, labels = batch, batch
        else:
            tokens = batch[0]
            labels = batch[1] if len(batch) > 1 else batch[0]
        return per_sequence_lm_loss(model(tokens), labels, self.ignore_index)


def _linupper_after_burn_out() -> ReweightedCrossEntropy:
    """The benchmark's factory: LinUpper weights from the first step."""
    return ReweightedCrossEntropy("linupper", warmup_steps=0)
