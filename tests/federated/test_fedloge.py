"""FedLoGe (paper 18): realignment golden values and invariants, the three-head local update
against a naive three-optimiser reference, the strategy's aggregation, and a Flower run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from torch import nn

from paperzoo.engine import seed_everything
from paperzoo.federated.baselines import FederatedData, LocalTraining
from paperzoo.federated.fedloge import (
    L_HEAD_KEY,
    FedLoGeConfig,
    FedLoGeModel,
    FedLoGeStrategy,
    fedloge_apps,
    fedloge_client_app,
    fedloge_local_update,
    ga_fr,
    la_fr,
    local_test_indices,
    mask_logits,
    mean_over_clients,
    personalized_logits,
    shot_split,
)
from paperzoo.federated.flower import InProcessGrid, run_federation
from paperzoo.models.etf import simplex_etf, sparse_etf

D = torch.float64
W_AUX = torch.tensor([[2, 0, 1], [0.5, 0.5, 0], [0, -1, 3]], dtype=D)
B_AUX = torch.tensor([0.1, -0.2, 0.05], dtype=D)
W_L = torch.tensor([[1, 1, 0], [0, 0.2, 0], [0.3, 0, 0.4]], dtype=D)
B_L = torch.tensor([0, 0.3, -0.1], dtype=D)
FEAT = torch.tensor([[1, 2, 0.5], [0.2, -0.4, 1]], dtype=D)


def _linear(w: torch.Tensor, b: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0]).to(w.dtype)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    return lin


# --------------------------------------------------------------------------- realignment
def test_golden_ga_fr() -> None:
    w, b = ga_fr(W_AUX, B_AUX, scale=1.7)
    gold_w = torch.tensor(
        [[1.52052622, 0, 0.760263112], [1.20208153, 1.20208153, 0], [0, -0.537587202, 1.61276161]], dtype=D
    )
    torch.testing.assert_close(w, gold_w, atol=1e-8, rtol=0)
    gold_logits = torch.tensor(
        [[2.00065778, 3.40624458, -0.218793601], [1.16436836, -0.440416306, 1.87779649]], dtype=D
    )
    torch.testing.assert_close(FEAT @ w.T + b, gold_logits, atol=1e-8, rtol=0)


def test_golden_la_fr_and_personalized_logits() -> None:
    w, b = la_fr(W_AUX, B_AUX, W_L)
    gold = torch.tensor([[3.63553391, 0.1, -0.2], [2.07989899, -0.22, 1.75]], dtype=D)
    torch.testing.assert_close(FEAT @ w.T + b, gold, atol=1e-8, rtol=0)
    logits = personalized_logits(FEAT, _linear(W_L, B_L), _linear(W_AUX, B_AUX))
    torch.testing.assert_close(
        logits, torch.tensor([[6.63553391, 0.8, 0.2], [1.87989899, 0.0, 2.11]], dtype=D), atol=1e-8, rtol=0
    )


def test_ga_fr_rows_have_norm_scale_and_argmax_ignores_row_scale() -> None:
    g = torch.Generator().manual_seed(0)
    w, f = torch.randn(6, 5, generator=g, dtype=D), torch.randn(40, 5, generator=g, dtype=D)
    w_ga, _ = ga_fr(w, None, scale=2.5)
    torch.testing.assert_close(w_ga.norm(dim=1), torch.full((6,), 2.5, dtype=D))
    rescaled, _ = ga_fr(w * torch.rand(6, 1, generator=g, dtype=D).add(0.1), None, scale=2.5)
    assert torch.equal((f @ w_ga.T).argmax(1), (f @ rescaled.T).argmax(1))
    other_scale, _ = ga_fr(w, None, scale=0.3)
    assert torch.equal((f @ w_ga.T).argmax(1), (f @ other_scale.T).argmax(1))
    w0, _ = ga_fr(w, None, scale=1.0, power=0.0)  # gamma = 0: no normalisation
    torch.testing.assert_close(w0, w)


def test_la_fr_row_norms_and_equal_local_norms_keep_global_argmax() -> None:
    g = torch.Generator().manual_seed(1)
    wg, wl = torch.randn(5, 4, generator=g, dtype=D), torch.randn(5, 4, generator=g, dtype=D)
    w, _ = la_fr(wg, None, wl)
    torch.testing.assert_close(w.norm(dim=1), wl.norm(dim=1) * wg.norm(dim=1))
    wn, _ = la_fr(wg, None, wl, normalize_global=True)
    torch.testing.assert_close(wn.norm(dim=1), wl.norm(dim=1))
    equal = 3.0 * wl / wl.norm(dim=1, keepdim=True)  # every local row of norm 3
    w3, _ = la_fr(wg, None, equal)
    f = torch.randn(30, 4, generator=g, dtype=D)
    torch.testing.assert_close(f @ w3.T, 3.0 * (f @ wg.T))


def test_masked_classes_are_never_predicted_with_negative_features() -> None:
    g = torch.Generator().manual_seed(2)
    f = -torch.rand(50, 4, generator=g).add(0.5)  # all features negative
    local, glob = nn.Linear(4, 5), nn.Linear(4, 5)
    absent = torch.tensor([0, 3])
    pred = personalized_logits(f, local, glob, absent_classes=absent).argmax(1)
    assert not torch.isin(pred, absent).any()
    mask = torch.tensor([False, True, True, True, True])
    assert (mask_logits(torch.randn(7, 5), mask).argmax(1) == 0).all()


def test_realignment_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="zero row"):
        ga_fr(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="scale"):
        ga_fr(W_AUX, B_AUX, scale=0.0)
    with pytest.raises(ValueError, match="bias"):
        ga_fr(W_AUX, torch.zeros(2, dtype=D))
    with pytest.raises(ValueError, match="NaN"):
        ga_fr(torch.full((3, 3), float("nan")))
    with pytest.raises(ValueError, match="local_weight must have"):
        la_fr(W_AUX, B_AUX, torch.zeros(2, 3, dtype=D))
    with pytest.raises(ValueError, match="every class"):
        mask_logits(torch.zeros(2, 3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="absent_classes"):
        mask_logits(torch.zeros(2, 3), torch.tensor([3]))
    with pytest.raises(ValueError, match="features"):
        personalized_logits(torch.zeros(2, 4, dtype=D), _linear(W_L, B_L), _linear(W_AUX, B_AUX))


# --------------------------------------------------------------------------- data helpers
def test_shot_split_golden() -> None:
    head, middle, tail = shot_split([500, 300, 100, 50, 30, 20])
    assert head.tolist() == [0, 1] and middle.tolist() == [2, 3] and tail.tolist() == [4, 5]
    head, middle, tail = shot_split([20, 500, 30, 300, 50, 100])  # order does not matter
    assert head.tolist() == [1, 3] and middle.tolist() == [4, 5] and tail.tolist() == [0, 2]
    with pytest.raises(ValueError, match="counts"):
        shot_split([0, 0])


def test_local_test_indices_follow_the_client_distribution() -> None:
    test_labels = np.repeat(np.arange(4), 100)
    counts = np.array([60, 30, 10, 0])
    idx = local_test_indices(counts, test_labels, num_train=200, rng=np.random.default_rng(0))
    # floor(n_kc / 200 * 400) = 120, 60, 20, 0; the first capped at the 100 test images of class 0
    assert np.bincount(test_labels[idx], minlength=4).tolist() == [100, 60, 20, 0]
    assert np.unique(idx).size == idx.size
    small = local_test_indices(np.array([1, 0, 0, 0]), test_labels, num_train=1000, rng=np.random.default_rng(0))
    assert small.size == 0


# --------------------------------------------------------------------------- local update
def _model(seed: int = 0, d: int = 6, c: int = 4) -> FedLoGeModel:
    torch.manual_seed(seed)
    return FedLoGeModel(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, d)), simplex_etf(d, c))


def _toy(n: int = 40, seed: int = 0, c: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, c, (n,), generator=g)


def test_detach_semantics_of_the_three_losses() -> None:
    model = _model()
    l_head = model.new_local_head(1)
    x, y = _toy()
    f = model.features(x)
    aux = F.cross_entropy(model.g_aux(f.detach()), y) + F.cross_entropy(l_head(f.detach()), y)
    aux.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    model.zero_grad(set_to_none=True)
    l_head.zero_grad(set_to_none=True)
    F.cross_entropy(model.sse(model.features(x)), y).backward()
    assert model.g_aux.weight.grad is None and l_head.weight.grad is None
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_local_update_equals_three_separate_optimisers() -> None:
    """The reference (update_weights_gaux): three SGD optimisers, one per part, same batches."""
    x, y = _toy(50)
    ours, ref = _model(3), _model(3)
    l_ours, l_ref = ours.new_local_head(9), ref.new_local_head(9)
    sse_before = ours.sse.weight.clone()
    epochs, bs, lr, mom, seed = 2, 8, 0.1, 0.5, 11
    fedloge_local_update(ours, l_ours, x, y, epochs=epochs, batch_size=bs, lr=lr, momentum=mom, seed=seed)
    opts = [
        torch.optim.SGD(ref.backbone.parameters(), lr=lr, momentum=mom),
        torch.optim.SGD(ref.g_aux.parameters(), lr=lr, momentum=mom),
        torch.optim.SGD(l_ref.parameters(), lr=lr, momentum=mom),
    ]
    for epoch in range(epochs):
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(0, len(y), bs):
            xb, yb = x[perm[i : i + bs]], y[perm[i : i + bs]]
            f = ref.features(xb)
            losses = [
                F.cross_entropy(ref.sse(f), yb),
                F.cross_entropy(ref.g_aux(f.detach()), yb),
                F.cross_entropy(l_ref(f.detach()), yb),
            ]
            for opt, loss in zip(opts, losses, strict=True):
                opt.zero_grad()
                loss.backward()
                opt.step()
    for a, b in zip([*ours.parameters(), *l_ours.parameters()], [*ref.parameters(), *l_ref.parameters()], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    assert torch.equal(ours.sse.weight, sse_before) and torch.equal(ours.sse.bias, torch.zeros(4))


def test_local_update_rejects_bad_input() -> None:
    model = _model()
    with pytest.raises(ValueError, match="empty partition"):
        fedloge_local_update(model, model.new_local_head(0), torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    x, y = _toy()
    with pytest.raises(ValueError, match="y"):
        fedloge_local_update(model, model.new_local_head(0), x, y + 4)
    with pytest.raises(ValueError, match="lr"):
        fedloge_local_update(model, model.new_local_head(0), x, y, lr=0.0)


# --------------------------------------------------------------------------- strategy
@pytest.fixture
def inprocess_identity() -> None:
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0


def _reply(arrays: dict[str, torch.Tensor], n: int) -> Message:
    content = RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"num-examples": n})})
    msg = Message(content, dst_node_id=1, message_type="train")
    return Message(content, reply_to=msg)


def test_strategy_averages_shared_parts_and_keeps_sse_bit_identical(inprocess_identity: None) -> None:
    model = _model()
    state = model.state_dict()
    strategy = FedLoGeStrategy(min_available_nodes=1, min_train_nodes=1)
    strategy.fixed_arrays = {k: v for k, v in ArrayRecord(state).items() if k.startswith("sse.")}
    shared = {k: v for k, v in state.items() if not k.startswith("sse.")}
    other = {k: v + 1.0 for k, v in shared.items()}
    arrays, _ = strategy.aggregate_train(1, [_reply(shared, 1), _reply(other, 3)])
    out = arrays.to_torch_state_dict()
    assert torch.equal(out["sse.weight"], state["sse.weight"]) and torch.equal(out["sse.bias"], state["sse.bias"])
    for k, v in shared.items():
        torch.testing.assert_close(out[k], v + 0.75)
    with pytest.raises(ValueError, match="SSE-C"):
        strategy.aggregate_train(1, [_reply(state, 1)])


def test_mean_over_clients_is_unweighted_and_skips_empty_clients() -> None:
    recs = [
        RecordDict({"m": MetricRecord({"num-examples": 10, "acc": 1.0})}),
        RecordDict({"m": MetricRecord({"num-examples": 1000, "acc": 0.0})}),
        RecordDict({"m": MetricRecord({"num-examples": 0})}),
    ]
    assert dict(mean_over_clients(recs, "num-examples")) == {"acc": 0.5}


# --------------------------------------------------------------------------- Flower run
def _federation(num_clients: int = 3, seed: int = 0) -> tuple[FederatedData, tuple[np.ndarray, ...]]:
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(4, 5, generator=g) * 2
    y = torch.randint(0, 4, (120,), generator=g)
    x = proto[y] + torch.randn(120, 5, generator=g)
    yt = torch.arange(4).repeat_interleave(30)
    xt = proto[yt] + torch.randn(120, 5, generator=g)
    parts = [np.sort(p) for p in np.array_split(np.argsort(y.numpy(), kind="stable"), num_clients)]  # label skew
    rng = np.random.default_rng(seed)
    local = tuple(local_test_indices(np.bincount(y.numpy()[p], minlength=4), yt.numpy(), 120, rng) for p in parts)
    return FederatedData(x, y, tuple(parts), xt, yt, 4), local


def test_flower_run_keeps_sse_and_local_heads_on_the_clients() -> None:
    data, local = _federation()
    sse = sparse_etf(6, 4, target_norm=1.0, steps=30, lr=1e-3)

    def model_fn() -> FedLoGeModel:
        return FedLoGeModel(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6)), sse)

    cfg = FedLoGeConfig(rounds=2, local=LocalTraining(epochs=1, lr=0.1, batch_size=16, momentum=0.5))
    seed_everything(0)  # Flower samples the clients with Python's generator
    server, client, history = fedloge_apps(model_fn, data, cfg, local_test=local)
    run_federation(server, client, data.num_clients)
    assert sorted(history.generic) == [1, 2] and sorted(history.personal) == [1, 2]
    assert torch.equal(history.final_state["sse.weight"], sse)
    assert not any("l_head" in k for k in history.final_state)
    assert {"personal acc", "l_head acc", "g_aux acc"} <= set(history.personal[2])
    assert {"sse acc", "ga_fr acc", "ga_fr tail acc"} <= set(history.generic[2])
    assert all(0.0 <= v <= 1.0 for v in history.personal[2].values())
    # same seed, same numbers
    seed_everything(0)
    server2, client2, history2 = fedloge_apps(model_fn, data, cfg, local_test=local)
    run_federation(server2, client2, data.num_clients)
    assert history2.generic == history.generic and history2.personal == history.personal


def test_local_heads_persist_across_rounds_in_context_state(inprocess_identity: None) -> None:
    data, local = _federation(2)
    client = fedloge_client_app(lambda: _model(0), data, local)
    grid = InProcessGrid(client, 2)
    arrays = ArrayRecord(_model(0).state_dict())
    config = {"local-epochs": 1, "batch-size": 8, "lr": 0.1, "momentum": 0.5, "seed": 0, "normalize-global": False}
    heads = []
    for rnd in (1, 2):
        content = RecordDict({"arrays": arrays, "config": ConfigRecord({**config, "server-round": rnd})})
        (reply,) = grid.send_and_receive([Message(content, dst_node_id=1, message_type="train")])
        assert not any(k.startswith(("sse.", "l_head")) for k in reply.content["arrays"])
        heads.append(grid.contexts[1].state[L_HEAD_KEY].to_torch_state_dict()["weight"].clone())
    assert not torch.equal(heads[0], heads[1])  # round 2 trained on from the head kept after round 1
    assert L_HEAD_KEY not in grid.contexts[2].state  # node 2 never trained


def test_config_and_apps_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="fraction_train"):
        FedLoGeConfig(fraction_train=0.0)
    with pytest.raises(ValueError, match="rounds"):
        FedLoGeConfig(rounds=0)
    with pytest.raises(ValueError, match="weight decay"):
        FedLoGeConfig(local=LocalTraining(weight_decay=1e-4))
    data, local = _federation()
    with pytest.raises(ValueError, match="one index array per client"):
        fedloge_apps(lambda: _model(0), data, local_test=local[:2])
    with pytest.raises(ValueError, match="client 1 has no samples"):
        FederatedData(data.x, data.y, (np.arange(10), np.array([], dtype=np.int64)), data.x_test, data.y_test, 4)


@pytest.mark.slow
def test_same_apps_run_on_the_simulation_engine() -> None:
    """The apps of the in-process run, unchanged, on Ray's simulation engine (about a minute)."""
    data, local = _federation()
    sse = sparse_etf(6, 4, target_norm=1.0, steps=30, lr=1e-3)

    def model_fn() -> FedLoGeModel:
        return FedLoGeModel(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6)), sse)

    cfg = FedLoGeConfig(rounds=2, local=LocalTraining(epochs=1, lr=0.1, batch_size=16, momentum=0.5))
    server, client, history = fedloge_apps(model_fn, data, cfg, local_test=local)
    run_federation(server, client, data.num_clients)
    server_s, client_s, history_s = fedloge_apps(model_fn, data, cfg, local_test=local)
    run_federation(server_s, client_s, data.num_clients, backend="simulation")
    assert sorted(history_s.generic) == [1, 2]
    for k, v in history.generic[2].items():
        assert (
            math.isnan(v)
            and math.isnan(history_s.generic[2][k])
            or v == pytest.approx(history_s.generic[2][k], abs=1e-3)
        )
    for k, v in history.personal[2].items():
        assert v == pytest.approx(history_s.personal[2][k], abs=1e-3)
