"""Logit distillation: Dual-Head Knowledge Distillation (DHKD) of Yang, Zong, Huang, Feng & An,
"Dual-Head Knowledge Distillation: Enhancing Logits Utilization with an Auxiliary Head"
(KDD 2025, arXiv:2411.08937), and the classic softmax distillation of Hinton, Vinyals & Dean
(2015) as its baseline.

The paper's observation: a *logit-level* distillation loss (BinaryKL, a per-class sigmoid KL
between teacher and student logits, which unlike softmax KD also sees a per-sample logit shift)
added to cross-entropy on the *same* linear classifier makes the student worse, because the two
losses pull the classifier in conflicting directions (the neural-collapse analysis of the
paper), while on the backbone they agree. DHKD therefore gives the student two heads on one
backbone feature: head 1 (used at inference) is trained by cross-entropy alone, the auxiliary
head 2 by the logit-level loss alone, so the backbone learns from both signals::

    L = gamma * CE(z1, y) + alpha * BinaryKL-Norm(z2, t)

with the released defaults gamma = 1, alpha = 1 (0.1 on ImageNet), T = 2. The released DHKD
objective has no softmax-KD term. An optional gradient alignment (a one-sided PCGrad of the
distillation gradient against the cross-entropy gradient over all student parameters) is the
``--ga`` option of the official code.

Components (all losses average over the batch and scale by ``T**2`` as the official code does):

* :func:`binary_kl` / :class:`BinaryKLLoss`: per class the Bernoulli KL
  ``KL(sigmoid(t/T) || sigmoid(z/T))``, summed over classes;
* :func:`binary_kl_norm` / :class:`BinaryKLNormLoss`: the normalised form the released DHKD
  uses, which depends only on ``z - t``; it equals ``sum_k log cosh((z_k - t_k) / (2T))``
  exactly and is computed in that stable form (the sigmoid form of the official code is kept as
  :func:`_reference_binary_kl_norm`, the naive reference);
* :func:`hinton_kd` / :class:`HintonKDLoss`: ``T**2 * KL(softmax(t/T) || softmax(z/T))``,
  the baseline (``--distill kd``, T = 4);
* :class:`DHKDLoss`: the two-head objective above, returning its terms;
* :func:`align_gradients`, :func:`ga_backward` and :func:`aligned_surrogate`: the gradient
  alignment, for a custom loop or, through a surrogate loss, for :func:`paperzoo.engine.fit`;
* :class:`DHKDObjective` and :class:`HintonKDObjective`: ``compute_loss(model, batch)``
  callables that :func:`paperzoo.engine.fit` drives (the training loop itself is the engine's).

The student with its two heads is :class:`paperzoo.models.dual_head.DualHeadClassifier`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, check_labels, validate_params
from paperzoo.losses.base import upcast_low_precision

__all__ = [
    "BinaryKLLoss",
    "BinaryKLNormLoss",
    "DHKDLoss",
    "DHKDObjective",
    "HintonKDLoss",
    "HintonKDObjective",
    "align_gradients",
    "aligned_surrogate",
    "binary_kl",
    "binary_kl_norm",
    "ga_backward",
    "gradient_cosine",
    "hinton_kd",
]

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "temperature": [Interval(float, 0, math.inf, closed="neither")],
    "eps": [Interval(float, 0, 0.5, closed="neither")],
    "gamma": [Interval(float, 0, math.inf, closed="left")],
    "alpha": [Interval(float, 0, math.inf, closed="left")],
    "kd_head": [Options(("aux", "main"))],
}


# --------------------------------------------------------------------------- input checks
def _check_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Both (N, K) floating, finite, N >= 1, of the same shape."""
    for name, t in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (N, K)")
        if t.dim() != 2:
            raise ValueError(f"{name} must have shape (N, K), got {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError(f"empty batch: {name} has 0 rows")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "teacher_logits must have the shape of student_logits "
            f"{tuple(student_logits.shape)}, got {tuple(teacher_logits.shape)}"
        )
    check_finite(student_logits, "student_logits")
    check_finite(teacher_logits, "teacher_logits")


