"""The one home of input validation at paperzoo's public entry points.

Two kinds of checks, each with one wording:

* **Scalar parameters** (hyper-parameters, sizes, options) are declared, not hand-written, in
  the style of scikit-learn's ``_parameter_constraints``: a class lists them in a
  ``_parameter_constraints`` class attribute and a function in a module constant, as
  ``{name: [constraint, ...]}``; a value is valid when it satisfies any constraint of its list.
  :func:`validate_params` raises ``ValueError("<owner>: <name> must be <allowed>, got <value>")``,
  e.g. ``"ZLoss: a must be a float in (0, inf), got -1"``. Constraints are :class:`Interval`,
  :class:`Options` and ``None`` (the value ``None`` is allowed).
* **Tensors** (shapes, dtypes, label ranges, NaN, empty batches): the ``check_*`` functions
  below raise ``ValueError`` (``TypeError`` for a wrong dtype) naming the argument and the
  expected shape.

Code behind the boundary trusts its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any, Literal

import torch

__all__ = [
    "REDUCTIONS",
    "Constraint",
    "Interval",
    "Options",
    "check_embeddings_labels",
    "check_finite",
    "check_labels",
    "check_logits_target",
    "check_sample_weight",
    "check_similarity_labels",
    "validate_params",
]

REDUCTIONS = ("mean", "sum", "none")

Closed = Literal["left", "right", "both", "neither"]


# --------------------------------------------------------------------------- scalar constraints
class Interval:
    """Numbers of one kind in an interval, e.g. ``Interval(float, 0, math.inf, closed="neither")``
    is ``(0, inf)``: every finite positive number.

    Args:
        kind: ``int`` (Python or NumPy integers) or ``float`` (any real number: Python or NumPy
            ints and floats). ``bool`` is never accepted, nor NaN.
        low, high: the bounds; ``-math.inf`` / ``math.inf`` for an unbounded side.
        closed: which bounds belong to the interval. An infinite bound is a value like any
            other: ``Interval(float, 0, math.inf, closed="both")`` accepts ``math.inf``,
            ``closed="left"`` does not.
    """

    def __init__(self, kind: type[int] | type[float], low: float, high: float, *, closed: Closed) -> None:
        if kind not in (int, float):
            raise TypeError(f"Interval kind must be int or float, got {kind!r}")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"Interval closed must be 'left', 'right', 'both' or 'neither', got {closed!r}")
        if not low <= high:
            raise ValueError(f"Interval needs low <= high, got [{low}, {high}]")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, Integral if self.kind is int else Real):
            return False
        if not isinstance(value, Integral) and math.isnan(value):
            return False
        above = value >= self.low if self.closed in ("left", "both") else value > self.low
        below = value <= self.high if self.closed in ("right", "both") else value < self.high
        return above and below

    def __str__(self) -> str:
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        noun = "an int" if self.kind is int else "a float"
        return f"{noun} in {left}{_bound(self.low)}, {_bound(self.high)}{right}"

    def __repr__(self) -> str:
        return f"Interval({self.kind.__name__}, {self.low!r}, {self.high!r}, closed={self.closed!r})"


class Options:
    """A finite set of allowed values, e.g. ``Options(("mean", "sum", "none"))``.

    A value matches an option when it is equal to it and of the same type (so ``True`` does
    not match ``1``). Options are listed in the order given (sets are sorted) in messages.
    """

    def __init__(self, values: Iterable[Any]) -> None:
        options = tuple(values)
        if isinstance(values, (set, frozenset)):
            options = tuple(sorted(options, key=repr))
        if not options:
            raise ValueError("Options needs at least one allowed value")
        self.values = options

    def is_satisfied_by(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def __str__(self) -> str:
        return "one of {" + ", ".join(repr(v) for v in self.values) + "}"

    def __repr__(self) -> str:
        return f"Options({self.values!r})"


Constraint = Interval | Options | None


def _bound(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def _describe(constraints: Sequence[Constraint]) -> str:
    return " or ".join("None" if c is None else str(c) for c in constraints)


def validate_params(constraints: Mapping[str, Sequence[Constraint]], params: Mapping[str, Any], *, owner: str) -> None:
    """Check each of ``params`` against its list in ``constraints`` (any constraint may match).

    Args:
        constraints: ``{name: [Interval | Options | None, ...]}``; every name in ``params``
            must have an entry (a missing one is a programming error: ``KeyError``).
        params: ``{name: value}``, the values to check.
        owner: the class or function the parameters belong to, for the message.

    Raises:
        ValueError: ``"<owner>: <name> must be <allowed>, got <value!r>"`` for the first
            invalid parameter, in the order of ``params``.
    """
    for name, value in params.items():
        allowed = constraints[name]
        if not any(value is None if c is None else c.is_satisfied_by(value) for c in allowed):
            raise ValueError(f"{owner}: {name} must be {_describe(allowed)}, got {value!r}")


# --------------------------------------------------------------------------- tensor checks
def check_finite(t: torch.Tensor, name: str) -> None:
    """``t`` has no NaN or infinite entry. The test looks at the extremes only: ``aminmax``
    propagates NaN and keeps infinities, and it is ~10x cheaper than ``isfinite(t).all()``,
    which allocates a mask as large as ``t`` on every loss call."""
    if t.is_floating_point() and t.numel() > 0:
        lo, hi = torch.aminmax(t.detach())
        if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or infinite values")


def check_labels(labels: torch.Tensor, n: int, name: str = "labels", num_classes: int | None = None) -> None:
    """``labels`` must be an integer tensor of shape (n,), in [0, num_classes) if given."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if num_classes is not None and n > 0:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}), got values in [{lo}, {hi}]")


