"""FedLD (Zeng et al., MICCAI 2024, "Tackling Data Heterogeneity in Federated Learning via Loss
Decomposition", arXiv:2408.12300): a margin-control client loss plus principal-gradient
aggregation on the server, and the loss decomposition that motivates them.

The paper writes the global loss of the aggregated model as the clients' *local* loss, a
*distribution-shift* loss (how much worse each local model is on the global distribution than
on its own data) and an *aggregation* loss (how the aggregated model differs from the local
models on the global distribution). FedLD attacks the second term on the clients and the third
on the server:

* :class:`MarginControlLoss` / :func:`margin_control_loss`: ``CE_mean(Z, y) + lam *
  log(1 + ||softmax(Z)||_F^2)``, the norm taken over the *whole batch matrix* as in the official
  ``MarginalLogLoss`` (so the regulariser lies in ``[log(1 + B/C), log(1 + B)]`` and depends on
  the batch size). ``reduction_over="sample"`` is a batch-size independent variant (mean over rows
  of ``log(1 + ||p_i||^2)``), not the paper's, off by default.
* :func:`principal_gradient_aggregate`: the closed form of the official ``pcgrad_svd`` for one
  tensor (client updates ``G`` (m, d) -> aggregate (d,)): the eigen-decomposition of
  ``H = G G^T / m``, principal directions ``u_j = G^T e_j``, the top ``k = floor(m * k_prop)`` kept,
  client ``i``'s revised update ``sum_j (s_j / sum_l s_l) ||g_i|| sign(g_i . u_j) u_j / ||u_j||``,
  and the plain mean of the revised updates. Directions with a zero eigenvalue and zero
  projections are skipped (the official code returns NaN there).
* :func:`aggregate_state_updates`: that rule per state-dict entry; the plain mean of the updates
  on the first round, for 1-element tensors and for non-float buffers.
* :class:`FedLDStrategy`: the server as a Flower strategy (a subclass of
  ``flwr.serverapp.strategy.FedAvg`` overriding ``configure_train`` and ``aggregate_train``).
* :func:`fedld_client_app`: the client as a Flower ``ClientApp`` (local SGD on the margin-control
  loss; ``lam=0`` gives the plain FedAvg client, ``prox_mu > 0`` adds FedProx's proximal term).
* :func:`loss_decomposition`: the three terms for one round's global and local models, evaluated on
  held-out data; they sum to the global loss exactly.

The paper's text beyond its abstract was not available: the formulas follow the official code
(``methods/fedld.py``, ``svd_tools.py``), and the decomposition is the telescoping identity
reconstructed from the abstract.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx
from torch import nn

from paperzoo._validation import (
    Constraint,
    Interval,
    Options,
    check_finite,
    check_logits_target,
    check_sample_weight,
    validate_params,
)
from paperzoo.federated.baselines import (
    FederatedData,
    FederatedHistory,
    LocalTraining,
    accuracy_handler,
    client_seed,
    local_train,
    node_counts,
    serve,
)
from paperzoo.federated.flower import arrays_of, load_arrays, partition_id
from paperzoo.losses.base import BatchLevelLoss, check_batch_reduction, upcast_low_precision

__all__ = [
    "MarginControlLoss",
    "margin_control_loss",
    "margin_regulariser",
    "principal_gradient_aggregate",
    "principal_gradient_revise",
    "aggregate_state_updates",
    "loss_decomposition",
    "decomposition_from_losses",
    "FedLDStrategy",
    "fedld_apps",
    "OFFICIAL_LOCAL",
]

_LOSS_CONSTRAINTS: dict[str, list[Constraint]] = {
    "lam": [Interval(float, 0, math.inf, closed="left")],
    "reduction_over": [Options(("batch", "sample"))],
    "reduction": [Options(("mean", "sum", "none"))],
}
_APP_CONSTRAINTS: dict[str, list[Constraint]] = {
    "lam": _LOSS_CONSTRAINTS["lam"],
    "reduction_over": _LOSS_CONSTRAINTS["reduction_over"],
    "aggregation": [Options(("principal", "mean"))],
    "rounds": [Interval(int, 1, math.inf, closed="left")],
    "proximal_mu": [Interval(float, 0, math.inf, closed="left")],
}
_AGG_CONSTRAINTS: dict[str, list[Constraint]] = {
    "k_prop": [Interval(float, 0, 1, closed="right")],
    "eps": [Interval(float, 0, 1, closed="left")],
}


#: The official code's local recipe (``options.py`` / README): 1 local epoch (README; 5 in
#: ``options.py``), batch 50, SGD lr 0.01, momentum 0.5, weight decay 5e-4.
OFFICIAL_LOCAL = LocalTraining(epochs=1, lr=0.01, batch_size=50, momentum=0.5, weight_decay=5e-4)


# --------------------------------------------------------------------------- client loss
def margin_regulariser(
    probs: torch.Tensor, reduction_over: str = "batch", weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The margin-control term of the softmax outputs ``probs`` (B, C).

    ``"batch"`` (the official code): ``log(1 + sum_i w_i ||p_i||^2)`` (``w = 1``: the squared
    Frobenius norm of the batch matrix). ``"sample"``: the (weighted) mean over rows of
    ``log(1 + ||p_i||^2)``. Inputs are not validated (see :func:`margin_control_loss`).
    """
    sq = probs.square().sum(1)
    if reduction_over == "batch":
        return torch.log1p(sq.sum() if weight is None else (weight * sq).sum())
    per_row = torch.log1p(sq)
    return per_row.mean() if weight is None else (weight * per_row).sum() / weight.sum()