def _prepare(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, owner: str, **params: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_pair(student_logits, teacher_logits)
    validate_params(_PARAMETER_CONSTRAINTS, params, owner=owner)
    z = upcast_low_precision(student_logits)
    # the teacher is a fixed target: no gradient flows into it
    t = upcast_low_precision(teacher_logits).detach().to(z.dtype)
    return z, t


# --------------------------------------------------------------------------- core (trusted inputs)
class _BinaryKLNormFn(torch.autograd.Function):
    """``(T**2 / N) * sum log cosh((z - t) / (2T))`` with a hand-written backward
    ``(T / (2N)) * tanh((z - t) / (2T))``: two passes fewer than autograd through the
    elementwise ops, and one saved tensor. ``log cosh d = |d| + log1p(expm1(-2|d|) / 2)``,
    finite for any finite d. The teacher gets no gradient; no double backward."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
        d = torch.sub(z, t).mul_(0.5 / temperature)
        a = d.abs()
        total = a.mul(-2.0).expm1_().mul_(0.5).log1p_().add_(a).sum()
        n = z.shape[0]
        ctx.save_for_backward(d)
        ctx.scale = temperature / (2.0 * n)
        return total * (temperature * temperature / n)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (d,) = ctx.saved_tensors
        return torch.tanh(d).mul_(grad * ctx.scale), None, None


def _binary_kl_norm(z: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    return _BinaryKLNormFn.apply(z, t, temperature)


def _binary_kl(z: torch.Tensor, t: torch.Tensor, temperature: float, eps: float) -> torch.Tensor:
    """Bernoulli KL with the official clamp of the probabilities to [eps, 1 - eps], written with
    log-sigmoids where the clamp is inactive so that large logits keep their precision."""
    n = z.shape[0]
    zs, ts = z / temperature, t / temperature
    log_lo, log_hi = math.log(eps), math.log1p(-eps)
    # log q and log(1 - q) of the clamped probabilities q = clamp(sigmoid(u), eps, 1 - eps)
    log_qs, log_1m_qs = F.logsigmoid(zs).clamp(log_lo, log_hi), F.logsigmoid(-zs).clamp(log_lo, log_hi)
    log_qt, log_1m_qt = F.logsigmoid(ts).clamp(log_lo, log_hi), F.logsigmoid(-ts).clamp(log_lo, log_hi)
    qt, one_m_qt = log_qt.exp(), log_1m_qt.exp()
    kl = qt * (log_qt - log_qs) + one_m_qt * (log_1m_qt - log_1m_qs)
    return kl.sum() * (temperature**2 / n)


def _hinton_kd(z: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    n = z.shape[0]
    log_ps = F.log_softmax(z / temperature, dim=1)
    log_pt = F.log_softmax(t / temperature, dim=1)
    return (log_pt.exp() * (log_pt - log_ps)).sum() * (temperature**2 / n)


# --------------------------------------------------------------------------- public functions
def binary_kl_norm(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """BinaryKL-Norm of the released DHKD: with ``r = sigmoid((z - t) / T)``,

    ``(T**2 / N) * sum_{n,k} [ 1/2 log(1/2 / r) + 1/2 log(1/2 / (1 - r)) ]
    = (T**2 / N) * sum_{n,k} log cosh((z_nk - t_nk) / (2T))``  (an exact identity),

    computed in the log-cosh form (stable for any finite logits). A logit-matching loss: 0 iff
    ``z == t``, about ``(z - t)**2 / 8`` per element for ``|z - t| << 2T`` and linear beyond;
    its gradient in ``z`` is ``(T / (2N)) * tanh((z - t) / (2T))``, bounded by ``T / (2N)``.
    Unlike softmax KD it penalises a per-sample shift of the student's logits; shifting both
    logits by the same amount leaves it unchanged.

    Args:
        student_logits: (N, K) student logits z (gradients flow into them).
        teacher_logits: (N, K) teacher logits t (treated as constants).
        temperature: T > 0 (the released default is 2).

    Returns:
        The batch-averaged scalar loss (float32 for half / bfloat16 inputs).

    >>> z = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.3, -0.7]], dtype=torch.float64)
    >>> t = torch.tensor([[2.0, -1.0, -0.5], [0.0, 1.3, -0.2]], dtype=torch.float64)
    >>> round(float(binary_kl_norm(z, t, 2.0)), 6)
    0.268643
    """
    z, t = _prepare(student_logits, teacher_logits, "binary_kl_norm", temperature=temperature)
    return _binary_kl_norm(z, t, float(temperature))


def binary_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0, eps: float = 1e-8
) -> torch.Tensor:
    """BinaryKL: per class the Bernoulli KL between ``q_t = sigmoid(t/T)`` and ``q_s = sigmoid(z/T)``
    (both clamped to ``[eps, 1 - eps]``, as the official code does), summed over classes,
    averaged over the batch and scaled by ``T**2``::

        (T**2 / N) * sum_{n,k} [ q_t log(q_t / q_s) + (1 - q_t) log((1 - q_t) / (1 - q_s)) ]

    Args:
        student_logits, teacher_logits: (N, K), as in :func:`binary_kl_norm`.
        temperature: T > 0 (default 2).
        eps: probability clamp in (0, 0.5) (default 1e-8).

    >>> z = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.3, -0.7]], dtype=torch.float64)
    >>> t = torch.tensor([[2.0, -1.0, -0.5], [0.0, 1.3, -0.2]], dtype=torch.float64)
    >>> round(float(binary_kl(z, t, 2.0)), 6)
    0.250691
    """
    z, t = _prepare(student_logits, teacher_logits, "binary_kl", temperature=temperature, eps=eps)
    return _binary_kl(z, t, float(temperature), float(eps))


def hinton_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Classic knowledge distillation (Hinton et al., 2015):
    ``(T**2 / N) * sum_n KL(softmax(t_n / T) || softmax(z_n / T))`` (the RepDistiller ``kd``
    loss, T = 4 by default). Invariant to a per-sample shift of either logit vector."""
    z, t = _prepare(student_logits, teacher_logits, "hinton_kd", temperature=temperature)
    return _hinton_kd(z, t, float(temperature))


