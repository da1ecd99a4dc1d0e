"""FedLoGe: joint local and generic federated learning under long-tailed data, on Flower.

Xiao et al., "FedLoGe: Joint Local and Generic Federated Learning under Long-tailed Data",
ICLR 2024 (arXiv 2401.08977); re-implemented from the official code (``fedloge.py``,
``realignment.py``, ``util/update_baseline.py``), whose names are kept in the docstrings.

One shared backbone and three linear heads on its features ``f``:

* **SSE-C**, a fixed sparse simplex ETF (:func:`paperzoo.models.etf.sparse_etf`, held by a
  :class:`~paperzoo.models.etf.FixedLinearClassifier`): the backbone is trained through it on every
  client, so no trainable classifier can drift towards the head classes;
* ``g_aux``, an auxiliary global head trained on the *detached* features and averaged by FedAvg;
* ``l_head``, a local head per client, trained on the detached features, never sent to the server
  (kept in the node's ``context.state``).

One local round (``update_weights_gaux``, :func:`fedloge_local_update`): for every batch,
``CE(sse(f), y)`` updates the backbone only, ``CE(g_aux(f.detach()), y)`` the global head and
``CE(l_head(f.detach()), y)`` the local head, SGD with momentum, fresh optimisers each round. The
three losses touch disjoint parameters, so one SGD step on their sum is exactly the reference's
three separate steps; the loop is :func:`paperzoo.engine.fit`. The server
(:class:`FedLoGeStrategy`) averages the backbone and ``g_aux`` weighted by the clients' sample
counts and keeps SSE-C bit-identical.

After training, *Global and Local Adaptive Feature Realignment* (GLA-FR), without training:

* GA-FR (``globaltest_calibra``, :func:`ga_fr`): the generic model is ``g_aux`` with every class
  row rescaled to norm ``s`` (``W[c] s / ||W[c]||^gamma``, ``s = 1.7``, ``gamma = 1``), bias kept;
* LA-FR (``update_weights_norm_init`` + ``localtest``, :func:`la_fr`): client ``k``'s personalised
  classifier takes the rows of ``g_aux`` scaled by the row norms of its local head, and adds it
  to the local head's logits (:func:`personalized_logits`); classes absent from a client's local
  distribution are masked with ``-inf``.

The Flower side: :func:`fedloge_client_app` (a ``ClientApp`` with ``train`` and ``evaluate``),
:class:`FedLoGeStrategy` (a ``flwr.serverapp.strategy.FedAvg`` subclass overriding
``configure_train`` and ``aggregate_train``) and :func:`fedloge_server_app`; they run unchanged
in-process, on Ray's simulation engine and on a real deployment through
``paperzoo.federated.flower.run_federation``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo._validation import Interval, Options, check_finite, check_labels, validate_params
from paperzoo.engine.loop import TrainConfig, fit, make_loader
from paperzoo.federated.baselines import FederatedData, LocalTraining, client_seed
from paperzoo.federated.flower import arrays_of, load_arrays, load_state, partition_id, save_state
from paperzoo.models.etf import FixedLinearClassifier

__all__ = [
    "FedLoGeConfig",
    "FedLoGeHistory",
    "FedLoGeModel",
    "FedLoGeStrategy",
    "fedloge_apps",
    "fedloge_client_app",
    "fedloge_local_update",
    "fedloge_server_app",
    "ga_fr",
    "generic_metrics",
    "generic_predictions",
    "la_fr",
    "local_metrics",
    "local_test_indices",
    "mask_logits",
    "mean_over_clients",
    "personalized_logits",
    "shot_split",
]

#: state-dict prefixes of the parts every client trains and the server averages
SHARED_PREFIXES = ("backbone.", "g_aux.")
#: state-dict prefix of the fixed classifier (never trained, never averaged)
FIXED_PREFIX = "sse."


# --------------------------------------------------------------------------- realignment
def _check_head(weight: torch.Tensor, bias: torch.Tensor | None, name: str) -> None:
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or not weight.is_floating_point():
        raise ValueError(
            f"{name} weight must be a floating (C, d) tensor, got {getattr(weight, 'shape', type(weight))}"
        )
    check_finite(weight, f"{name} weight")
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != weight.shape[:1]):
        raise ValueError(f"{name} bias must have shape ({weight.shape[0]},), got {getattr(bias, 'shape', type(bias))}")


def ga_fr(
    weight: torch.Tensor, bias: torch.Tensor | None = None, scale: float = 1.7, power: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Global adaptive feature realignment: ``W_GA[c] = scale * W[c] / ||W[c]||^power``, bias kept.

    With ``power = 1`` every row gets norm ``scale`` (tau-normalisation of the aggregated head);
    ``scale`` only matters relative to the bias. Defaults are the official hard-coded values.

    Raises:
        ValueError: a head of the wrong shape, non-finite values, a zero row, ``scale <= 0``.
    """
    validate_params(
        {
            "scale": [Interval(float, 0, math.inf, closed="neither")],
            "power": [Interval(float, 0, math.inf, closed="left")],
        },
        {"scale": scale, "power": power},
        owner="ga_fr",
    )
    _check_head(weight, bias, "ga_fr")
    norms = weight.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("ga_fr: weight has a zero row; its direction is undefined")
    return scale * weight / norms**power, bias


