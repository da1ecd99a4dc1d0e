"""FedLabel (paper 20): the local-vs-global pseudo-label selection, the consistency term, the
client update's limiting cases, and the Flower apps."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from paperzoo.federated import flower
from paperzoo.federated.baselines import FederatedData, client_seed
from paperzoo.federated.fedlabel import (
    LOCAL_STATE_KEY,
    MODES,
    FedLabelConfig,
    FedLabelLoss,
    FedLabelStrategy,
    _batches,
    consistency_divergence,
    fedlabel_apps,
    fedlabel_local_update,
    labelled_unlabelled_split,
    select_pseudo_labels,
    strong_augment,
    translate,
)
from paperzoo.federated.flower import InProcessGrid, run_federation
from paperzoo.federated.partition import dirichlet_partition, labelled_mask
from paperzoo.models import MLP

P_LOCAL = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.05, 0.9, 0.05]], dtype=torch.float64)
P_GLOBAL = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]], dtype=torch.float64)


def _probs(b: int, c: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.softmax(scale * torch.randn(b, c, generator=g, dtype=torch.float64), dim=1)


# --------------------------------------------------------------------------- selection
def test_numeric_oracle() -> None:
    pseudo = select_pseudo_labels(P_LOCAL, P_GLOBAL, tau=0.75)
    assert pseudo.use_local.tolist() == [True, False, True]
    assert pseudo.y_hat.tolist() == [0, 1, 1]
    torch.testing.assert_close(pseudo.confidence, torch.tensor([0.7, 0.8, 0.9], dtype=torch.float64))
    assert pseudo.mask.tolist() == [False, True, True]
    assert pseudo.agree.tolist() == [True, False, True]
    kl = consistency_divergence(P_LOCAL, P_GLOBAL.log())
    torch.testing.assert_close(
        kl, torch.tensor([0.0268124543, 0.494252927, 0.122210908], dtype=torch.float64), rtol=0, atol=1e-9
    )
    torch.testing.assert_close(kl, F.kl_div(P_GLOBAL.log(), P_LOCAL, reduction="none").sum(1), rtol=1e-12, atol=1e-12)
    assert abs(float((pseudo.agree * kl).mean()) - 0.0496744542) < 1e-9


def test_identical_models_reduce_to_single_model_pseudo_labels() -> None:
    p = _probs(64, 10, 0)
    pseudo = select_pseudo_labels(p, p.clone(), tau=0.5)
    conf, arg = p.max(1)
    assert torch.equal(pseudo.y_hat, arg) and torch.equal(pseudo.mask, conf >= 0.5)
    assert bool(pseudo.agree.all()) and not bool(pseudo.use_local.any())  # ties go to the global model


@pytest.mark.parametrize("expertise", ["confidence", "entropy"])
def test_the_more_expert_model_is_chosen(expertise: str) -> None:
    sharp = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
    flat = torch.tensor([[0.2, 0.5, 0.3], [0.5, 0.3, 0.2]])
    local_wins = select_pseudo_labels(sharp, flat, 0.0, expertise)
    assert local_wins.use_local.all() and local_wins.y_hat.tolist() == [0, 1]
    global_wins = select_pseudo_labels(flat, sharp, 0.0, expertise)
    assert not global_wins.use_local.any() and global_wins.y_hat.tolist() == [0, 1]
    assert local_wins.agree.tolist() == [False, False]


def test_forced_experts() -> None:
    p_l, p_g = _probs(32, 5, 1), _probs(32, 5, 2)
    assert torch.equal(select_pseudo_labels(p_l, p_g, 0.0, "local").y_hat, p_l.argmax(1))
    assert torch.equal(select_pseudo_labels(p_l, p_g, 0.0, "global").y_hat, p_g.argmax(1))


def test_mask_is_monotone_in_tau() -> None:
    p_l, p_g = _probs(200, 10, 3), _probs(200, 10, 4)
    assert select_pseudo_labels(p_l, p_g, 0.0).mask.all()
    assert not select_pseudo_labels(p_l, p_g, 1.0 + 1e-9).mask.any()
    masks = [select_pseudo_labels(p_l, p_g, t).mask for t in torch.linspace(0, 1, 21).tolist()]
    for a, b in zip(masks[:-1], masks[1:]):
        assert bool((b <= a).all())  # raising tau never adds a sample


# --------------------------------------------------------------------------- losses
def _loss_inputs(seed: int, b_l: int = 6, b_u: int = 8, c: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    return {
        "labelled_logits": r(b_l, c),
        "labels": torch.randint(0, c, (b_l,), generator=g),
        "strong_logits": r(b_u, c),
        "student_weak_logits": r(b_u, c),
        "local_weak_logits": r(b_u, c),
        "local_labelled_logits": r(b_l, c),
        "local_strong_logits": r(b_u, c),
    }


def test_consistency_is_zero_for_identical_outputs_and_only_on_agreeing_samples() -> None:
    x = _loss_inputs(0)
    same = x["student_weak_logits"].detach().clone().requires_grad_(True)
    pseudo = select_pseudo_labels(F.softmax(same.detach(), 1), F.softmax(same.detach(), 1), 0.0)
    loss = FedLabelLoss(lambda_u=0.0, lambda_c=1.0)
    kw = {k: v for k, v in x.items() if k not in ("student_weak_logits", "local_weak_logits")}
    terms = loss(student_weak_logits=same, local_weak_logits=same, pseudo=pseudo, **kw)
    assert abs(float(terms.consistency.detach())) < 1e-12
    # disagreeing samples get no gradient from the consistency term
    p_l, p_g = _probs(8, 5, 10), _probs(8, 5, 11)
    pseudo = select_pseudo_labels(p_l, p_g, 0.0)
    assert 0 < int(pseudo.agree.sum()) < 8
    terms = loss(pseudo=pseudo, **x)
    assert float(terms.consistency.detach()) > 0
    (g,) = torch.autograd.grad(terms.student, x["student_weak_logits"])
    assert bool((g[~pseudo.agree] == 0).all()) and bool((g[pseudo.agree] != 0).any())


@pytest.mark.parametrize("divergence", ["kl", "js", "mse"])
def test_loss_terms_match_their_definition(divergence: str) -> None:
    x = _loss_inputs(4)
    p_l, p_g = F.softmax(x["local_weak_logits"].detach(), 1), _probs(8, 5, 13)
    pseudo = select_pseudo_labels(p_l, p_g, 0.2)
    for on, rows in (("agree", pseudo.agree), ("agree_and_confident", pseudo.agree & pseudo.mask)):
        loss = FedLabelLoss(0.5, 2.0, divergence, on)
        t = loss(pseudo=pseudo, **x)
        p_s = F.softmax(x["student_weak_logits"].detach(), 1)
        cons = (rows * consistency_divergence(p_l, x["student_weak_logits"], divergence)).mean()
        cons_local = (rows * consistency_divergence(p_s, x["local_weak_logits"], divergence)).mean()
        m = pseudo.mask.double()
        sup = F.cross_entropy(x["labelled_logits"], x["labels"])
        pl = (m * F.cross_entropy(x["strong_logits"], pseudo.y_hat, reduction="none")).mean()
        pl_local = (m * F.cross_entropy(x["local_strong_logits"], pseudo.y_hat, reduction="none")).mean()
        local = F.cross_entropy(x["local_labelled_logits"], x["labels"]) + 2.0 * cons_local + 0.5 * pl_local
        torch.testing.assert_close(t.consistency, cons)
        torch.testing.assert_close(t.student, sup + 0.5 * pl + 2.0 * cons)
        torch.testing.assert_close(t.local, local)


@pytest.mark.parametrize("divergence", ["kl", "js", "mse"])
def test_divergences_vanish_on_equal_distributions(divergence: str) -> None:
    p = _probs(7, 4, 5)
    assert float(consistency_divergence(p, p.log(), divergence).abs().max()) < 1e-12
    assert bool((consistency_divergence(p, _probs(7, 4, 6).log(), divergence) > 0).all())


def test_stop_gradients() -> None:
    x = _loss_inputs(1)
    p_l = F.softmax(x["local_weak_logits"].detach(), 1)
    pseudo = select_pseudo_labels(p_l, _probs(8, 5, 12), 0.0)
    terms = FedLabelLoss()(pseudo=pseudo, **x)
    local_side = [x[k] for k in ("local_weak_logits", "local_labelled_logits", "local_strong_logits")]
    student_side = [x[k] for k in ("labelled_logits", "strong_logits", "student_weak_logits")]
    for g in torch.autograd.grad(terms.student, local_side, allow_unused=True, retain_graph=True):
        assert g is None or bool((g == 0).all())
    for g in torch.autograd.grad(terms.local, student_side, allow_unused=True):
        assert g is None or bool((g == 0).all())


def test_gradcheck() -> None:
    x = _loss_inputs(2, b_l=3, b_u=4, c=3)
    pseudo = select_pseudo_labels(_probs(4, 3, 20), _probs(4, 3, 21), 0.3)
    names = ["labelled_logits", "strong_logits", "student_weak_logits", "local_weak_logits", "local_labelled_logits"]
    for divergence in ("kl", "js", "mse"):
        loss = FedLabelLoss(0.7, 1.3, divergence)

        def f(*t: torch.Tensor, loss: FedLabelLoss = loss) -> torch.Tensor:
            kw = dict(zip(names, t))
            terms = loss(labels=x["labels"], pseudo=pseudo, local_strong_logits=x["local_strong_logits"], **kw)
            return terms.student + 2 * terms.local

        assert torch.autograd.gradcheck(f, tuple(x[n] for n in names))


# --------------------------------------------------------------------------- bad input
def test_bad_input() -> None:
    p = _probs(4, 3, 0)
    with pytest.raises(ValueError, match="tau"):
        select_pseudo_labels(p, p, -0.1)
    with pytest.raises(ValueError, match="expertise"):
        select_pseudo_labels(p, p, 0.5, "vote")
    with pytest.raises(ValueError, match="p_global"):
        select_pseudo_labels(p, p[:3], 0.5)
    with pytest.raises(ValueError, match="p_local.*sum to 1"):
        select_pseudo_labels(p * 2 / 3, p, 0.5)
    with pytest.raises(ValueError, match="p_local.*NaN"):
        select_pseudo_labels(torch.full((2, 3), float("nan")), p[:2], 0.5)
    with pytest.raises(ValueError, match="empty batch"):
        select_pseudo_labels(p[:0], p[:0], 0.5)
    with pytest.raises(ValueError, match="divergence"):
        FedLabelLoss(divergence="l1")
    with pytest.raises(ValueError, match="lambda_c"):
        FedLabelLoss(lambda_c=-1.0)
    x = _loss_inputs(3)
    pseudo = select_pseudo_labels(_probs(8, 5, 1), _probs(8, 5, 2), 0.5)
    with pytest.raises(ValueError, match="labels"):
        FedLabelLoss()(pseudo=pseudo, **{**x, "labels": torch.full((6,), 7)})
    with pytest.raises(ValueError, match="local_weak_logits"):
        FedLabelLoss()(pseudo=pseudo, **{**x, "local_weak_logits": x["local_weak_logits"][:5]})
    with pytest.raises(ValueError, match="empty"):
        labelled_unlabelled_split([], 0.1)
    with pytest.raises(ValueError, match="fraction"):
        labelled_unlabelled_split([1, 2], 1.5)
    with pytest.raises(ValueError, match="local_model"):
        FedLabelConfig(local_model="shared")
    with pytest.raises(ValueError, match="x_labelled"):
        fedlabel_local_update(
            MLP(4, (3,), 2), MLP(4, (3,), 2), None, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64),
            torch.zeros(5, 4), FedLabelConfig(mode="supervised"),
        )  # fmt: skip
    with pytest.raises(ValueError, match="local_model is None"):
        fedlabel_local_update(
            MLP(4, (3,), 2), MLP(4, (3,), 2), None, torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64),
            torch.zeros(5, 4), FedLabelConfig(mode="fedlabel"),
        )  # fmt: skip


# --------------------------------------------------------------------------- data helpers
def test_labelled_unlabelled_split() -> None:
    idx = torch.arange(100, 200)
    lab, unl = labelled_unlabelled_split(idx, 0.05, torch.Generator().manual_seed(0))
    assert lab.numel() == 5 and unl.numel() == 95
    assert torch.equal(torch.cat([lab, unl]).sort().values, idx)
    assert labelled_unlabelled_split(idx[:3], 0.01)[0].numel() == 1  # at least one label


def test_translate_moves_each_image_by_its_own_offset() -> None:
    x = torch.zeros(50, 1, 12, 12)
    x[:, :, 6, 6] = 1.0
    y = translate(x, 3, torch.Generator().manual_seed(0))
    assert torch.equal(translate(x, 0), x)
    pos = y.reshape(50, -1).argmax(1)
    dr, dc = pos // 12 - 6, pos % 12 - 6
    assert bool((y.reshape(50, -1).sum(1) == 1).all())  # nothing lost, nothing duplicated
    assert int(dr.abs().max()) <= 3 and int(dc.abs().max()) <= 3 and len(set(zip(dr.tolist(), dc.tolist()))) > 10
    s = strong_augment(torch.ones(8, 1, 28, 28), torch.Generator().manual_seed(1), noise=0.0)
    assert s.shape == (8, 1, 28, 28) and bool(((s == 0).reshape(8, -1).sum(1) >= 81).all())


# --------------------------------------------------------------------------- client update
def _client(seed: int = 0, n_l: int = 20, n_u: int = 100) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x_l, x_u = torch.rand(n_l, 1, 8, 8, generator=g), torch.rand(n_u, 1, 8, 8, generator=g)
    return x_l, torch.randint(0, 4, (n_l,), generator=g), x_u, torch.randint(0, 4, (n_u,), generator=g)


def _models(seed: int) -> list[MLP]:
    torch.manual_seed(seed)
    return [MLP(64, (16,), 4) for _ in range(3)]


def _run(config: FedLabelConfig, local_seed: int = 7) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    student, teacher, _ = _models(0)
    teacher.load_state_dict(student.state_dict())
    (local,) = _models(local_seed)[:1]
    x_l, y_l, x_u, y_u = _client()
    fedlabel_local_update(student, teacher, local, x_l, y_l, x_u, config, seed=3, y_unlabelled=y_u)
    return student.state_dict(), local.state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_global_selection_without_consistency_is_fixmatch_with_a_frozen_global_teacher() -> None:
    cfg = FedLabelConfig(mode="pl_global", tau=0.3, iters=5)
    ref, local_ref = _run(cfg)
    assert _same(ref, _run(cfg, local_seed=8)[0])  # the local model plays no part
    assert _same(ref, _run(FedLabelConfig(mode="fedlabel", expertise="global", lambda_c=0.0, tau=0.3, iters=5))[0])
    assert _same(local_ref, _models(7)[0].state_dict())  # and is not trained
    # the local model does matter for FedLabel
    assert not _same(_run(cfg.with_(mode="fedlabel"))[0], _run(cfg.with_(mode="fedlabel"), local_seed=8)[0])


def test_no_unlabelled_terms_is_supervised_sgd() -> None:
    cfg = FedLabelConfig(mode="fedlabel", lambda_u=0.0, lambda_c=0.0, iters=6, batch_labelled=8, lr=0.1)
    got, _ = _run(cfg)
    assert _same(got, _run(cfg.with_(mode="supervised", lambda_u=None, lambda_c=None))[0])
    student, _, _ = _models(0)
    x_l, y_l, *_ = _client()
    opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    for il, _ in _batches(torch.Generator().manual_seed(3), 20, 0, 8, 0, 6):
        opt.zero_grad()
        F.cross_entropy(student(x_l[il]), y_l[il]).backward()
        opt.step()
    for k, v in student.state_dict().items():
        torch.testing.assert_close(got[k], v)


@pytest.mark.parametrize("local_model", ["persistent_labelled", "persistent_pl", "finetune"])
def test_local_model_modes(local_model: str) -> None:
    cfg = FedLabelConfig(mode="fedlabel", tau=0.2, iters=4, local_model=local_model, finetune_steps=3)
    student, local = _run(cfg)
    assert not _same(local, _models(7)[0].state_dict())  # trained or re-initialised
    for mode in MODES:
        _run(cfg.with_(mode=mode))


# --------------------------------------------------------------------------- Flower apps
def _federation(n: int = 90, k: int = 3) -> tuple[FederatedData, np.ndarray]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)
    parts = dirichlet_partition(y.numpy(), k, 1.0, seed=0, min_size=15)
    return FederatedData(x, y, parts, x[:20], y[:20], 4), labelled_mask(parts, n, fraction=0.2, seed=0)


def _model() -> MLP:
    return MLP(64, (16,), 4)


CFG = FedLabelConfig(tau=0.3, iters=3, batch_labelled=4, batch_unlabelled=8)


def test_flower_run_equals_a_plain_round_loop() -> None:
    data, labelled = _federation()
    server, client, history = fedlabel_apps(_model, data, labelled, CFG, rounds=2, seed=5)
    run_federation(server, client, data.num_clients)
    # the same computation without Flower: local models kept in a dict, FedAvg by sample count
    torch.manual_seed(5)
    global_model = _model()
    locals_: dict[int, MLP] = {}
    for r in (1, 2):
        states, weights = [], []
        for k, part in enumerate(data.partitions):
            lab = torch.from_numpy(labelled[part])
            idx = torch.from_numpy(part)
            student, teacher = copy.deepcopy(global_model), copy.deepcopy(global_model)
            local = locals_.setdefault(k, copy.deepcopy(global_model))
            fedlabel_local_update(
                student, teacher, local, data.x[idx[lab]], data.y[idx[lab]], data.x[idx[~lab]], CFG,
                seed=client_seed(5, r, k),
            )  # fmt: skip
            states.append(student.state_dict())
            weights.append(len(part))
        total = float(sum(weights))
        global_model.load_state_dict(
            {key: sum(s[key].double() * (w / total) for s, w in zip(states, weights)).float() for key in states[0]}
        )
    assert history.final_state is not None and len(history.rounds) == 2
    for key, value in global_model.state_dict().items():
        torch.testing.assert_close(history.final_state[key], value, rtol=1e-5, atol=1e-6)
    assert {"accuracy", "pl-acc", "mask-rate", "local-selected"} <= set(history.rounds[-1])


def test_only_the_student_leaves_the_client_and_the_local_model_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    data, labelled = _federation()
    seen: list[list[tuple[str, list[str]]]] = []
    original = FedLabelStrategy.aggregate_train

    def spy(self: FedLabelStrategy, server_round: int, replies: Any) -> Any:
        replies = list(replies)
        seen.append([(name, sorted(rec)) for msg in replies for name, rec in msg.content.array_records.items()])
        return original(self, server_round, replies)

    grids: list[InProcessGrid] = []

    class RecordingGrid(InProcessGrid):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            grids.append(self)

    monkeypatch.setattr(FedLabelStrategy, "aggregate_train", spy)
    monkeypatch.setattr(flower, "InProcessGrid", RecordingGrid)
    tests = [np.arange(5) + i for i in range(data.num_clients)]
    server, client, history = fedlabel_apps(_model, data, labelled, CFG, rounds=2, client_tests=tests)
    run_federation(server, client, data.num_clients)
    keys = sorted(_model().state_dict())
    assert len(seen) == 2 and all(len(r) == data.num_clients for r in seen)
    assert all(name == "arrays" and ks == keys for r in seen for name, ks in r)
    for ctx in grids[0].contexts.values():  # each node kept its own local model
        assert sorted(ctx.state[LOCAL_STATE_KEY]) == keys
    assert "client-local-acc" in history.rounds[-1]


def test_a_leaked_local_model_is_refused() -> None:
    data, labelled = _federation()
    server, client, _ = fedlabel_apps(_model, data, labelled, CFG, rounds=1)
    leaky = ClientApp()

    @leaky.train()
    def train(msg: Message, context: Context) -> Message:
        reply = client(msg, context)
        reply.content["local"] = context.state[LOCAL_STATE_KEY]
        return reply

    with pytest.raises(ValueError, match="exactly one ArrayRecord"):
        run_federation(server, leaky, data.num_clients)


def test_apps_reject_clients_without_labels() -> None:
    data, labelled = _federation()
    none_on_0 = labelled.copy()
    none_on_0[data.partitions[0]] = False
    with pytest.raises(ValueError, match="client 0 has no labelled sample"):
        fedlabel_apps(_model, data, none_on_0, CFG, rounds=1)
    with pytest.raises(ValueError, match="no unlabelled sample"):
        fedlabel_apps(_model, data, np.ones_like(labelled), CFG, rounds=1)
    fedlabel_apps(_model, data, np.ones_like(labelled), CFG.with_(mode="supervised"), rounds=1)  # fully labelled: fine
    with pytest.raises(ValueError, match="labelled must be a boolean mask"):
        fedlabel_apps(_model, data, labelled[:-1], CFG, rounds=1)


@pytest.mark.slow
def test_the_same_apps_run_in_the_ray_simulation() -> None:
    data, labelled = _federation()
    server, client, history = fedlabel_apps(_model, data, labelled, CFG, rounds=2, seed=5)
    run_federation(server, client, data.num_clients, backend="simulation")
    # the ServerApp runs in this process: its history is filled, and it matches the in-process run
    ref_server, ref_client, ref = fedlabel_apps(_model, data, labelled, CFG, rounds=2, seed=5)
    run_federation(ref_server, ref_client, data.num_clients)
    assert len(history.rounds) == 2 and history.final_state is not None and ref.final_state is not None
    for key, value in ref.final_state.items():
        torch.testing.assert_close(history.final_state[key], value)