def _reference_binary_kl_norm(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0, eps: float = 1e-8
) -> torch.Tensor:
    """The naive reference: the sigmoid/KL form of the official ``BinaryKLNorm`` (clamped ``r``),
    written as the paper's code writes it. Loses precision once ``|z - t| / T`` is large."""
    r = torch.sigmoid((student_logits - teacher_logits.detach()) / temperature).clamp(eps, 1 - eps)
    per = 0.5 * torch.log(0.5 / r) + 0.5 * torch.log(0.5 / (1 - r))
    return per.sum() * temperature**2 / student_logits.shape[0]


def _reference_binary_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0, eps: float = 1e-8
) -> torch.Tensor:
    """The naive reference BinaryKL: sigmoids clamped to ``[eps, 1 - eps]``, then the Bernoulli KL."""
    qs = torch.sigmoid(student_logits / temperature).clamp(eps, 1 - eps)
    qt = torch.sigmoid(teacher_logits.detach() / temperature).clamp(eps, 1 - eps)
    kl = qt * torch.log(qt / qs) + (1 - qt) * torch.log((1 - qt) / (1 - qs))
    return kl.sum() * temperature**2 / student_logits.shape[0]


# --------------------------------------------------------------------------- modules
class _DistillLoss(nn.Module):
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "temperature": _PARAMETER_CONSTRAINTS["temperature"]
    }

    def __init__(self, temperature: float) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"temperature": temperature}, owner=type(self).__name__)
        self.temperature = float(temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class BinaryKLNormLoss(_DistillLoss):
    """:func:`binary_kl_norm` as a module: ``forward(student_logits (N, K), teacher_logits (N, K))``.

    Args:
        temperature: T > 0 (default 2, the released DHKD value).
        eps: kept for the signature of the official code; the log-cosh form needs no clamp.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "temperature": _PARAMETER_CONSTRAINTS["temperature"],
        "eps": _PARAMETER_CONSTRAINTS["eps"],
    }

    def __init__(self, temperature: float = 2.0, eps: float = 1e-8) -> None:
        super().__init__(temperature)
        validate_params(self._parameter_constraints, {"eps": eps}, owner=type(self).__name__)
        self.eps = float(eps)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return binary_kl_norm(student_logits, teacher_logits, self.temperature)


class BinaryKLLoss(_DistillLoss):
    """:func:`binary_kl` as a module: ``forward(student_logits (N, K), teacher_logits (N, K))``.

    Args:
        temperature: T > 0 (default 2).
        eps: probability clamp in (0, 0.5) (default 1e-8, the official value).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "temperature": _PARAMETER_CONSTRAINTS["temperature"],
        "eps": _PARAMETER_CONSTRAINTS["eps"],
    }

    def __init__(self, temperature: float = 2.0, eps: float = 1e-8) -> None:
        super().__init__(temperature)
        validate_params(self._parameter_constraints, {"eps": eps}, owner=type(self).__name__)
        self.eps = float(eps)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return binary_kl(student_logits, teacher_logits, self.temperature, self.eps)


