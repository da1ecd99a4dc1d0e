"""Module-level FedAvg / FedProx apps for a real Flower deployment.

``flwr run`` loads a ``ServerApp`` and a ``ClientApp`` by name (``"module:attribute"``), so the apps
of :func:`paperzoo.federated.baselines.fedavg_apps`, which close over their data, are built here
from the run config instead: scikit-learn's digits (bundled, offline), split into
``num-clients`` Dirichlet partitions; every process (the ServerApp's and each SuperNode's) builds
the same data from the same config. Run-config keys, with their defaults: ``num-clients`` 2,
``num-rounds`` 2, ``alpha`` 0.5, ``proximal-mu`` 0.0, ``local-epochs`` 1, ``seed`` 0. The server
writes its per-round test accuracy to the path in ``history-file`` if given (JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from torch import nn

from paperzoo.federated.baselines import FederatedData, FederatedHistory, LocalTraining, fedavg_apps
from paperzoo.federated.partition import dirichlet_partition

__all__ = ["client_app", "digits_federation", "server_app"]

_DEFAULTS: dict[str, Any] = {
    "num-clients": 2,
    "num-rounds": 2,
    "alpha": 0.5,
    "proximal-mu": 0.0,
    "local-epochs": 1,
    "seed": 0,
}


def digits_federation(num_clients: int, alpha: float, seed: int) -> FederatedData:
    """scikit-learn's digits (pixels / 16): the first 1,400 samples split into ``num_clients``
    Dirichlet(``alpha``) partitions, the other 397 the server's test set."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    parts = dirichlet_partition(digits.target[:1400], num_clients, alpha, seed=seed)
    return FederatedData(x[:1400], y[:1400], tuple(parts), x[1400:], y[1400:], 10)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@lru_cache(maxsize=4)
def _apps(config: tuple[tuple[str, Any], ...]) -> tuple[ServerApp, ClientApp, FederatedHistory]:
    c = dict(config)
    data = digits_federation(int(c["num-clients"]), float(c["alpha"]), int(c["seed"]))
    return fedavg_apps(
        _mlp,
        data,
        rounds=int(c["num-rounds"]),
        local=LocalTraining(epochs=int(c["local-epochs"])),
        proximal_mu=float(c["proximal-mu"]),
        seed=int(c["seed"]),
    )


def _config(run_config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted({k: run_config.get(k, v) for k, v in _DEFAULTS.items()}.items()))


client_app = ClientApp()
server_app = ServerApp()


@client_app.train()
def _train(msg: Message, context: Context) -> Message:
    return _apps(_config(context.run_config))[1](msg, context)


@client_app.evaluate()
def _evaluate(msg: Message, context: Context) -> Message:
    return _apps(_config(context.run_config))[1](msg, context)


@server_app.main()
def _main(grid: Grid, context: Context) -> None:
    server, _, history = _apps(_config(context.run_config))
    history.rounds.clear()  # the apps are cached per config: a second run starts a fresh history
    history.client_accuracy.clear()
    server(grid, context)
    path = context.run_config.get("history-file")
    if path:
        target = Path(str(path))
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps({"accuracy": history.metric("accuracy"), "rounds": len(history.rounds)}))
        tmp.replace(target)