def la_fr(
    global_weight: torch.Tensor,
    global_bias: torch.Tensor | None,
    local_weight: torch.Tensor,
    normalize_global: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Local adaptive feature realignment: ``W_LA[c] = ||W_local[c]|| * W_global[c]``, global bias kept.

    ``normalize_global=False`` is the official code (the global row is *not* normalised, so row
    ``c`` has norm ``||W_local[c]|| ||W_global[c]||``); ``True`` is the paper's wording
    "direction from the global head, norm from the local head" (row norm ``||W_local[c]||``).
    """
    _check_head(global_weight, global_bias, "la_fr global")
    _check_head(local_weight, None, "la_fr local")
    if local_weight.shape != global_weight.shape:
        raise ValueError(
            f"la_fr: local_weight must have the global head's shape {tuple(global_weight.shape)}, "
            f"got {tuple(local_weight.shape)}"
        )
    direction = global_weight
    if normalize_global:
        norms = global_weight.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError("la_fr: global_weight has a zero row; its direction is undefined")
        direction = global_weight / norms
    return local_weight.norm(dim=1, keepdim=True) * direction, global_bias


def _absent_mask(absent_classes: torch.Tensor | None, num_classes: int) -> torch.Tensor | None:
    if absent_classes is None:
        return None
    if not isinstance(absent_classes, torch.Tensor):
        raise TypeError(f"absent_classes must be a torch.Tensor, got {type(absent_classes).__name__}")
    if absent_classes.dtype == torch.bool:
        if absent_classes.shape != (num_classes,):
            raise ValueError(
                f"absent_classes as a mask must have shape ({num_classes},), got {tuple(absent_classes.shape)}"
            )
        mask = absent_classes
    else:
        check_labels(absent_classes, absent_classes.numel(), "absent_classes", num_classes)
        mask = torch.zeros(num_classes, dtype=torch.bool, device=absent_classes.device)
        mask[absent_classes] = True
    if bool(mask.all()):
        raise ValueError("absent_classes masks every class; a client needs at least one present class")
    return mask


def mask_logits(logits: torch.Tensor, absent_classes: torch.Tensor | None) -> torch.Tensor:
    """``logits`` (N, C) with the columns of ``absent_classes`` (indices or a (C,) bool mask) at ``-inf``."""
    mask = _absent_mask(absent_classes, logits.shape[-1])
    return logits if mask is None else logits.masked_fill(mask.to(logits.device), -math.inf)


def personalized_logits(
    features: torch.Tensor,
    local_head: nn.Linear,
    global_head: nn.Linear,
    la_fr_: bool = True,
    normalize_global: bool = False,
    absent_classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Client logits ``l_head(f) + LA-FR(g_aux)(f)`` (or ``+ g_aux(f)`` with ``la_fr_=False``).

    Classes in ``absent_classes`` (indices or a (C,) bool mask) get ``-inf``, so they are never
    predicted whatever the sign of the features (the official code overwrites weight rows, which
    only works for non-negative features).
    """
    if features.ndim != 2 or features.shape[1] != global_head.in_features:
        raise ValueError(f"features must have shape (N, {global_head.in_features}), got {tuple(features.shape)}")
    check_finite(features, "features")
    if la_fr_:
        w, b = la_fr(global_head.weight, global_head.bias, local_head.weight, normalize_global)
        second = F.linear(features, w, b)
    else:
        second = global_head(features)
    return mask_logits(local_head(features) + second, absent_classes)


# --------------------------------------------------------------------------- model and local update
class FedLoGeModel(nn.Module):
    """The shared model: ``backbone`` (x -> f in R^d), the fixed ``sse`` head and the ``g_aux`` head.

    ``forward`` gives the SSE-C logits (the step-1 "universal" model); :meth:`features` the
    backbone's output. The state dict carries ``sse.*`` as buffers.
    """

    def __init__(self, backbone: nn.Module, sse_weight: torch.Tensor, sse_bias: str | torch.Tensor = "zero") -> None:
        super().__init__()
        self.backbone = backbone
        self.sse = FixedLinearClassifier(sse_weight, sse_bias)
        self.g_aux = nn.Linear(self.sse.in_features, self.sse.out_features)

    @property
    def num_classes(self) -> int:
        return self.sse.out_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sse(self.backbone(x))

    def new_local_head(self, seed: int) -> nn.Linear:
        """A local head with PyTorch's default initialisation drawn from ``seed`` (one per client)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return nn.Linear(self.sse.in_features, self.sse.out_features)


class _Heads(nn.Module):
    """The model and a local head as one module, for :func:`paperzoo.engine.fit`."""

    def __init__(self, model: FedLoGeModel, l_head: nn.Linear) -> None:
        super().__init__()
        self.model, self.l_head = model, l_head


def _fedloge_loss(heads: nn.Module, batch: Any) -> torch.Tensor:
    """``CE(sse(f), y) + CE(g_aux(sg f), y) + CE(l_head(sg f), y)``: the three losses touch
    disjoint parameters, so one step on the sum is the reference's three steps."""
    x, y = batch
    model: FedLoGeModel = heads.model  # type: ignore[assignment]
    f = model.features(x)
    fd = f.detach()
    return F.cross_entropy(model.sse(f), y) + F.cross_entropy(model.g_aux(fd), y) + F.cross_entropy(heads.l_head(fd), y)


_UPDATE_PARAMS = {
    "epochs": [Interval(int, 1, math.inf, closed="left")],
    "batch_size": [Interval(int, 1, math.inf, closed="left")],
    "lr": [Interval(float, 0, math.inf, closed="neither")],
    "momentum": [Interval(float, 0, 1, closed="left")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}


def fedloge_local_update(
    model: FedLoGeModel,
    l_head: nn.Linear,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 5,
    batch_size: int = 8,
    lr: float = 0.03,
    momentum: float = 0.5,
    seed: int = 0,
) -> float:
    """One client's local round (``update_weights_gaux``), in place; returns the mean summed loss.

    Fresh SGD (lr, momentum, no weight decay) every call, as the reference; defaults are the
    official ones. The SSE-C head has no parameters and is untouched.

    Raises:
        ValueError: an empty client (no samples), labels out of range, bad hyper-parameters.
    """
    validate_params(
        _UPDATE_PARAMS,
        {"epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum, "seed": seed},
        owner="fedloge_local_update",
    )
    if x.shape[0] == 0:
        raise ValueError("fedloge_local_update: the client has no training samples (empty partition)")
    check_labels(y, x.shape[0], "y", model.num_classes)
    heads = _Heads(model, l_head)
    params = [p for p in heads.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    loader = make_loader(TensorDataset(x, y), batch_size, shuffle=True, seed=seed)
    cfg = TrainConfig(epochs=epochs, seed=seed, progress=False, desc="fedloge client")
    history = fit(heads, None, loader, opt, cfg, compute_loss=_fedloge_loss)
    heads.eval()
    return float(np.mean(history.losses))


# --------------------------------------------------------------------------- evaluation helpers
@torch.no_grad()
def generic_predictions(
    model: FedLoGeModel, x: torch.Tensor, scale: float = 1.7, power: float = 1.0
) -> dict[str, torch.Tensor]:
    """Predicted classes of the generic models on ``x``: ``"sse"`` (step 1), ``"g_aux"`` (raw
    auxiliary head) and ``"ga_fr"`` (step 2: GA-FR of ``g_aux``)."""
    model.eval()
    f = model.features(x)
    w, b = ga_fr(model.g_aux.weight, model.g_aux.bias, scale, power)
    return {
        "sse": model.sse(f).argmax(1),
        "g_aux": model.g_aux(f).argmax(1),
        "ga_fr": F.linear(f, w, b).argmax(1),
    }


def shot_split(
    counts: Sequence[int] | np.ndarray, thresholds: tuple[float, float] = (75.0, 95.0)
) -> tuple[np.ndarray, ...]:
    """Head / middle / tail classes from training counts (``shot_split`` of the reference).

    Classes sorted by count (descending, stable); with cumulative sample percentages, the
    classes up to the one whose interval contains ``thresholds[0]`` % are head, up to the one
    containing ``thresholds[1]`` % middle, the rest tail. Returns three sorted index arrays.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or (c < 0).any() or c.sum() <= 0:
        raise ValueError(
            f"counts must be a non-empty 1-D array of non-negative counts with a positive sum, got {counts!r}"
        )
    lo, hi = thresholds
    if not 0 < lo < hi <= 100:
        raise ValueError(f"thresholds must satisfy 0 < t0 < t1 <= 100, got {thresholds}")
    order = np.argsort(-c, kind="stable")
    before = 100.0 * (np.cumsum(c[order]) - c[order]) / c.sum()  # cumulative % before each class
    head = order[before < lo]
    middle = order[(before >= lo) & (before < hi)]
    tail = order[before >= hi]
    return np.sort(head), np.sort(middle), np.sort(tail)


def local_test_indices(
    train_counts: np.ndarray, test_labels: np.ndarray, num_train: int, rng: np.random.Generator
) -> np.ndarray:
    """A client's local test set: for each class ``c``, ``floor(n_kc / N_train * N_test)`` test
    indices of class ``c`` drawn without replacement (the reference's local test split)."""
    test_labels = np.asarray(test_labels)
    n_test = test_labels.size
    out = []
    for c, n_kc in enumerate(np.asarray(train_counts)):
        pool = np.flatnonzero(test_labels == c)
        k = min(int(math.floor(n_kc / num_train * n_test)), pool.size)
        if k:
            out.append(rng.choice(pool, size=k, replace=False))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- Flower apps
# --------------------------------------------------------------------------- Flower apps
@dataclass(frozen=True)
class FedLoGeConfig:
    """A FedLoGe run: ``rounds``, the clients' recipe ``local`` (one SGD for all three heads;
    the official one is ``LocalTraining(epochs=5, lr=0.03, batch_size=8, momentum=0.5)``, the
    default here), the share of clients sampled each round, GA-FR's ``s`` and ``gamma``, LA-FR's
    reading (``normalize_global=False``: the official code) and the seed of the run.
    """

    rounds: int = 500
    local: LocalTraining = field(default_factory=lambda: LocalTraining(epochs=5, lr=0.03, batch_size=8, momentum=0.5))
    fraction_train: float = 1.0
    ga_scale: float = 1.7
    ga_power: float = 1.0
    normalize_global: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        validate_params(
            {
                "rounds": [Interval(int, 1, math.inf, closed="left")],
                "fraction_train": [Interval(float, 0, 1, closed="right")],
                "ga_scale": [Interval(float, 0, math.inf, closed="neither")],
                "ga_power": [Interval(float, 0, math.inf, closed="left")],
                "normalize_global": [Options((True, False))],
                "seed": [Interval(int, 0, math.inf, closed="left")],
            },
            {k: v for k, v in vars(self).items() if k != "local"},
            owner="FedLoGeConfig",
        )
        if not isinstance(self.local, LocalTraining):
            raise TypeError(f"FedLoGeConfig: local must be a LocalTraining, got {type(self.local).__name__}")
        if self.local.weight_decay != 0:
            raise ValueError("FedLoGeConfig: FedLoGe's local SGD has no weight decay; give local.weight_decay=0")


@dataclass
class FedLoGeHistory:
    """What a FedLoGe run leaves behind: after each round ``r`` (keys 1..R), the generic models'
    server-side metrics (:func:`generic_metrics`), the personalised models' metrics averaged over
    clients (:func:`local_metrics`), the mean training loss; the final global state; wall time."""

    generic: dict[int, dict[str, float]] = field(default_factory=dict)
    personal: dict[int, dict[str, float]] = field(default_factory=dict)
    train_loss: dict[int, float] = field(default_factory=dict)
    final_state: dict[str, torch.Tensor] | None = None
    wall_s: float = 0.0


L_HEAD_KEY = "fedloge.l_head"


def _shared_state(model: FedLoGeModel) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(SHARED_PREFIXES)}


@torch.no_grad()
def local_metrics(
    model: FedLoGeModel, l_head: nn.Linear, x: torch.Tensor, y: torch.Tensor, normalize_global: bool = False
) -> dict[str, float]:
    """Accuracies of one client's models on its local test set ``(x, y)``, classes absent from
    ``y`` masked: ``"personal acc"`` (l_head + LA-FR), ``"local+global acc"`` (l_head + g_aux,
    the reference's per-round local accuracy), ``"g_aux acc"``, ``"l_head acc"``, ``"sse acc"``."""
    if y.numel() == 0:
        raise ValueError("local_metrics: the client's local test set is empty")
    model.eval()
    absent = torch.bincount(y, minlength=model.num_classes) == 0
    f = model.features(x)
    logits = {
        "personal acc": personalized_logits(f, l_head, model.g_aux, True, normalize_global, absent),
        "local+global acc": personalized_logits(f, l_head, model.g_aux, False, absent_classes=absent),
        "g_aux acc": mask_logits(model.g_aux(f), absent),
        "l_head acc": mask_logits(l_head(f), absent),
        "sse acc": mask_logits(model.sse(f), absent),
    }
    return {k: float((v.argmax(1) == y).double().mean()) for k, v in logits.items()}


def _check_local_test(data: FederatedData, local_test: Sequence[np.ndarray] | None) -> tuple[np.ndarray, ...] | None:
    if local_test is None:
        return None
    if len(local_test) != data.num_clients:
        raise ValueError(f"local_test must hold one index array per client ({data.num_clients}), got {len(local_test)}")
    out = tuple(np.asarray(t, dtype=np.int64) for t in local_test)
    n = data.x_test.shape[0]
    for k, t in enumerate(out):
        if t.size and (t.min() < 0 or t.max() >= n):
            raise ValueError(f"local_test: client {k} holds test indices outside [0, {n})")
    return out


def fedloge_client_app(
    model_fn: Callable[[], FedLoGeModel], data: FederatedData, local_test: Sequence[np.ndarray] | None = None
) -> ClientApp:
    """A Flower ``ClientApp`` running FedLoGe's client on partition ``partition-id`` of ``data``.

    ``train``: load the global backbone, SSE-C and ``g_aux``; load (the first time: draw, from
    :func:`~paperzoo.federated.baselines.client_seed` of round 0) the client's local head from
    ``context.state``; one local round (:func:`fedloge_local_update`); keep the local head in
    ``context.state``; reply with the backbone and ``g_aux`` only (never the local head nor
    SSE-C) and ``num-examples``. ``evaluate``: :func:`local_metrics` on the client's local test
    set ``data.x_test[local_test[k]]`` (``num-examples`` 0 when it has none, or without
    ``local_test``). ``model_fn()`` builds the model the server's arrays load into.
    """
    tests = _check_local_test(data, local_test)
    app = ClientApp()

    def _setup(msg: Message, ctx: Context) -> tuple[FedLoGeModel, nn.Linear, int, ConfigRecord]:
        k = partition_id(ctx)
        if not 0 <= k < data.num_clients:
            raise ValueError(f"partition-id {k} has no data: the run has {data.num_clients} clients")
        cfg = msg.content["config"]
        model = model_fn()
        load_arrays(model, msg.content["arrays"])
        l_head = model.new_local_head(client_seed(int(cfg["seed"]), 0, k))
        load_state(ctx, L_HEAD_KEY, l_head)
        return model, l_head, k, cfg

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        model, l_head, k, cfg = _setup(msg, ctx)
        x, y = data.client(k)
        loss = fedloge_local_update(
            model, l_head, x, y,
            epochs=int(cfg["local-epochs"]), batch_size=min(int(cfg["batch-size"]), len(y)),
            lr=float(cfg["lr"]), momentum=float(cfg["momentum"]),
            seed=client_seed(int(cfg["seed"]), int(cfg["server-round"]), k),
        )  # fmt: skip
        save_state(ctx, L_HEAD_KEY, l_head)
        metrics = MetricRecord({"num-examples": len(y), "train-loss": loss})
        return Message(RecordDict({"arrays": ArrayRecord(_shared_state(model)), "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        model, l_head, k, cfg = _setup(msg, ctx)
        idx = torch.from_numpy(tests[k]) if tests is not None else torch.zeros(0, dtype=torch.long)
        metrics: dict[str, float | int] = {"num-examples": int(idx.numel())}
        if idx.numel():
            x, y = data.x_test[idx], data.y_test[idx]
            metrics |= local_metrics(model, l_head, x, y, bool(cfg["normalize-global"]))
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


def mean_over_clients(records: list[RecordDict], weighting_metric_name: str) -> MetricRecord:
    """Unweighted mean of each metric over the clients that evaluated something (the
    reference's personalised accuracy is the plain mean over clients); a Flower
    ``evaluate_metrics_aggr_fn``."""
    rows = [next(iter(r.metric_records.values())) for r in records]
    rows = [r for r in rows if float(r[weighting_metric_name]) > 0]  # type: ignore[arg-type]
    keys = [k for k in rows[0] if k != weighting_metric_name] if rows else []
    # math.fsum is exactly rounded, so the mean does not depend on the order the replies arrive in
    return MetricRecord({k: math.fsum(float(r[k]) for r in rows) / len(rows) for k in keys})  # type: ignore[arg-type]


class FedLoGeStrategy(FedAvg):
    """FedLoGe's server: FedAvg of the backbone and ``g_aux`` (weighted by ``num-examples``), SSE-C fixed.

    ``configure_train`` remembers the fixed SSE-C arrays of the global model it sends;
    ``aggregate_train`` averages what the clients return (the shared parts only; a reply
    carrying SSE-C is an error) and puts the remembered SSE-C back, bit-identical. Client
    sampling and evaluation rounds are FedAvg's; client metrics are averaged over clients without
    weights (:func:`mean_over_clients`). The reference's class-wise aggregation (off by default
    there) is not implemented.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("evaluate_metrics_aggr_fn", mean_over_clients)
        super().__init__(**kwargs)
        self.fixed_arrays: dict[str, Any] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.fixed_arrays = {k: v for k, v in arrays.items() if k.startswith(FIXED_PREFIX)}
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        for msg in replies:
            if not msg.has_error() and any(k.startswith(FIXED_PREFIX) for k in msg.content["arrays"]):
                raise ValueError("a FedLoGe client returned the fixed SSE-C; clients send the shared parts only")
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        merged = ArrayRecord()
        for k, v in [*self.fixed_arrays.items(), *arrays.items()]:
            merged[k] = v
        return merged, metrics


def generic_metrics(
    model: FedLoGeModel,
    x: torch.Tensor,
    y: torch.Tensor,
    shots: tuple[np.ndarray, ...] | None = None,
    scale: float = 1.7,
    power: float = 1.0,
) -> dict[str, float]:
    """Accuracy of the generic models (``sse``, ``g_aux``, ``ga_fr``) on a (balanced) test set
    and, with ``shots = shot_split(train_counts)``, their head / middle / tail accuracy (NaN for
    an empty group)."""
    preds = generic_predictions(model, x, scale, power)
    out: dict[str, float] = {}
    for name, p in preds.items():
        hit = (p == y).double()
        out[f"{name} acc"] = float(hit.mean())
        if shots is not None:
            for part, classes in zip(("head", "middle", "tail"), shots, strict=True):
                sel = torch.isin(y, torch.as_tensor(classes, dtype=y.dtype))
                out[f"{name} {part} acc"] = float(hit[sel].mean()) if bool(sel.any()) else math.nan
    return out


def fedloge_server_app(
    model_fn: Callable[[], FedLoGeModel], data: FederatedData, config: FedLoGeConfig, history: FedLoGeHistory
) -> ServerApp:
    """A Flower ``ServerApp`` running :class:`FedLoGeStrategy` for ``config.rounds`` rounds.

    Every round: training on ``max(fraction_train * K, 1)`` clients, client-side evaluation of the
    personalised models on every client, and server-side evaluation of the generic models on
    ``data``'s test set (:func:`generic_metrics`; head / middle / tail from the training counts).
    Everything goes into ``history``.
    """
    counts = np.bincount(data.y.numpy(), minlength=data.num_classes)
    shots = shot_split(counts)
    app = ServerApp()

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        if server_round == 0:  # the initial model: not a round
            return MetricRecord({})
        model = model_fn()
        load_arrays(model, arrays)
        metrics = generic_metrics(model, data.x_test, data.y_test, shots, config.ga_scale, config.ga_power)
        history.generic[server_round] = metrics
        return MetricRecord({k: v for k, v in metrics.items() if not math.isnan(v)})

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        start = time.perf_counter()
        n = data.num_clients
        strategy = FedLoGeStrategy(
            fraction_train=config.fraction_train, fraction_evaluate=1.0,
            min_train_nodes=max(1, int(config.fraction_train * n)), min_evaluate_nodes=n, min_available_nodes=n,
        )  # fmt: skip
        torch.manual_seed(config.seed)
        initial = model_fn()
        local = config.local
        result = strategy.start(
            grid=grid,
            initial_arrays=arrays_of(initial),
            num_rounds=config.rounds,
            train_config=ConfigRecord(
                {
                    "local-epochs": local.epochs,
                    "batch-size": local.batch_size,
                    "lr": local.lr,
                    "momentum": local.momentum,
                    "seed": config.seed,
                    "normalize-global": config.normalize_global,
                }
            ),  # fmt: skip
            evaluate_config=ConfigRecord({"seed": config.seed, "normalize-global": config.normalize_global}),
            evaluate_fn=evaluate_fn,
        )
        history.personal.update(
            {r: {k: float(v) for k, v in m.items()} for r, m in result.evaluate_metrics_clientapp.items()}
        )  # type: ignore[arg-type]
        history.train_loss.update({r: float(m["train-loss"]) for r, m in result.train_metrics_clientapp.items()})  # type: ignore[arg-type]
        history.final_state = result.arrays.to_torch_state_dict()
        history.wall_s = time.perf_counter() - start

    return app


def fedloge_apps(
    model_fn: Callable[[], FedLoGeModel],
    data: FederatedData,
    config: FedLoGeConfig | None = None,
    *,
    local_test: Sequence[np.ndarray] | None = None,
) -> tuple[ServerApp, ClientApp, FedLoGeHistory]:
    """FedLoGe's ``ServerApp`` and ``ClientApp`` and the history they fill, for
    :func:`paperzoo.federated.flower.run_federation` (in process or on Ray's simulation engine).

    Args:
        model_fn: builds a :class:`FedLoGeModel` (backbone + the run's SSE-C); the global model
            starts as ``model_fn()`` drawn from torch's generator seeded with ``config.seed``.
        data: the clients' partitions and the (balanced) global test set.
        config: the run (:class:`FedLoGeConfig`; official defaults if omitted).
        local_test: per client, indices into ``data``'s test set forming its local test set
            (:func:`local_test_indices`); without it the personalised metrics are not computed.
    """
    config = config or FedLoGeConfig()
    history = FedLoGeHistory()
    server = fedloge_server_app(model_fn, data, config, history)
    client = fedloge_client_app(model_fn, data, local_test)
    return server, client, history
