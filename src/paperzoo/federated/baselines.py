"""FedAvg and FedProx on Flower, for any classification model: the baselines every federated
table here needs, and the pattern the methods of the papers follow.

:class:`FederatedData` holds each client's samples and a server-side test set;
:func:`fedavg_apps` builds the ``ServerApp`` (Flower's ``FedAvg``, or ``FedProx`` with
``proximal_mu > 0``, evaluating the global model on the test set after every round) and the
``ClientApp`` (``local_epochs`` of SGD on its partition, with FedProx's proximal term
``mu / 2 * ||w - w_global||^2`` when the server sends ``proximal-mu``). The
:class:`FederatedHistory` returned with them receives the per-round metrics and the final global
model.

:func:`fedavg_reference` runs the same computation as a plain round loop without Flower. It is
the reference for the equality test and for measuring what Flower costs over the same work.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from paperzoo._validation import Interval, check_finite, check_labels, validate_params
from paperzoo.engine import TrainConfig, fit, make_loader
from paperzoo.federated.flower import arrays_of, load_arrays, partition_id
from paperzoo.federated.partition import check_partitions

__all__ = [
    "FederatedData",
    "FederatedHistory",
    "LocalTraining",
    "accuracy_handler",
    "client_seed",
    "evaluate_accuracy",
    "fedavg_apps",
    "fedavg_reference",
    "local_train",
    "node_counts",
    "serve",
]


@dataclass(frozen=True, eq=False)
class FederatedData:
    """Samples ``x`` (N, ...) with labels ``y`` (N,), the index array of each client, and a
    server-side test set.

    Raises:
        ValueError: an empty client, an index out of range, a sample on two clients, labels out of
            ``[0, num_classes)``, NaN in the inputs.
    """

    x: torch.Tensor
    y: torch.Tensor
    partitions: tuple[np.ndarray, ...]
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "partitions", tuple(np.asarray(p, dtype=np.int64) for p in self.partitions))
        check_finite(self.x, "x")
        check_labels(self.y, self.x.shape[0], "y", self.num_classes)
        check_labels(self.y_test, self.x_test.shape[0], "y_test", self.num_classes)
        check_partitions(self.partitions, self.x.shape[0])

    @property
    def num_clients(self) -> int:
        return len(self.partitions)

    def client(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client ``k``'s samples and labels."""
        idx = torch.tensor(self.partitions[k])
        return self.x[idx], self.y[idx]


@dataclass
class FederatedHistory:
    """What a federated run leaves behind: the server's metrics after each round (``rounds[r]``
    for round ``r + 1``), the clients' mean accuracy of the global model on their own data after
    each round (weighted by sample count), the final global state, and the wall time of the run."""

    rounds: list[dict[str, float]] = field(default_factory=list)
    client_accuracy: list[float] = field(default_factory=list)
    final_state: dict[str, torch.Tensor] | None = None
    wall_s: float = 0.0

    def metric(self, name: str) -> list[float]:
        """``name`` after each round."""
        return [r[name] for r in self.rounds]


@dataclass(frozen=True)
class LocalTraining:
    """A client's local recipe: ``epochs`` of SGD (``lr``, momentum, weight decay) on batches of
    ``batch_size``."""

    epochs: int = 1
    lr: float = 0.05
    batch_size: int = 32
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        validate_params(
            {
                "epochs": [Interval(int, 1, math.inf, closed="left")],
                "lr": [Interval(float, 0, math.inf, closed="neither")],
                "batch_size": [Interval(int, 1, math.inf, closed="left")],
                "momentum": [Interval(float, 0, 1, closed="left")],
                "weight_decay": [Interval(float, 0, math.inf, closed="left")],
            },
            vars(self),
            owner="LocalTraining",
        )


def client_seed(seed: int, server_round: int, client: int) -> int:
    """The seed of one client's local training in one round: distinct per (run, round, client)."""
    return (seed * 1_000_003 + server_round * 10_007 + client) % (2**31)


def local_train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: LocalTraining,
    seed: int,
    *,
    proximal_mu: float = 0.0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> float:
    """Train ``model`` in place on ``(x, y)`` with ``recipe`` through :func:`paperzoo.engine.fit`;
    with ``proximal_mu > 0`` the loss gains FedProx's ``mu / 2 * ||w - w_start||^2`` (Li et al.,
    MLSys 2020, eq. 2), ``w_start`` the weights on entry. Returns the mean training loss."""
    anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []

    def compute_loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        xb, yb = batch
        loss = loss_fn(m(xb), yb)
        if anchor:
            loss = loss + proximal_mu / 2 * sum(
                (p - a).pow(2).sum() for p, a in zip(m.parameters(), anchor, strict=True)
            )
        return loss

    loader = make_loader(TensorDataset(x, y), min(recipe.batch_size, len(y)), seed=seed)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    model.train()
    history = fit(
        model,
        None,
        loader,
        optimiser,
        TrainConfig(epochs=recipe.epochs, seed=seed, progress=False),
        compute_loss=compute_loss,
    )
    return float(np.mean(history.losses)) if history.losses else float("nan")


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> float:
    """Top-1 accuracy of ``model`` (evaluation mode) on ``(x, y)``."""
    model.eval()
    pred = torch.cat([model(x[i : i + chunk]).argmax(1) for i in range(0, len(x), chunk)])
    return float((pred == y).double().mean())


