"""FedLD (paper 21): the margin-control loss, principal-gradient aggregation, the loss decomposition
and the Flower strategy / client. Golden values come from the official ``MarginalLogLoss`` and
``pcgrad_svd`` (float64, k_prop = 0.8)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.federated.fedld import (
    MarginControlLoss,
    _reference_margin_control_loss,
    aggregate_state_updates,
    decomposition_from_losses,
    loss_decomposition,
    margin_control_loss,
    margin_regulariser,
    principal_gradient_aggregate,
    principal_gradient_revise,
)
from paperzoo.testing import classification_loss_checks

D64 = torch.float64
LOGITS = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [3.0, 0.0, -2.0]]
TARGET = [0, 2, 1, 1]
G = [
    [1.0, 0.5, -0.2, 0.0, 0.3, 0.1],
    [0.8, 0.7, 0.1, 0.2, -0.1, 0.0],
    [-0.3, 0.9, 0.4, 0.1, 0.2, -0.2],
    [1.2, -0.4, 0.0, 0.3, 0.1, 0.4],
    [0.5, 0.6, 0.2, -0.5, 0.0, 0.1],
]
SCALAR = [0.1, 0.3, 0.2, -0.1, 0.5]


# --------------------------------------------------------------------------- margin-control loss
@pytest.mark.parametrize(
    ("lam", "loss", "grad0"),
    [
        (0.03, 1.18840308, [-0.0517465857, 0.00936442528, 0.0423821605]),
        (0.1, 1.27532978, [-0.0474202227, 0.00839908319, 0.0390211395]),
    ],
)
def test_margin_loss_golden(lam, loss, grad0) -> None:
    z = torch.tensor(LOGITS, dtype=D64, requires_grad=True)
    y = torch.tensor(TARGET)
    assert float(F.cross_entropy(z.detach(), y)) == pytest.approx(1.15114877, abs=1e-8)
    out = MarginControlLoss(lam)(z, y)
    (g,) = torch.autograd.grad(out, z)
    assert float(out.detach()) == pytest.approx(loss, abs=1e-8)
    torch.testing.assert_close(g[0], torch.tensor(grad0, dtype=D64), rtol=0, atol=1e-10)


def test_margin_loss_matches_naive_reference_and_functional() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 7, generator=g, dtype=D64) * 3
    y = torch.randint(0, 7, (64,), generator=g)
    ref = _reference_margin_control_loss()(z, y)
    torch.testing.assert_close(MarginControlLoss(0.1)(z, y), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(margin_control_loss(z, y, lam=0.1), ref, rtol=1e-12, atol=1e-12)


def test_lambda_zero_is_cross_entropy_and_batch_bounds() -> None:
    g = torch.Generator().manual_seed(1)
    z, y = torch.randn(16, 5, generator=g, dtype=D64), torch.randint(0, 5, (16,), generator=g)
    torch.testing.assert_close(MarginControlLoss(0.0)(z, y), F.cross_entropy(z, y))
    b, c = 16, 5
    # constant rows: uniform softmax, the minimum log(1 + B/C); one-hot rows: the limit log(1 + B)
    flat = margin_regulariser(torch.softmax(torch.full((b, c), 0.7, dtype=D64), 1))
    assert float(flat) == pytest.approx(math.log1p(b / c), abs=1e-12)
    peaked = margin_regulariser(torch.softmax(60.0 * F.one_hot(y, c).to(D64), 1))
    assert float(peaked) == pytest.approx(math.log1p(b), abs=1e-12)
    rand = float(margin_regulariser(torch.softmax(z, 1)))
    assert math.log1p(b / c) < rand < math.log1p(b)
    # invariant to a constant added to a row's logits
    shifted = z + torch.randn(b, 1, generator=g, dtype=D64) * 5
    torch.testing.assert_close(MarginControlLoss(0.3)(shifted, y), MarginControlLoss(0.3)(z, y))


def test_regulariser_gradient_rows_sum_to_zero_and_lower_the_top_logit() -> None:
    g = torch.Generator().manual_seed(2)
    z = (torch.randn(10, 6, generator=g, dtype=D64) * 2).requires_grad_(True)
    (grad,) = torch.autograd.grad(margin_regulariser(torch.softmax(z, 1)), z)
    torch.testing.assert_close(grad.sum(1), torch.zeros(10, dtype=D64), rtol=0, atol=1e-14)
    top = z.detach().argmax(1)
    assert bool((grad.gather(1, top[:, None]) > 0).all())  # descent lowers the largest logit


def test_sample_variant_is_batch_size_independent() -> None:
    g = torch.Generator().manual_seed(3)
    z, y = torch.randn(8, 4, generator=g, dtype=D64), torch.randint(0, 4, (8,), generator=g)
    zz, yy = torch.cat([z, z]), torch.cat([y, y])
    loss = MarginControlLoss(0.5, reduction_over="sample")
    torch.testing.assert_close(loss(zz, yy), loss(z, y))
    batch = MarginControlLoss(0.5)
    assert float(batch(zz, yy)) > float(batch(z, y))  # the paper's batch norm grows with B
    # weights are row multiplicities: weight 2 on every row == the batch repeated
    torch.testing.assert_close(batch(z, y, torch.full((8,), 2.0, dtype=D64)), batch(zz, yy))


def test_hand_written_backward_matches_autograd_of_the_formula() -> None:
    g = torch.Generator().manual_seed(7)
    z = (torch.randn(20, 9, generator=g, dtype=D64) * 2).requires_grad_(True)
    y = torch.randint(0, 9, (20,), generator=g)
    w = torch.rand(20, generator=g, dtype=D64)
    for over in ("batch", "sample"):
        for weight in (None, w):
            ours = margin_control_loss(z, y, 0.4, over, weight=weight)
            nll = F.cross_entropy(z, y, reduction="none")
            ce = nll.mean() if weight is None else (weight * nll).sum() / weight.sum()
            ref = ce + 0.4 * margin_regulariser(torch.softmax(z, 1), over, weight)
            (g1,), (g2,) = torch.autograd.grad(ours, z), torch.autograd.grad(ref, z)
            torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def test_gradcheck() -> None:
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 4, generator=g, dtype=D64, requires_grad=True)
    y = torch.randint(0, 4, (6,), generator=g)
    w = torch.rand(6, generator=g, dtype=D64) + 0.1
    for over in ("batch", "sample"):
        assert torch.autograd.gradcheck(lambda t, o=over: margin_control_loss(t, y, 0.3, o), (z,))
        assert torch.autograd.gradcheck(lambda t, o=over: margin_control_loss(t, y, 0.3, o, weight=w), (z,))


def test_bad_input() -> None:
    z, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="lam"):
        MarginControlLoss(-0.1)
    with pytest.raises(ValueError, match="reduction_over"):
        MarginControlLoss(0.1, reduction_over="row")
    with pytest.raises(ValueError, match="reduction"):
        MarginControlLoss(0.1, reduction="none")
    with pytest.raises(ValueError, match="reduction"):
        margin_control_loss(z, y, reduction="sum")
    with pytest.raises(ValueError, match="target"):
        MarginControlLoss()(z, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="NaN"):
        MarginControlLoss()(torch.full((4, 3), float("nan")), y)


CHECKS = [
    (name, check)
    for name, check in classification_loss_checks(MarginControlLoss, margin_control_loss)
    if name.startswith("bad_input") or name in ("pickle_round_trip", "state_dict_round_trip")
]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[n for n, _ in CHECKS])
def test_conformance(name, check) -> None:
    check()


# --------------------------------------------------------------------------- principal-gradient aggregation
def test_aggregation_golden() -> None:
    g = torch.tensor(G, dtype=D64)
    expected = [0.330395525, 0.298702348, 0.0609478787, 0.00791694835, 0.0433585862, 0.0260128250]
    torch.testing.assert_close(principal_gradient_aggregate(g), torch.tensor(expected, dtype=D64), rtol=0, atol=1e-9)
    eig = torch.linalg.eigvalsh(g @ g.T / 5).flip(0)
    golden_eig = [0.757430165, 0.423386443, 0.0705457618, 0.0290066573, 0.0196309735]
    torch.testing.assert_close(eig, torch.tensor(golden_eig, dtype=D64), rtol=0, atol=1e-9)
    ratio = principal_gradient_revise(g).norm(dim=1) / g.norm(dim=1)
    torch.testing.assert_close(ratio, torch.full((5,), 0.670059003, dtype=D64), rtol=0, atol=1e-9)
    # the closed form of the norm ratio: sqrt(sum_{j<=k} (s_j / sum s)^2), k = floor(0.8 * 5) = 4
    share = eig / eig.sum()
    assert float(ratio[0]) == pytest.approx(float(share[:4].square().sum().sqrt()), abs=1e-12)


def test_state_aggregation_rounds_golden() -> None:
    glob = {"w": torch.zeros(2, 3, dtype=D64), "b": torch.zeros(1, dtype=D64)}
    clients = [
        {"w": torch.tensor(r, dtype=D64).reshape(2, 3), "b": torch.tensor([s], dtype=D64)} for r, s in zip(G, SCALAR)
    ]
    first = aggregate_state_updates(glob, clients, first_round=True)
    torch.testing.assert_close(first["w"].reshape(-1), torch.tensor([0.64, 0.46, 0.10, 0.02, 0.10, 0.08], dtype=D64))
    torch.testing.assert_close(first["b"], torch.tensor([0.2], dtype=D64))
    later = aggregate_state_updates(glob, clients)
    torch.testing.assert_close(later["w"].reshape(-1), principal_gradient_aggregate(torch.tensor(G, dtype=D64)))
    torch.testing.assert_close(later["b"], torch.tensor([0.2], dtype=D64))  # 1-element: plain mean
    # relative to a non-zero global state, and an integer buffer is averaged and rounded back
    glob2 = {"w": torch.ones(2, 3, dtype=D64), "n": torch.tensor(10)}
    clients2 = [{"w": c["w"] + 1, "n": torch.tensor(10 + i)} for i, c in enumerate(clients)]
    out = aggregate_state_updates(glob2, clients2)
    torch.testing.assert_close(out["w"], later["w"] + 1)
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 12


def test_aggregation_invariants() -> None:
    gen = torch.Generator().manual_seed(5)
    g = torch.randn(7, 40, generator=gen, dtype=D64)
    agg = principal_gradient_aggregate(g)
    # (iv) permutation of the clients
    torch.testing.assert_close(principal_gradient_aggregate(g[torch.randperm(7, generator=gen)]), agg)
    # (iii) in the span of the top-k principal directions, k = floor(0.8 * 7) = 5
    _, e = torch.linalg.eigh(g @ g.T)
    u = g.T @ e.flip(1)[:, :5]
    coef = torch.linalg.lstsq(u, agg[:, None]).solution
    torch.testing.assert_close(u @ coef, agg[:, None], rtol=0, atol=1e-10)
    # every revised update is shorter than the client's own
    assert bool((principal_gradient_revise(g).norm(dim=1) < g.norm(dim=1)).all())
    # scaling all updates scales the aggregate
    torch.testing.assert_close(principal_gradient_aggregate(3.0 * g), 3.0 * agg)


def test_aggregation_sign_flip_of_directions_changes_nothing() -> None:
    # (v): the rule uses sign(g . u) u, so flipping u_j is invisible; checked by flipping the eigenvectors
    gen = torch.Generator().manual_seed(6)
    g = torch.randn(5, 12, generator=gen, dtype=D64)
    s, e = torch.linalg.eigh(g @ g.T / 5)
    s, e = s.flip(0), e.flip(1)
    for flips in ([1, 1, 1, 1, 1], [-1, 1, -1, 1, -1]):
        u = g.T @ (e * torch.tensor(flips, dtype=D64))
        out = torch.zeros(12, dtype=D64)
        for i in range(5):
            for j in range(4):
                proj = (g[i] @ u[:, j]) / (u[:, j] @ u[:, j]) * u[:, j]
                out += proj * (s[j] / s.sum()) * g[i].norm() / proj.norm() / 5
        torch.testing.assert_close(principal_gradient_aggregate(g), out, rtol=0, atol=1e-12)


def test_aggregation_edge_cases() -> None:
    same = torch.tensor([[0.3, -0.2, 0.5, 0.1]] * 5, dtype=D64)
    torch.testing.assert_close(principal_gradient_aggregate(same), same[0])  # (i) identical -> unchanged
    torch.testing.assert_close(principal_gradient_aggregate(same.float()), same[0].float())
    single = torch.tensor([[1.0, 2.0]], dtype=D64)
    torch.testing.assert_close(principal_gradient_aggregate(single), torch.zeros(2, dtype=D64))  # (vi) m = 1
    out = principal_gradient_aggregate(torch.eye(2, dtype=D64))  # tied: the official code gives NaN
    assert bool(torch.isfinite(out).all())
    assert sorted(out.tolist()) == pytest.approx([0.0, 0.25], abs=1e-12)
    zeros = principal_gradient_aggregate(torch.zeros(4, 5))
    assert bool((zeros == 0).all())
    part = torch.tensor([[1.0, 0.5], [0.0, 0.0], [0.8, 0.7]], dtype=D64)  # one frozen client
    assert bool(torch.isfinite(principal_gradient_aggregate(part)).all())
    col = torch.tensor(SCALAR, dtype=D64)[:, None]  # (vii) d = 1 through the state helper: plain mean
    glob = {"t": torch.zeros(1, dtype=D64)}
    res = aggregate_state_updates(glob, [{"t": c} for c in col])
    assert float(res["t"]) == pytest.approx(0.2)


def test_aggregation_bad_input() -> None:
    with pytest.raises(ValueError, match="k_prop"):
        principal_gradient_aggregate(torch.randn(3, 4), k_prop=0.0)
    with pytest.raises(ValueError, match="updates"):
        principal_gradient_aggregate(torch.randn(4))
    with pytest.raises(ValueError, match="NaN"):
        principal_gradient_aggregate(torch.full((3, 4), float("nan")))
    with pytest.raises(ValueError, match="client_states is empty"):
        aggregate_state_updates({"w": torch.zeros(2)}, [])
    with pytest.raises(ValueError, match="keys"):
        aggregate_state_updates({"w": torch.zeros(2)}, [{"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="shape"):
        aggregate_state_updates({"w": torch.zeros(2)}, [{"w": torch.zeros(3)}])


# --------------------------------------------------------------------------- loss decomposition
def test_decomposition_terms_sum_to_the_global_loss() -> None:
    torch.manual_seed(0)
    glob = nn.Linear(5, 3)
    locs = [nn.Linear(5, 3) for _ in range(3)]
    data = [(torch.randn(n, 5), torch.randint(0, 3, (n,))) for n in (10, 7, 13)]
    test = [(torch.randn(9, 5), torch.randint(0, 3, (9,))), (torch.randn(4, 5), torch.randint(0, 3, (4,)))]
    out = loss_decomposition(glob, locs, [[d] for d in data], test, weights=[10, 7, 13])
    assert out["local"] + out["shift"] + out["aggregation"] == pytest.approx(out["total"], abs=1e-12)
    xt, yt = torch.cat([t[0] for t in test]), torch.cat([t[1] for t in test])
    with torch.no_grad():
        assert out["total"] == pytest.approx(float(F.cross_entropy(glob(xt), yt)), rel=1e-6)
        own = [float(F.cross_entropy(m(x), y)) for m, (x, y) in zip(locs, data)]
    assert out["local"] == pytest.approx(sum(w * o for w, o in zip((10, 7, 13), own)) / 30, rel=1e-6)
    same = decomposition_from_losses([1.0, 2.0], [3.0, 5.0], 3.5)
    assert same == pytest.approx({"local": 1.5, "shift": 2.5, "aggregation": -0.5, "total": 3.5})
    with pytest.raises(ValueError, match="weights"):
        decomposition_from_losses([1.0], [2.0], 1.0, weights=[-1.0])
    with pytest.raises(ValueError, match="equal length"):
        decomposition_from_losses([1.0, 2.0], [2.0], 1.0)


# --------------------------------------------------------------------------- Flower strategy and apps
def _data(num_clients: int = 4, seed: int = 0):
    from paperzoo.federated.baselines import FederatedData
    from paperzoo.federated.partition import dirichlet_partition

    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, 12, generator=g) * 2
    y = torch.randint(0, 6, (360,), generator=g)
    x = centres[y] + torch.randn(360, 12, generator=g)
    parts = dirichlet_partition(y[:300].numpy(), num_clients, 0.5, seed=seed, min_size=5)
    return FederatedData(x[:300], y[:300], tuple(parts), x[300:], y[300:], 6)


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 6))


def test_fedld_apps_with_mean_and_lambda_zero_is_fedavg_or_fedprox() -> None:
    from paperzoo.federated.baselines import fedavg_apps
    from paperzoo.federated.fedld import OFFICIAL_LOCAL, fedld_apps
    from paperzoo.federated.flower import run_federation

    data = _data()
    for mu in (0.0, 0.05):  # FedAvg, FedProx
        ours = fedld_apps(_model, data, rounds=2, lam=0.0, aggregation="mean", proximal_mu=mu, seed=3)
        base = fedavg_apps(_model, data, rounds=2, local=OFFICIAL_LOCAL, proximal_mu=mu, seed=3)
        for server, client, _ in (ours, base):
            run_federation(server, client, data.num_clients)
        # same computation; the cross-entropy is computed through log_softmax + gather here, so
        # float32 rounding differs in the last bits
        for key, value in base[2].final_state.items():
            torch.testing.assert_close(ours[2].final_state[key], value, rtol=1e-5, atol=1e-6)
        assert ours[2].metric("accuracy") == pytest.approx(base[2].metric("accuracy"), abs=0.02)


def test_strategy_round_one_is_the_plain_mean_then_principal() -> None:
    from flwr.app import ArrayRecord, ConfigRecord, Context
    from flwr.serverapp import Grid, ServerApp

    from paperzoo.federated.fedld import FedLDStrategy, fedld_apps
    from paperzoo.federated.flower import arrays_of, run_federation

    data = _data()
    _, client, _ = fedld_apps(_model, data, rounds=1, lam=0.1, seed=1)
    seen: list[tuple[dict, list[dict], dict, float]] = []

    class Recording(FedLDStrategy):
        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            arrays, metrics = super().aggregate_train(server_round, replies)
            states = [m.content["arrays"].to_torch_state_dict() for m in replies]
            seen.append((dict(self._global), states, arrays.to_torch_state_dict(), metrics["fedld-step-ratio"]))
            return arrays, metrics

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        torch.manual_seed(0)
        strategy = Recording(fraction_evaluate=0.0, min_train_nodes=4, min_evaluate_nodes=0, min_available_nodes=4)
        strategy.start(grid=grid, initial_arrays=arrays_of(_model()), num_rounds=3, train_config=ConfigRecord({}))

    run_federation(server, client, data.num_clients)
    assert len(seen) == 3
    glob, states, out, ratio = seen[0]
    for key in glob:  # round 1: the unweighted mean of the client states
        torch.testing.assert_close(out[key], torch.stack([s[key] for s in states]).mean(0), rtol=1e-6, atol=1e-7)
    assert ratio == pytest.approx(1.0)
    for glob, states, out, ratio in seen[1:]:  # later rounds: the per-tensor principal rule, a shorter step
        expected = aggregate_state_updates(glob, states, 0.8)
        for key in glob:
            torch.testing.assert_close(out[key], expected[key], rtol=0, atol=0)
        assert 0.0 < ratio < 1.0
    assert seen[1][0].keys() == seen[0][2].keys()
    torch.testing.assert_close(seen[1][0]["0.weight"], seen[0][2]["0.weight"])  # the next round starts there
    assert isinstance(ArrayRecord(seen[2][2]), ArrayRecord)


def test_fedld_apps_decomposition_and_bad_input() -> None:
    from paperzoo.federated.baselines import FederatedData
    from paperzoo.federated.fedld import fedld_apps
    from paperzoo.federated.flower import run_federation

    data = _data()
    server, client, history = fedld_apps(_model, data, rounds=2, decomposition=True, seed=2)
    run_federation(server, client, data.num_clients)
    assert len(history.rounds) == 2
    for row in history.rounds:
        assert row["local"] + row["shift"] + row["aggregation"] == pytest.approx(row["loss"], abs=1e-9)
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 < row["fedld-step-ratio"] <= 1.0 + 1e-9
    with pytest.raises(ValueError, match="aggregation"):
        fedld_apps(_model, data, rounds=2, aggregation="median")
    with pytest.raises(ValueError, match="client 1 has no samples"):
        FederatedData(data.x, data.y, (data.partitions[0], data.partitions[0][:0]), data.x_test, data.y_test, 6)


@pytest.mark.slow
def test_same_apps_on_flower_simulation_engine() -> None:
    """The same apps on Ray (Flower's simulation engine) give the in-process result."""
    from paperzoo.federated.fedld import fedld_apps
    from paperzoo.federated.flower import run_federation

    data = _data()
    histories = []
    for backend in ("inprocess", "simulation"):
        server, client, history = fedld_apps(_model, data, rounds=2, lam=0.1, seed=4)
        run_federation(server, client, data.num_clients, backend=backend)
        histories.append(history)
    inproc, ray = histories
    assert ray.final_state is not None and len(ray.rounds) == 2
    for key, value in inproc.final_state.items():
        torch.testing.assert_close(ray.final_state[key], value, rtol=1e-5, atol=1e-6)