class HintonKDLoss(_DistillLoss):
    """:func:`hinton_kd` as a module (T = 4 by default)."""

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__(temperature)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return hinton_kd(student_logits, teacher_logits, self.temperature)


class DHKDLoss(nn.Module):
    """The DHKD objective ``gamma * CE(z1, y) + alpha * BinaryKL-Norm(z2, t)``: cross-entropy on
    the inference head's logits ``z1`` and the logit-level loss on the auxiliary head's ``z2``.

    ``forward(logits_main (N, K), logits_aux (N, K), teacher_logits (N, K), target (N,))``
    returns ``{"ce": gamma * CE, "kd": alpha * BinaryKL-Norm, "total": their sum}`` (the weighted
    terms, so ``total = ce + kd`` and each is the gradient source of its head). With
    ``alpha = 0`` it is plain cross-entropy on head 1.

    Args:
        gamma: weight of the cross-entropy (``-r``, default 1).
        alpha: weight of BinaryKL-Norm (``-a``, default 1; 0.1 on ImageNet in the paper).
        temperature: T of BinaryKL-Norm (default 2).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        k: _PARAMETER_CONSTRAINTS[k] for k in ("gamma", "alpha", "temperature")
    }

    def __init__(self, gamma: float = 1.0, alpha: float = 1.0, temperature: float = 2.0) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"gamma": gamma, "alpha": alpha, "temperature": temperature},
            owner=type(self).__name__,
        )
        self.gamma, self.alpha, self.temperature = float(gamma), float(alpha), float(temperature)

    def forward(
        self,
        logits_main: torch.Tensor,
        logits_aux: torch.Tensor,
        teacher_logits: torch.Tensor,
        target: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        _check_pair(logits_aux, teacher_logits)
        if not isinstance(logits_main, torch.Tensor) or logits_main.shape != logits_aux.shape:
            raise ValueError(
                f"logits_main must have the shape of logits_aux {tuple(logits_aux.shape)}, "
                f"got {tuple(getattr(logits_main, 'shape', ()))}"
            )
        check_finite(logits_main, "logits_main")
        check_labels(target, logits_main.shape[0], "target", logits_main.shape[1])
        ce = self.gamma * F.cross_entropy(upcast_low_precision(logits_main), target)
        z, t = upcast_low_precision(logits_aux), upcast_low_precision(teacher_logits).detach()
        kd = self.alpha * _binary_kl_norm(z, t.to(z.dtype), self.temperature)
        return {"ce": ce, "kd": kd, "total": ce + kd}

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}, temperature={self.temperature}"


# --------------------------------------------------------------------------- gradient alignment
def _flat_grads(loss: torch.Tensor, params: Sequence[torch.Tensor], retain_graph: bool) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(((x * y).sum() for x, y in zip(a, b)), torch.zeros((), dtype=a[0].dtype, device=a[0].device))


def _align(
    losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor], retain_graph: bool
) -> tuple[list[torch.Tensor], int]:
    """The aligned per-parameter gradient and how many gradients were projected."""
    if not losses:
        raise ValueError("losses must hold at least one scalar loss")
    if not params:
        raise ValueError("params must hold at least one parameter")
    for i, loss in enumerate(losses):
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise ValueError(f"losses[{i}] must be a scalar tensor")
    last = len(losses) - 1
    grads = [_flat_grads(loss, params, retain_graph=retain_graph or i < last) for i, loss in enumerate(losses)]
    g1 = grads[0]
    norm2 = _dot(g1, g1)
    total = [g.clone() for g in g1]
    projected = 0
    for g in grads[1:]:
        dot = _dot(g, g1)
        if bool(dot < 0) and bool(norm2 > 0):
            coef = dot / norm2
            g = [gi - coef * g1i for gi, g1i in zip(g, g1)]
            projected += 1
        total = [a + b for a, b in zip(total, g)]
    return total, projected


def align_gradients(
    losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor], *, retain_graph: bool = False
) -> list[torch.Tensor]:
    """The gradient alignment of DHKD (``--ga``): a one-sided PCGrad on the flattened gradient of
    all ``params``. The first loss is the anchor ``g1`` and is never modified; each further
    loss's gradient ``g_i`` that conflicts with it (``g_i . g1 < 0``) is projected off it,
    ``g_i <- g_i - (g_i . g1 / ||g1||^2) g1``. Parameters a loss does not reach contribute zeros.

    Returns the per-parameter sum ``g1 + sum_i g_i`` (after projection), one tensor per param.
    """
    return _align(losses, list(params), retain_graph)[0]


def ga_backward(losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor]) -> None:
    """Set ``p.grad`` of every ``params`` to the aligned gradient of :func:`align_gradients`
    (accumulating into an existing ``.grad`` as ``backward`` does); then call ``optimizer.step()``."""
    params = list(params)
    for p, g in zip(params, align_gradients(losses, params)):
        p.grad = g.detach().clone() if p.grad is None else p.grad + g.detach()


def aligned_surrogate(losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """A scalar whose value is ``sum(losses)`` and whose gradient in ``params`` is the aligned
    gradient of :func:`align_gradients`: return it from a ``compute_loss`` and
    :func:`paperzoo.engine.fit`'s own ``backward`` applies the alignment (one loop, no copy)."""
    return _aligned_surrogate(losses, list(params))[0]


