"""The federated foundation: partitions and their boundary checks, the in-process Flower driver,
private client state, and FedAvg / FedProx on Flower equal to the plain-loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from torch import nn

from paperzoo.federated import (
    FederatedData,
    LocalTraining,
    check_partitions,
    dirichlet_partition,
    fedavg_apps,
    fedavg_reference,
    iid_partition,
    labelled_mask,
    load_state,
    run_federation,
    save_state,
)
from paperzoo.federated.apps import client_app, digits_federation, server_app


def _labels(n: int = 600, classes: int = 6) -> np.ndarray:
    return np.arange(n) % classes


def test_dirichlet_partition_covers_every_sample_once_and_skews_with_alpha() -> None:
    y = _labels()
    parts = dirichlet_partition(y, 5, 0.1, seed=0)
    flat = np.concatenate(parts)
    assert np.array_equal(np.sort(flat), np.arange(y.size))
    again = dirichlet_partition(y, 5, 0.1, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))

    def classes_per_client(alpha: float) -> float:
        return float(np.mean([np.unique(y[p]).size for p in dirichlet_partition(y, 5, alpha, seed=1)]))

    assert classes_per_client(0.05) < classes_per_client(100.0) == 6.0


def test_partition_errors_name_the_client() -> None:
    with pytest.raises(ValueError, match="client 1 has no samples"):
        check_partitions([np.array([0, 1]), np.array([], dtype=int)], 4)
    with pytest.raises(ValueError, match="more than one client"):
        check_partitions([np.array([0, 1]), np.array([1])], 4)
    with pytest.raises(ValueError, match=r"client 0 holds indices outside \[0, 4\)"):
        check_partitions([np.array([0, 9])], 4)
    with pytest.raises(ValueError, match="no draw in 5 tries"):
        dirichlet_partition(_labels(40), 8, 0.01, seed=0, min_size=4, max_tries=5)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        dirichlet_partition(_labels(), 3, 0.0, seed=0)


def test_iid_and_labelled_masks() -> None:
    parts = iid_partition(100, 3, seed=0)
    assert [p.size for p in parts] == [34, 33, 33]
    mask = labelled_mask(parts, 100, fraction=0.1, seed=0)
    assert [int(mask[p].sum()) for p in parts] == [3, 3, 3]
    only = labelled_mask(parts, 100, fraction=0.5, seed=0, labelled_clients=[2])
    assert int(only[parts[0]].sum()) == 0 and int(only[parts[2]].sum()) == 16
    with pytest.raises(ValueError, match="client 5 does not exist"):
        labelled_mask(parts, 100, fraction=0.5, seed=0, labelled_clients=[5])


def test_federated_data_rejects_an_empty_client() -> None:
    x, y = torch.zeros(10, 2), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="client 1 has no samples"):
        FederatedData(x, y, (np.arange(10), np.array([], dtype=np.int64)), x, y, 2)


def test_client_state_persists_across_rounds_and_stays_on_the_node() -> None:
    seen: list[float] = []
    client = ClientApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        counter = nn.Linear(1, 1, bias=False)
        if not load_state(context, "counter", counter):
            counter.weight.data.zero_()
        counter.weight.data += 1
        save_state(context, "counter", counter)
        seen.append(float(counter.weight))
        reply = RecordDict({"arrays": msg.content["arrays"], "metrics": MetricRecord({"num-examples": 1})})
        return Message(reply, reply_to=msg)

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2)
        strategy.start(grid=grid, initial_arrays=ArrayRecord(nn.Linear(2, 2).state_dict()), num_rounds=3)

    run_federation(server, client, 2)
    assert seen == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_fedavg_and_fedprox_on_flower_equal_the_plain_loop() -> None:
    data = digits_federation(3, 0.5, seed=0)

    def model_fn() -> nn.Module:
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    for mu in (0.0, 0.5):
        server, client, history = fedavg_apps(model_fn, data, rounds=2, local=LocalTraining(epochs=1), proximal_mu=mu)
        run_federation(server, client, data.num_clients)
        reference = fedavg_reference(model_fn, data, rounds=2, local=LocalTraining(epochs=1), proximal_mu=mu)
        assert history.metric("accuracy") == reference.metric("accuracy") and len(history.client_accuracy) == 2
        assert history.final_state is not None and reference.final_state is not None
        for key, value in reference.final_state.items():
            torch.testing.assert_close(history.final_state[key], value, rtol=0, atol=1e-6)
    assert history.metric("accuracy")[-1] > 0.3


def test_module_level_apps_read_the_run_config(tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "history.json"
    run_federation(server_app, client_app, 2, run_config={"num-rounds": 1, "history-file": str(out)})
    assert '"rounds": 1' in out.read_text()
    with pytest.raises(ValueError, match="backend must be"):
        run_federation(server_app, client_app, 2, backend="grpc")  # type: ignore[arg-type]