def check_logits_target(logits: torch.Tensor, target: torch.Tensor, *, min_classes: int = 2) -> None:
    """Classification-loss boundary: logits (B, C) float, finite, B >= 1; target (B,) in [0, C)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch.Tensor of shape (B, C)")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
    b, c = logits.shape
    if b == 0:
        raise ValueError("empty batch: logits has 0 rows")
    if c < min_classes:
        raise ValueError(f"logits must have at least {min_classes} classes (columns), got {c}")
    check_finite(logits, "logits")
    check_labels(target, b, "target", c)


def check_logits_multihot(logits: torch.Tensor, targets: torch.Tensor) -> None:
    """Multi-label boundary: logits (B, C) float, finite, B >= 1; targets (B, C) of 0s and 1s
    (any real dtype or bool)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch.Tensor of shape (B, C)")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("empty batch: logits has 0 rows")
    check_finite(logits, "logits")
    if not isinstance(targets, torch.Tensor) or targets.is_complex():
        raise TypeError(f"targets must be a real torch.Tensor of shape {tuple(logits.shape)} (multi-hot)")
    if targets.shape != logits.shape:
        raise ValueError(f"targets must have the shape of logits {tuple(logits.shape)}, got {tuple(targets.shape)}")
    if targets.dtype != torch.bool and not bool(((targets == 0) | (targets == 1)).all()):
        raise ValueError("targets must be multi-hot: every entry 0 or 1")


def check_sample_weight(weight: torch.Tensor, n: int) -> None:
    """Per-sample weights: a real (floating or integer) tensor of shape (n,), finite, >= 0."""
    if not isinstance(weight, torch.Tensor) or weight.dtype == torch.bool or weight.is_complex():
        raise TypeError(f"weight must be a real torch.Tensor of shape ({n},)")
    if weight.shape != (n,):
        raise ValueError(f"weight must have shape ({n},), got {tuple(weight.shape)}")
    check_finite(weight, "weight")
    if n > 0 and bool((weight < 0).any()):
        raise ValueError(f"weight must be non-negative, got a minimum of {float(weight.min())}")


def check_embeddings_labels(embeddings: torch.Tensor, labels: torch.Tensor | None) -> None:
    """Metric-loss boundary: embeddings (B, D) float, finite, B >= 1; labels (B,) integer."""
    if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
        raise TypeError("embeddings must be a floating-point torch.Tensor of shape (B, D)")
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must have shape (B, D), got {tuple(embeddings.shape)}")
    if embeddings.shape[0] == 0:
        raise ValueError("empty batch: embeddings has 0 rows")
    check_finite(embeddings, "embeddings")
    if labels is not None:
        check_labels(labels, embeddings.shape[0])


def check_similarity_labels(S: torch.Tensor, labels: torch.Tensor) -> None:
    """Pair-loss boundary: a square, finite, floating (B, B) similarity matrix, B >= 1, and
    integer labels (B,)."""
    if not isinstance(S, torch.Tensor) or not S.is_floating_point():
        raise TypeError("S must be a floating-point torch.Tensor of shape (B, B)")
    if S.dim() != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square similarity matrix of shape (B, B), got {tuple(S.shape)}")
    if S.shape[0] == 0:
        raise ValueError("empty batch: S has 0 rows")
    check_finite(S, "S")
    check_labels(labels, S.shape[0])