_BATCH_REASON = "the margin-control term is a batch-level quantity with no per-example losses"


def margin_control_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    lam: float = 0.1,
    reduction_over: str = "batch",
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """FedLD's client loss (the official ``MarginalLogLoss``): ``CE_mean(Z, y) + lam *
    log(1 + ||softmax(Z)||_F^2)``.

    Args:
        logits: (B, C) finite floating-point logits.
        target: (B,) integer labels in ``[0, C)``.
        lam: weight of the margin-control term (``margin_loss_penalty``: 0.1 in the official
            README command, 0.03 in its ``options.py``); 0 gives ``F.cross_entropy``.
        reduction_over: ``"batch"`` (the paper's: the norm of the whole (B, C) matrix) or
            ``"sample"`` (mean over rows of ``log(1 + ||p_i||^2)``, batch-size independent).
        weight: optional (B,) non-negative per-sample weights: a weighted mean for the
            cross-entropy, row multiplicities in the regulariser (``sum_i w_i ||p_i||^2``).
        reduction: ``"mean"`` only (a batch-level loss).

    Returns:
        The scalar loss, float32 for float16 / bfloat16 logits, else in the logits' dtype.
    """
    owner = "margin_control_loss"
    check_batch_reduction(reduction, owner, _BATCH_REASON)
    validate_params(_LOSS_CONSTRAINTS, {"lam": lam, "reduction_over": reduction_over}, owner=owner)
    check_logits_target(logits, target)
    if weight is not None:
        check_sample_weight(weight, logits.shape[0])
    return _margin_control(upcast_low_precision(logits), target, float(lam), reduction_over, weight)


def _margin_control(
    x: torch.Tensor, target: torch.Tensor, lam: float, reduction_over: str, weight: torch.Tensor | None
) -> torch.Tensor:
    if weight is None:
        a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=x.dtype, device=x.device)
        r = None
    else:
        r = weight.to(x.dtype)
        total = r.sum()
        if not bool(total > 0):
            raise ValueError("weight sums to 0: the weighted mean (reduction='mean') is undefined")
        a = r / total
    return _MarginControl.apply(x, target, a, r, lam, reduction_over == "sample")