def _aligned_surrogate(losses: Sequence[torch.Tensor], params: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
    aligned, projected = _align(losses, params, retain_graph=True)
    value = torch.stack([loss.detach() for loss in losses]).sum()
    linear = _dot([g.detach() for g in aligned], params)
    return value + linear - linear.detach(), projected


def gradient_cosine(
    loss_a: torch.Tensor, loss_b: torch.Tensor, params: Sequence[torch.Tensor], *, retain_graph: bool = True
) -> float:
    """Cosine between the gradients of two losses over ``params`` (flattened together); NaN when
    either gradient is zero on them. The paper's diagnostic of the conflict between the
    probability-level and the logit-level loss on the classifier."""
    params = list(params)
    ga = _flat_grads(loss_a, params, retain_graph=True)
    gb = _flat_grads(loss_b, params, retain_graph=retain_graph)
    na, nb = _dot(ga, ga).sqrt(), _dot(gb, gb).sqrt()
    if not bool(na > 0) or not bool(nb > 0):
        return float("nan")
    return float(_dot(ga, gb) / (na * nb))


# --------------------------------------------------------------------------- compute_loss objectives
def _heads(output: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(output, (tuple, list)):
        return output[0], (output[1] if len(output) > 1 else None)
    return output, None


class _Objective:
    """Shared by the objectives: the teacher (frozen, eval mode) or its logits in the batch."""

    def __init__(self, teacher: nn.Module | None) -> None:
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.teacher = teacher

    def teacher_logits(self, batch: Any) -> torch.Tensor:
        x = batch[0]
        if self.teacher is None:
            if len(batch) < 3:
                raise ValueError("without a teacher module the batch must be (x, y, teacher_logits)")
            return batch[2]
        self.teacher.eval()
        with torch.no_grad():
            return self.teacher(x)


class DHKDObjective(_Objective):
    """``compute_loss(model, batch)`` of DHKD for :func:`paperzoo.engine.fit`.

    ``model`` returns ``(logits_main, logits_aux)`` in train mode (a
    :class:`~paperzoo.models.dual_head.DualHeadClassifier`); ``batch`` is ``(x, y)`` with a
    ``teacher`` module, or ``(x, y, teacher_logits)`` with precomputed logits (``teacher=None``;
    equivalent when the teacher is deterministic and inputs are not augmented).

    Args:
        teacher: the trained teacher (frozen and put in eval mode here), or None.
        gamma, alpha, temperature: as in :class:`DHKDLoss`.
        align: apply the gradient alignment (``--ga``) over all student parameters, through
            :func:`aligned_surrogate` (costs two extra gradient evaluations per step).
        kd_head: ``"aux"`` (DHKD) or ``"main"``: BinaryKL-Norm on the inference head itself, the
            paper's single-head ablation (CE + BinaryKL-Norm on one linear classifier).
        monitor: ``{name: parameters}``; every ``monitor_every`` steps the cosine between the
            CE and the distillation gradients on each group is appended to ``self.cosines[name]``.

    After each call ``self.last`` holds the weighted terms ``{"ce", "kd", "total"}`` as floats;
    ``self.projected_steps`` counts the steps where the alignment projected the gradient.
    """

    def __init__(
        self,
        teacher: nn.Module | None = None,
        *,
        gamma: float = 1.0,
        alpha: float = 1.0,
        temperature: float = 2.0,
        align: bool = False,
        kd_head: str = "aux",
        monitor: dict[str, Sequence[torch.Tensor]] | None = None,
        monitor_every: int = 1,
    ) -> None:
        super().__init__(teacher)
        validate_params(_PARAMETER_CONSTRAINTS, {"kd_head": kd_head}, owner="DHKDObjective")
        if monitor_every < 1:
            raise ValueError(f"DHKDObjective: monitor_every must be an int in [1, inf), got {monitor_every!r}")
        self.loss = DHKDLoss(gamma, alpha, temperature)
        self.align, self.kd_head = bool(align), kd_head
        self.monitor = {k: list(v) for k, v in (monitor or {}).items()}
        self.monitor_every = int(monitor_every)
        self.cosines: dict[str, list[float]] = {k: [] for k in self.monitor}
        self.last: dict[str, float] = {}
        self.projected_steps = 0
        self.steps = 0

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        t = self.teacher_logits(batch)
        main, aux = _heads(model(batch[0]))
        if self.kd_head == "main":
            aux = main
        elif aux is None:
            raise ValueError("DHKD needs a model returning (logits_main, logits_aux) in train mode")
        terms = self.loss(main, aux, t, batch[1])
        self.last = {k: float(v.detach()) for k, v in terms.items()}
        if self.monitor and self.steps % self.monitor_every == 0:
            for name, params in self.monitor.items():
                self.cosines[name].append(gradient_cosine(terms["ce"], terms["kd"], params))
        self.steps += 1
        if self.align:
            params = [p for p in model.parameters() if p.requires_grad]
            surrogate, projected = _aligned_surrogate([terms["ce"], terms["kd"]], params)
            self.projected_steps += projected
            return surrogate
        return terms["total"]


class HintonKDObjective(_Objective):
    """``compute_loss(model, batch)`` of classic KD for :func:`paperzoo.engine.fit`:
    ``gamma * CE(z, y) + alpha * hinton_kd(z, t, T)`` on the model's (first) logits.

    Defaults follow the RepDistiller ``kd`` command the DHKD code builds on (gamma 0.1,
    alpha 0.9, T = 4). ``teacher`` / ``batch`` as in :class:`DHKDObjective`.
    """

    def __init__(
        self, teacher: nn.Module | None = None, *, gamma: float = 0.1, alpha: float = 0.9, temperature: float = 4.0
    ) -> None:
        super().__init__(teacher)
        validate_params(
            _PARAMETER_CONSTRAINTS,
            {"gamma": gamma, "alpha": alpha, "temperature": temperature},
            owner="HintonKDObjective",
        )
        self.gamma, self.alpha, self.temperature = float(gamma), float(alpha), float(temperature)
        self.last: dict[str, float] = {}

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        t = self.teacher_logits(batch)
        z, _ = _heads(model(batch[0]))
        ce = self.gamma * F.cross_entropy(z, batch[1])
        kd = self.alpha * hinton_kd(z, t, self.temperature)
        self.last = {"ce": float(ce.detach()), "kd": float(kd.detach()), "total": float((ce + kd).detach())}
        return ce + kd


def _bench_reference() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The benchmark's reference: the naive official BinaryKL-Norm form."""
    return _reference_binary_kl_norm