def fedavg_apps(
    model_fn: Callable[[], nn.Module],
    data: FederatedData,
    *,
    rounds: int,
    local: LocalTraining | None = None,
    proximal_mu: float = 0.0,
    seed: int = 0,
    fraction_train: float = 1.0,
) -> tuple[ServerApp, ClientApp, FederatedHistory]:
    """FedAvg (McMahan et al., AISTATS 2017) or, with ``proximal_mu > 0``, FedProx (Li et al.,
    MLSys 2020) as Flower apps, with Flower's own strategies.

    The global model starts as ``model_fn()`` (drawn from torch's generator seeded with ``seed``);
    each round the server sends it to ``fraction_train`` of the clients, each trains with ``local``
    from :func:`client_seed`, and the server averages the replies weighted by sample count, then
    evaluates on ``data``'s test set (``"accuracy"``) into the returned history.
    """
    recipe = local or LocalTraining()
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if proximal_mu < 0:
        raise ValueError(f"proximal_mu must be >= 0, got {proximal_mu}")
    history = FederatedHistory()
    client = ClientApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        k = partition_id(context)
        model = model_fn()
        load_arrays(model, msg.content["arrays"])
        config = msg.content["config"]
        x, y = data.client(k)
        loss = local_train(
            model,
            x,
            y,
            recipe,
            client_seed(seed, int(config["server-round"]), k),
            proximal_mu=float(config.get("proximal-mu", 0.0)),
        )
        metrics = MetricRecord({"num-examples": len(y), "train-loss": loss})
        return Message(RecordDict({"arrays": arrays_of(model), "metrics": metrics}), reply_to=msg)

    client.evaluate()(accuracy_handler(model_fn, data))
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        common = node_counts(data.num_clients, fraction_train, client_evaluation=True)
        strategy = FedProx(proximal_mu=proximal_mu, **common) if proximal_mu > 0 else FedAvg(**common)
        result = serve(grid, strategy, model_fn, data, history, rounds=rounds, seed=seed)
        history.client_accuracy = [
            float(result.evaluate_metrics_clientapp[r]["accuracy"]) for r in sorted(result.evaluate_metrics_clientapp)
        ]

    return server, client, history


def node_counts(num_clients: int, fraction_train: float, *, client_evaluation: bool) -> dict[str, Any]:
    """The node arguments of a Flower ``FedAvg``-family strategy: ``fraction_train`` of the clients train
    each round; every client evaluates the global model on its own data when ``client_evaluation``."""
    return {
        "fraction_train": fraction_train,
        "fraction_evaluate": 1.0 if client_evaluation else 0.0,
        "min_train_nodes": max(1, round(fraction_train * num_clients)),
        "min_evaluate_nodes": num_clients if client_evaluation else 0,
        "min_available_nodes": num_clients,
    }


def accuracy_handler(model_fn: Callable[[], nn.Module], data: FederatedData) -> Callable[[Message, Context], Message]:
    """A ``ClientApp`` evaluate handler: the received global model's accuracy on the client's own samples."""

    def evaluate(msg: Message, context: Context) -> Message:
        k = partition_id(context)
        model = model_fn()
        load_arrays(model, msg.content["arrays"])
        x, y = data.client(k)
        metrics = MetricRecord({"num-examples": len(y), "accuracy": evaluate_accuracy(model, x, y)})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return evaluate


def serve(
    grid: Grid,
    strategy: FedAvg,
    model_fn: Callable[[], nn.Module],
    data: FederatedData,
    history: FederatedHistory,
    *,
    rounds: int,
    seed: int,
    server_metrics: Callable[[nn.Module], dict[str, float]] | None = None,
) -> Any:
    """What a server app's main function does: start ``strategy`` from ``model_fn()`` (drawn after
    seeding torch with ``seed``) for ``rounds`` rounds, evaluate the global model on ``data``'s test set
    after each round into ``history.rounds`` (``"accuracy"``, plus ``server_metrics(model)`` if given),
    and keep the final global state and the wall time. Returns Flower's result of the strategy."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    initial = model_fn()

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        if server_round == 0:  # the initial model: not a round
            return MetricRecord({})
        model = model_fn()
        load_arrays(model, arrays)
        values = {"accuracy": evaluate_accuracy(model, data.x_test, data.y_test)}
        if server_metrics is not None:
            values.update(server_metrics(model))
        history.rounds.append(values)
        return MetricRecord(values)

    result = strategy.start(
        grid=grid,
        initial_arrays=arrays_of(initial),
        num_rounds=rounds,
        train_config=ConfigRecord({}),
        evaluate_fn=evaluate,
    )
    history.final_state = result.arrays.to_torch_state_dict()
    history.wall_s = time.perf_counter() - start
    return result


def fedavg_reference(
    model_fn: Callable[[], nn.Module],
    data: FederatedData,
    *,
    rounds: int,
    local: LocalTraining | None = None,
    proximal_mu: float = 0.0,
    seed: int = 0,
) -> FederatedHistory:
    """The computation of :func:`fedavg_apps` (all clients every round) as a plain loop without
    Flower: the reference its results must equal, and the baseline of Flower's overhead."""
    recipe = local or LocalTraining()
    history = FederatedHistory()
    start = time.perf_counter()
    torch.manual_seed(seed)
    global_model = model_fn()
    for r in range(1, rounds + 1):
        states: list[dict[str, torch.Tensor]] = []
        weights: list[int] = []
        for k in range(data.num_clients):
            model = copy.deepcopy(global_model)
            x, y = data.client(k)
            local_train(model, x, y, recipe, client_seed(seed, r, k), proximal_mu=proximal_mu)
            states.append(model.state_dict())
            weights.append(len(y))
        total = float(sum(weights))
        averaged = {
            key: sum(s[key].double() * (w / total) for s, w in zip(states, weights, strict=True)).to(
                states[0][key].dtype
            )
            for key in states[0]
        }
        global_model.load_state_dict(averaged)
        history.rounds.append({"accuracy": evaluate_accuracy(global_model, data.x_test, data.y_test)})
    history.final_state = copy.deepcopy(global_model.state_dict())
    history.wall_s = time.perf_counter() - start
    return history