class _MarginControl(torch.autograd.Function):
    """``sum_i a_i CE_i + lam * reg`` with a hand-written backward (first order only).

    With ``p = softmax(x)``, ``q_i = ||p_i||^2`` and the regulariser's weight ``c_i`` on
    ``d reg / d q_i`` (batch: ``r_i / (1 + sum_j r_j q_j)``; sample: ``r_i / (R (1 + q_i))``),
    ``d q_i / d x_ic = 2 p_ic (p_ic - q_i)`` gives ``grad_ic = p_ic (a_i + 2 lam c_i (p_ic - q_i)) -
    a_i [c = y_i]``: one (B, C) buffer and three passes, where autograd through the composed
    softmax, square and sums keeps several.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        target: torch.Tensor,
        a: torch.Tensor,
        r: torch.Tensor | None,
        lam: float,
        per_sample: bool,
    ) -> torch.Tensor:
        p = torch.log_softmax(x, dim=1)
        nll = -p.gather(1, target[:, None]).squeeze(1)
        loss = (a * nll).sum()
        p.exp_()  # the softmax, in the log-softmax's buffer
        q = torch.linalg.vecdot(p, p)  # (B,) ||p_i||^2
        if per_sample:
            rr = torch.ones_like(q) if r is None else r
            big_r = rr.sum()
            loss = loss + lam * (rr * torch.log1p(q)).sum() / big_r
            c = 2.0 * lam * rr / (big_r * (1.0 + q))
        else:
            total = q.sum() if r is None else (r * q).sum()
            loss = loss + lam * torch.log1p(total)
            c = 2.0 * lam / (1.0 + total) * (torch.ones_like(q) if r is None else r)
        ctx.save_for_backward(p, target, a, c, q)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        p, target, a, c, q = ctx.saved_tensors
        grad = torch.addcmul((a - c * q)[:, None], p, c[:, None])  # a_i + c_i (p_ic - q_i)
        grad.mul_(p)
        grad.scatter_add_(1, target[:, None], -a[:, None])
        return grad.mul_(grad_out), None, None, None, None, None


class MarginControlLoss(BatchLevelLoss):
    """FedLD's margin-control client loss (official ``MarginalLogLoss``): cross-entropy plus
    ``lam * log(1 + ||softmax(Z)||_F^2)`` over the batch, which penalises over-confident outputs
    (large logit margins) that transfer badly across clients.

    ``forward(logits (B, C), target (B,), weight=None) -> scalar``; equals
    :func:`margin_control_loss` with the same arguments. A batch-level loss: ``reduction`` is
    ``"mean"`` only.

    Args:
        lam: weight of the margin-control term (default 0.1, the official README's Retina
            command; the code's ``options.py`` default is 0.03).
        reduction_over: ``"batch"`` (the paper's, default) or ``"sample"``.
        reduction: ``"mean"`` only.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = dict(_LOSS_CONSTRAINTS)

    def __init__(self, lam: float = 0.1, reduction_over: str = "batch", reduction: str = "mean") -> None:
        super().__init__(reduction)
        self._validate_params(lam=lam, reduction_over=reduction_over)
        self.lam, self.reduction_over = float(lam), reduction_over

    batch_reason = _BATCH_REASON

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_logits_target(logits, target)
        if weight is not None:
            check_sample_weight(weight, logits.shape[0])
        return _margin_control(upcast_low_precision(logits), target, self.lam, self.reduction_over, weight)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, reduction_over={self.reduction_over!r}"


def _reference_margin_control_loss() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The official ``MarginalLogLoss`` written naively (``lam = 0.1``): ``F.cross_entropy`` plus
    ``lam * log(1 + torch.norm(softmax(Z), p=2) ** 2)``; for ``paperzoo bench losses``."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)
        return F.cross_entropy(logits, target) + 0.1 * torch.log(1 + torch.norm(p, p=2) ** 2)

    return loss


# --------------------------------------------------------------------------- server aggregation
def _check_updates(updates: torch.Tensor, name: str = "updates") -> None:
    if not isinstance(updates, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(updates).__name__}")
    if updates.ndim != 2 or updates.shape[0] < 1 or updates.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty (clients, d) tensor, got shape {tuple(updates.shape)}")
    if not updates.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {updates.dtype}")
    check_finite(updates, name)


def principal_gradient_revise(updates: torch.Tensor, k_prop: float = 0.8, eps: float = 0.0) -> torch.Tensor:
    """The clients' revised updates ``g~_i`` (m, d) of FedLD's principal-gradient aggregation.

    With ``H = G G^T / m = E diag(s) E^T`` (s descending), principal directions
    ``u_j = G^T e_j`` (orthogonal, ``||u_j||^2 = m s_j``) and ``k = floor(m * k_prop)``::

        g~_i = sum_{j <= k} (s_j / sum_l s_l) * ||g_i|| * sign(g_i . u_j) * u_j / ||u_j||

    so ``||g~_i|| = ||g_i|| * sqrt(sum_{j<=k} (s_j / sum s)^2) <= ||g_i||``. Directions whose
    eigenvalue is zero (to ``m * machine eps`` of the largest) and projections with
    ``|cos(g_i, u_j)| <= eps`` are skipped (they are 0/0 in the official code). ``m = 1`` gives
    ``k = 0`` and a zero update (the official behaviour); all-zero updates give zeros.
    Tied eigenvalues make the rule depend on the eigen-solver's basis (e.g. two orthogonal
    unit updates): the rule itself is ill-defined there.

    Args:
        updates: (m, d) client updates ``g_i = w_i - w`` of one tensor, flattened.
        k_prop: share of the m principal directions kept (official 0.8), in (0, 1].
        eps: projections with ``|cos| <= eps`` count as zero (default 0: exact zeros only).
    """
    validate_params(_AGG_CONSTRAINTS, {"k_prop": k_prop, "eps": eps}, owner="principal_gradient_revise")
    _check_updates(updates)
    m = updates.shape[0]
    k = math.floor(m * k_prop)
    g = upcast_low_precision(updates)
    if k == 0:
        return torch.zeros_like(g)
    # H is m x m: its eigen-decomposition in float64 costs nothing and is accurate
    h = (g @ g.T).double() / m
    s, e = torch.linalg.eigh(h)  # ascending
    s, e = s.flip(0).clamp_min(0.0), e.flip(1)
    total = s.sum()
    if not bool(total > 0):
        return torch.zeros_like(g)
    s_k, e_k = s[:k], e[:, :k]
    keep = s_k > s[0] * m * torch.finfo(g.dtype).eps
    u = g.T @ e_k.to(g.dtype)  # (d, k)
    u_norm = (m * s_k).sqrt().to(g.dtype)  # ||u_j|| in closed form
    u_hat = u / torch.where(keep, u_norm, torch.ones_like(u_norm))
    g_norm = g.norm(dim=1, keepdim=True)  # (m, 1)
    cos = (g @ u_hat) / g_norm.clamp_min(torch.finfo(g.dtype).tiny)  # (m, k) cos(g_i, u_j) on kept j
    sign = torch.sign(cos) * (cos.abs() > eps)
    coef = sign * g_norm * ((s_k / total) * keep).to(g.dtype)  # (m, k)
    return coef @ u_hat.T


def principal_gradient_aggregate(updates: torch.Tensor, k_prop: float = 0.8, eps: float = 0.0) -> torch.Tensor:
    """FedLD's principal-gradient aggregate (d,) of client updates ``updates`` (m, d): the
    unweighted mean of :func:`principal_gradient_revise` (see there for the rule, edge cases and
    arguments). Identical updates are returned unchanged; ``m = 1`` gives zeros."""
    return principal_gradient_revise(updates, k_prop, eps).mean(0)


def aggregate_state_updates(
    global_state: Mapping[str, torch.Tensor],
    client_states: Sequence[Mapping[str, torch.Tensor]],
    k_prop: float = 0.8,
    first_round: bool = False,
    eps: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The next global state ``w + g^`` from the current one and the clients' states (official
    ``pcgrad_svd``, per state-dict entry).

    Per entry, the updates ``g_i = w_i - w`` are flattened and aggregated with
    :func:`principal_gradient_aggregate`; the plain (unweighted) mean of the updates is used on
    the first round, for 1-element tensors and for non-float entries (integer buffers such as
    BatchNorm's ``num_batches_tracked`` are rounded back to their dtype).

    Raises:
        ValueError: no client, or a client state whose keys or shapes differ from the global one.
    """
    validate_params(_AGG_CONSTRAINTS, {"k_prop": k_prop, "eps": eps}, owner="aggregate_state_updates")
    if len(client_states) == 0:
        raise ValueError("client_states is empty: aggregation needs at least one client")
    out: dict[str, torch.Tensor] = {}
    for i, cs in enumerate(client_states):
        if set(cs) != set(global_state):
            raise ValueError(f"client_states[{i}] has keys {sorted(cs)}, expected {sorted(global_state)}")
    for name, w in global_state.items():
        for i, cs in enumerate(client_states):
            if cs[name].shape != w.shape:
                raise ValueError(
                    f"client_states[{i}][{name!r}] has shape {tuple(cs[name].shape)}, expected {tuple(w.shape)}"
                )
        floating = w.is_floating_point()
        work = w.dtype if floating else torch.float64
        g = torch.stack([cs[name].to(work).reshape(-1) - w.to(work).reshape(-1) for cs in client_states])
        if first_round or not floating or w.numel() <= 1:
            upd = g.mean(0)
        else:
            upd = principal_gradient_aggregate(g, k_prop, eps).to(work)
        new = w.to(work) + upd.reshape(w.shape)
        out[name] = new if floating else new.round().to(w.dtype)
    return out


# --------------------------------------------------------------------------- loss decomposition
def decomposition_from_losses(
    local_on_own: Sequence[float],
    local_on_global: Sequence[float],
    global_on_global: float,
    weights: Sequence[float] | None = None,
) -> dict[str, float]:
    """The three terms from measured losses (weights ``p_k`` normalised to sum 1)::

        local = sum_k p_k L_k(w_k)                  (each local model on its own data)
        shift = sum_k p_k (L(w_k) - L_k(w_k))        (local models on the global data)
        aggregation = L(w) - sum_k p_k L(w_k)        (the aggregated model)
        total = local + shift + aggregation = L(w)

    Args:
        local_on_own: ``L_k(w_k)`` per client.
        local_on_global: ``L(w_k)`` per client.
        global_on_global: ``L(w)``.
        weights: ``p_k`` (default uniform), non-negative with a positive sum.
    """
    n = len(local_on_own)
    if n == 0 or len(local_on_global) != n:
        raise ValueError(
            f"local_on_own and local_on_global must be non-empty and of equal length, got {n} and "
            f"{len(local_on_global)}"
        )
    p = torch.ones(n, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if p.shape != (n,) or not bool(torch.isfinite(p).all()) or bool((p < 0).any()) or not bool(p.sum() > 0):
        raise ValueError(f"weights must be {n} finite non-negative numbers with a positive sum, got {weights!r}")
    p = p / p.sum()
    own = torch.as_tensor(local_on_own, dtype=torch.float64)
    glob = torch.as_tensor(local_on_global, dtype=torch.float64)
    local = float((p * own).sum())
    on_global = float((p * glob).sum())
    total = float(global_on_global)
    return {"local": local, "shift": on_global - local, "aggregation": total - on_global, "total": total}


@torch.no_grad()
def _mean_ce(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        total += float(F.cross_entropy(model(x), y, reduction="sum"))
        count += len(y)
    model.train(was_training)
    if count == 0:
        raise ValueError("an evaluation loader yielded no examples")
    return total / count


def loss_decomposition(
    global_model: nn.Module,
    local_models: Sequence[nn.Module],
    client_loaders: Sequence[Iterable[tuple[torch.Tensor, torch.Tensor]]],
    global_loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    weights: Sequence[float] | None = None,
) -> dict[str, float]:
    """The paper's decomposition of the global loss of one round (cross-entropy, example means):
    ``local``, ``shift``, ``aggregation`` and ``total = L(w)``, with ``local + shift +
    aggregation = total`` (see :func:`decomposition_from_losses`).

    Args:
        global_model: the aggregated model ``w``.
        local_models: the round's local models ``w_k``.
        client_loaders: per client, batches ``(x, y)`` of its own data (``L_k``).
        global_loader: batches of held-out data of the global distribution (``L``), e.g. a
            balanced test set.
        weights: client weights ``p_k`` (e.g. sample counts; default uniform).
    """
    if len(local_models) != len(client_loaders):
        raise ValueError(
            f"local_models and client_loaders must have equal length, got {len(local_models)} and {len(client_loaders)}"
        )
    global_batches = list(global_loader)
    own = [_mean_ce(m, loader) for m, loader in zip(local_models, client_loaders)]
    on_global = [_mean_ce(m, global_batches) for m in local_models]
    return decomposition_from_losses(own, on_global, _mean_ce(global_model, global_batches), weights)


# --------------------------------------------------------------------------- Flower: server
class FedLDStrategy(FedAvg):
    """FedLD's server (official ``pcgrad_svd`` in ``train_round_fedld``) as a Flower strategy.

    Each round it keeps the global arrays it sends (:meth:`configure_train`) and aggregates the
    replies with :func:`aggregate_state_updates`: the client updates (reply minus sent global),
    per tensor, by principal-gradient aggregation, unweighted over the participating clients
    (the official code's data-size weights have no effect, see the card). A tensor's first
    aggregation is the plain mean (the official per-tensor history flag). Everything else
    (sampling, evaluation, metric aggregation, ``start``) is ``FedAvg``'s.

    The returned train ``MetricRecord`` also carries ``"fedld-step-ratio"``: the norm of the
    aggregate update over the norm of the plain mean update (all float tensors together; 1 on
    the first round, below 1 afterwards because the rule shrinks every client's update).

    Args:
        k_prop: share of the principal directions kept (official 0.8).
        eps: projections with ``|cos| <= eps`` are skipped (default 0: exact zeros).
        **kwargs: ``FedAvg``'s arguments (``fraction_train``, ``min_train_nodes``, ...).
    """

    def __init__(self, k_prop: float = 0.8, eps: float = 0.0, **kwargs: Any) -> None:
        validate_params(_AGG_CONSTRAINTS, {"k_prop": k_prop, "eps": eps}, owner="FedLDStrategy")
        super().__init__(**kwargs)
        self.k_prop, self.eps = float(k_prop), float(eps)
        self._global: dict[str, torch.Tensor] | None = None
        self._seen: set[str] = set()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """``FedAvg.configure_train``, remembering the global arrays of the round."""
        self._global = {k: v.clone() for k, v in arrays.to_torch_state_dict().items()}
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The new global arrays ``w + g^`` and the clients' aggregated train metrics."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        if self._global is None:
            raise RuntimeError("FedLDStrategy.aggregate_train called before configure_train")
        contents = [msg.content for msg in valid]
        states = [c[self.arrayrecord_key].to_torch_state_dict() for c in contents]
        first = not self._seen
        new = aggregate_state_updates(self._global, states, self.k_prop, first_round=first, eps=self.eps)
        self._seen.update(new)
        mean = aggregate_state_updates(self._global, states, first_round=True)
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        metrics["fedld-step-ratio"] = _step_ratio(self._global, new, mean)
        return ArrayRecord(new), metrics


def _step_ratio(
    old: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor], mean: Mapping[str, torch.Tensor]
) -> float:
    """||new - old|| / ||mean - old|| over the float tensors (1 when the mean step is 0)."""
    num = sum(float((new[k] - v).double().square().sum()) for k, v in old.items() if v.is_floating_point())
    den = sum(float((mean[k] - v).double().square().sum()) for k, v in old.items() if v.is_floating_point())
    return math.sqrt(num / den) if den > 0 else 1.0


# --------------------------------------------------------------------------- Flower: apps
def fedld_apps(
    model_fn: Callable[[], nn.Module],
    data: FederatedData,
    *,
    rounds: int,
    local: LocalTraining | None = None,
    lam: float = 0.1,
    reduction_over: str = "batch",
    aggregation: str = "principal",
    k_prop: float = 0.8,
    proximal_mu: float = 0.0,
    seed: int = 0,
    fraction_train: float = 1.0,
    decomposition: bool | Collection[int] = False,
) -> tuple[ServerApp, ClientApp, FederatedHistory]:
    """FedLD as Flower apps: a ``ClientApp`` training on :class:`MarginControlLoss` and a
    ``ServerApp`` running :class:`FedLDStrategy`, in the form of
    :func:`paperzoo.federated.baselines.fedavg_apps` (same data, local recipe, per-client seeds and
    server-side evaluation after every round into the returned history).

    ``lam = 0`` gives the cross-entropy client and ``aggregation="mean"`` Flower's ``FedAvg``
    (sample-weighted mean), so ``lam=0, aggregation="mean"`` is FedAvg, adding ``proximal_mu > 0``
    is FedProx (Flower's ``FedProx`` strategy sends ``mu`` to the clients, which add
    ``mu/2 ||w - w_global||^2``), and the two single components are the paper's ablations. Each history round holds ``"accuracy"`` and ``"loss"``
    (the global model on ``data``'s test set), the clients' mean ``"train-loss"`` and, for
    :class:`FedLDStrategy`, ``"fedld-step-ratio"``.

    ``decomposition=True`` (or the collection of rounds that need it) adds the paper's loss
    decomposition to those rounds (an analysis: each
    client also evaluates its trained model on its own data, ``L_k(w_k)``, and on ``data``'s test
    set, ``L(w_k)``; this never changes training): ``"local"``, ``"shift"``, ``"aggregation"``
    with ``local + shift + aggregation = loss``, clients weighted by sample count.

    Args:
        model_fn: builds the model (the initial global model is drawn after
            ``torch.manual_seed(seed)``).
        data: clients' partitions and the server's test set.
        rounds: federated rounds.
        local: the local recipe (default :class:`LocalTraining` with the official FedLD values:
            1 epoch, batch 50, lr 0.01, momentum 0.5, weight decay 5e-4).
        lam, reduction_over: the margin-control loss.
        aggregation: ``"principal"`` (:class:`FedLDStrategy`) or ``"mean"`` (``FedAvg``).
        k_prop: share of principal directions kept.
        proximal_mu: FedProx's proximal weight (0: none).
        seed: seed of the initial model and of the clients' shuffling.
        fraction_train: share of clients sampled each round.
    """
    validate_params(
        {**_APP_CONSTRAINTS, **_AGG_CONSTRAINTS},
        {
            "lam": lam,
            "reduction_over": reduction_over,
            "aggregation": aggregation,
            "k_prop": k_prop,
            "rounds": rounds,
            "proximal_mu": proximal_mu,
        },
        owner="fedld_apps",
    )
    recipe = local or OFFICIAL_LOCAL
    history = FederatedHistory()
    client = ClientApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        k = partition_id(context)
        model = model_fn()
        load_arrays(model, msg.content["arrays"])
        x, y = data.client(k)
        config = msg.content["config"]
        mu = float(config.get("proximal-mu", proximal_mu))
        loss_fn = MarginControlLoss(lam, reduction_over)
        seed_k = client_seed(seed, int(config["server-round"]), k)
        loss = local_train(model, x, y, recipe, seed_k, proximal_mu=mu, loss_fn=loss_fn)
        metrics: dict[str, float | int] = {"num-examples": len(y), "train-loss": loss}
        if _decompose(decomposition, int(config["server-round"])):
            metrics["local-loss"] = _mean_ce(model, _batches(x, y))
            metrics["global-loss"] = _mean_ce(model, _batches(data.x_test, data.y_test))
        return Message(RecordDict({"arrays": arrays_of(model), "metrics": MetricRecord(metrics)}), reply_to=msg)

    client.evaluate()(accuracy_handler(model_fn, data))
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        # the server evaluates the global model itself: no client-side evaluation
        common = node_counts(data.num_clients, fraction_train, client_evaluation=False)
        strategy: FedAvg
        if aggregation == "principal":
            strategy = FedLDStrategy(k_prop=k_prop, **common)
        elif proximal_mu > 0:
            strategy = FedProx(proximal_mu=proximal_mu, **common)
        else:
            strategy = FedAvg(**common)

        def test_loss(model: nn.Module) -> dict[str, float]:
            return {"loss": _mean_ce(model, _batches(data.x_test, data.y_test))}

        result = serve(grid, strategy, model_fn, data, history, rounds=rounds, seed=seed, server_metrics=test_loss)
        for r, row in enumerate(history.rounds, start=1):
            train_metrics = result.train_metrics_clientapp.get(r)
            if train_metrics is None:
                continue
            row.update({key: float(v) for key, v in train_metrics.items() if key != "num-examples"})  # type: ignore[arg-type]
            if _decompose(decomposition, r):
                terms = decomposition_from_losses([row["local-loss"]], [row["global-loss"]], row["loss"])
                row.update({key: terms[key] for key in ("local", "shift", "aggregation")})

    return server, client, history


def _decompose(decomposition: bool | Collection[int], server_round: int) -> bool:
    return decomposition if isinstance(decomposition, bool) else server_round in decomposition


def _batches(x: torch.Tensor, y: torch.Tensor, size: int = 4096) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(y), size)]
