"""Domain Penalisation (paper 39) and its GroupDRO baseline: the weighting rule's invariants,
golden values, gradients, missing domains, bad input, and the engine.fit adapter."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from paperzoo.engine import TrainConfig, fit, make_loader, seed_everything
from paperzoo.models import MLP
from paperzoo.training.domain_penalisation import (
    DomainPenalisation,
    DomainWeightedObjective,
    GroupDROWeights,
    domain_loss_sums,
    domain_penalisation_weights,
    domain_weighted_loss,
)

F64 = torch.float64
GOLDEN_LD = torch.tensor([0.9, 1.4, 0.6], dtype=F64)
GOLDEN_W = [0.295025, 0.486415, 0.21856]
BATCH = torch.tensor([1.0, 2.0, 0.5, 0.8], dtype=F64)
DOMAINS = torch.tensor([0, 1, 2, 1])


def _naive_softmax(values: list[float]) -> list[float]:
    e = [math.exp(v) for v in values]
    return [v / sum(e) for v in e]


# --------------------------------------------------------------------------- golden values
def test_golden_weights() -> None:
    w = domain_penalisation_weights(GOLDEN_LD)
    assert w.tolist() == pytest.approx(GOLDEN_W, abs=1e-6)
    assert w.tolist() == pytest.approx(_naive_softmax(GOLDEN_LD.tolist()), abs=1e-15)
    assert domain_penalisation_weights(GOLDEN_LD, rescale=True).tolist() == pytest.approx(
        [3 * v for v in GOLDEN_W], abs=3e-6
    )


def test_golden_batch_loss_and_initial_erm() -> None:
    dp = DomainPenalisation(3)
    assert float(dp.loss(BATCH, DOMAINS)) == pytest.approx(4.3, abs=1e-12)  # initial weights all 1
    assert float(DomainPenalisation(3, batch_reduction="mean").loss(BATCH, DOMAINS)) == pytest.approx(4.3 / 4)
    w = domain_penalisation_weights(GOLDEN_LD)
    assert float(domain_weighted_loss(BATCH, DOMAINS, w)) == pytest.approx(1.76627, abs=1e-5)
    # through the module: feed one epoch whose domain averages are the golden L_D
    dp.accumulate(GOLDEN_LD, torch.tensor([0, 1, 2]))
    dp.end_epoch()
    assert dp.weights.tolist() == pytest.approx(GOLDEN_W, abs=1e-6)
    assert float(dp.loss(BATCH, DOMAINS)) == pytest.approx(1.76627, abs=1e-5)


# --------------------------------------------------------------------------- invariants
def test_weights_after_update_positive_normalised_and_ordered() -> None:
    g = torch.Generator().manual_seed(0)
    for rescale, total in ((False, 1.0), (True, 5.0)):
        dp = DomainPenalisation(5, rescale=rescale)
        losses = torch.rand(200, generator=g, dtype=F64) * 3
        dom = torch.randint(0, 5, (200,), generator=g)
        dp(losses, dom)
        w = dp.end_epoch().double()
        avg = torch.stack([losses[dom == k].mean() for k in range(5)])
        assert bool((w > 0).all()) and float(w.sum()) == pytest.approx(total, abs=1e-5)
        assert torch.equal(torch.argsort(w), torch.argsort(avg))  # higher loss -> higher weight


def test_equal_losses_uniform_and_shift_invariant() -> None:
    assert domain_penalisation_weights(torch.full((4,), 2.5, dtype=F64)).tolist() == pytest.approx([0.25] * 4)
    shifted = domain_penalisation_weights(GOLDEN_LD + 123.0)
    assert shifted.tolist() == pytest.approx(GOLDEN_W, abs=1e-6)
    # max-subtraction: huge losses stay finite
    assert torch.isfinite(domain_penalisation_weights(torch.tensor([1e4, 1e4 + 1.0], dtype=F64))).all()


def test_temperature_limits() -> None:
    hot = domain_penalisation_weights(GOLDEN_LD, temperature=1e6)
    assert hot.tolist() == pytest.approx([1 / 3] * 3, abs=1e-6)
    cold = domain_penalisation_weights(GOLDEN_LD, temperature=1e-3)
    assert cold.tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)


def test_gradient_of_batch_loss_is_domain_weight() -> None:
    dp = DomainPenalisation(3)
    dp.accumulate(GOLDEN_LD, torch.tensor([0, 1, 2]))
    dp.end_epoch()
    losses = BATCH.clone().requires_grad_(True)
    dp.loss(losses, DOMAINS).backward()
    assert losses.grad is not None
    assert losses.grad.tolist() == pytest.approx([GOLDEN_W[d] for d in DOMAINS.tolist()], abs=1e-6)
    w = domain_penalisation_weights(GOLDEN_LD)
    assert torch.autograd.gradcheck(
        lambda x: domain_weighted_loss(x, DOMAINS, w, "mean"), (BATCH.clone().requires_grad_(),)
    )
    assert torch.autograd.gradcheck(
        lambda L: domain_penalisation_weights(L, 0.7), (GOLDEN_LD.clone().requires_grad_(),)
    )


def test_running_averages_match_naive_per_domain_means() -> None:
    g = torch.Generator().manual_seed(1)
    dp = DomainPenalisation(4)
    chunks = [(torch.rand(17, generator=g, dtype=F64), torch.randint(0, 4, (17,), generator=g)) for _ in range(5)]
    for losses, dom in chunks:
        dp(losses, dom)
    all_l = torch.cat([c[0] for c in chunks])
    all_d = torch.cat([c[1] for c in chunks])
    naive = [
        sum(v for v, k in zip(all_l.tolist(), all_d.tolist()) if k == i) / int((all_d == i).sum()) for i in range(4)
    ]
    dp.end_epoch()
    assert dp.average_losses.tolist() == pytest.approx(naive, abs=1e-12)
    assert dp.weights.tolist() == pytest.approx(_naive_softmax(naive), abs=1e-6)
    assert float(dp.count.sum()) == 0.0 and int(dp.epochs) == 1  # accumulators reset
    sums, counts = domain_loss_sums(all_l, all_d, 4)
    assert (sums / counts).tolist() == pytest.approx(naive, abs=1e-12)


def test_eval_mode_does_not_accumulate() -> None:
    dp = DomainPenalisation(2).eval()
    dp(BATCH[:2], torch.tensor([0, 1]))
    assert float(dp.count.sum()) == 0.0


def test_missing_domains_keep_their_last_average_and_no_nan() -> None:
    dp = DomainPenalisation(3)
    dp.accumulate(torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([0, 1]))  # domain 2 never seen
    w = dp.end_epoch()
    assert torch.isfinite(w).all()
    # never seen -> the mean of the known averages (1.5): a neutral weight
    assert w.tolist() == pytest.approx(_naive_softmax([1.0, 2.0, 1.5]), abs=1e-6)
    dp.accumulate(torch.tensor([0.5], dtype=F64), torch.tensor([2]))  # only domain 2 this epoch
    w = dp.end_epoch()
    assert w.tolist() == pytest.approx(_naive_softmax([1.0, 2.0, 0.5]), abs=1e-6)
    before = dp.weights.clone()
    assert torch.equal(dp.end_epoch(), before)  # an empty epoch changes nothing
    # an evaluation pass with a missing (NaN) domain
    w = dp.end_epoch(torch.tensor([math.nan, 0.0, 3.0], dtype=F64))
    assert w.tolist() == pytest.approx(_naive_softmax([1.0, 0.0, 3.0]), abs=1e-6)


def test_state_dict_and_pickle_round_trip() -> None:
    dp = DomainPenalisation(3, rescale=True, batch_reduction="mean")
    dp.accumulate(GOLDEN_LD, torch.tensor([0, 1, 2]))
    dp.end_epoch()
    other = DomainPenalisation(3, rescale=True, batch_reduction="mean")
    other.load_state_dict(dp.state_dict())
    assert torch.equal(other.weights, dp.weights)
    again = pickle.loads(pickle.dumps(dp))
    assert float(again.loss(BATCH, DOMAINS)) == float(dp.loss(BATCH, DOMAINS))


# --------------------------------------------------------------------------- GroupDRO
def test_group_dro_stays_on_simplex_and_follows_its_update() -> None:
    g = torch.Generator().manual_seed(2)
    dro = GroupDROWeights(3, eta=0.5)
    q = torch.full((3,), 1 / 3, dtype=F64)
    for _ in range(6):
        losses = torch.rand(10, generator=g, dtype=F64) * 2
        dom = torch.randint(0, 2, (10,), generator=g)  # domain 2 absent: its mean counts as 0
        loss = dro(losses, dom)
        means = torch.stack([losses[dom == k].mean() if (dom == k).any() else losses.new_zeros(()) for k in range(3)])
        q = q * torch.exp(0.5 * means)
        q = q / q.sum()
        assert dro.weights.tolist() == pytest.approx(q.tolist(), abs=1e-12)
        assert float(loss) == pytest.approx(float((q * means).sum()), abs=1e-12)
        assert float(dro.weights.sum()) == pytest.approx(1.0) and bool((dro.weights > 0).all())


def test_group_dro_eta_zero_is_uniform_average_of_domain_means() -> None:
    dro = GroupDROWeights(3, eta=0.0)
    for _ in range(3):
        loss = dro(BATCH, DOMAINS)
    assert dro.weights.tolist() == pytest.approx([1 / 3] * 3)
    assert float(loss) == pytest.approx((1.0 + (2.0 + 0.8) / 2 + 0.5) / 3)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("losses", "domains", "error", "match"),
    [
        (BATCH, torch.tensor([0, 1, 3, 1]), ValueError, "domain_ids must lie in"),
        (BATCH, torch.tensor([0, -1, 2, 1]), ValueError, "domain_ids must lie in"),
        (BATCH, torch.tensor([0, 1, 2]), ValueError, "domain_ids must have shape"),
        (BATCH, torch.tensor([0.0, 1.0, 2.0, 1.0]), TypeError, "domain_ids must be an integer"),
        (BATCH.reshape(2, 2), DOMAINS, ValueError, "per_sample_losses must have shape"),
        (torch.tensor([1.0, math.nan, 0.5, 0.8]), DOMAINS, ValueError, "per_sample_losses contains NaN"),
        (torch.zeros(0), torch.zeros(0, dtype=torch.long), ValueError, "empty batch"),
        (torch.tensor([1, 2, 0, 1]), DOMAINS, TypeError, "per_sample_losses must be a floating"),
    ],
)
def test_bad_input_names_the_argument(losses, domains, error, match) -> None:
    for module in (DomainPenalisation(3), GroupDROWeights(3)):
        with pytest.raises(error, match=match):
            module(losses, domains)
    with pytest.raises(error, match=match):
        DomainPenalisation(3).accumulate(losses, domains)


def test_bad_parameters_and_weight_vectors() -> None:
    with pytest.raises(ValueError, match="num_domains must be"):
        DomainPenalisation(0)
    with pytest.raises(ValueError, match="temperature must be"):
        DomainPenalisation(3, temperature=0.0)
    with pytest.raises(ValueError, match="batch_reduction must be"):
        DomainPenalisation(3, batch_reduction="none")
    with pytest.raises(ValueError, match="rescale must be"):
        DomainPenalisation(3, rescale=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eta must be"):
        GroupDROWeights(3, eta=-0.1)
    with pytest.raises(ValueError, match="average_losses must have shape"):
        DomainPenalisation(3).end_epoch(torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="average_losses contains NaN or infinite"):
        DomainPenalisation(3).end_epoch(torch.tensor([math.inf, 0.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match="weights must be non-negative"):
        domain_weighted_loss(BATCH, DOMAINS, torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="domain_ids must lie in"):
        domain_weighted_loss(BATCH, DOMAINS, torch.ones(2))
    with pytest.raises(ValueError, match="empty input"):
        domain_penalisation_weights(torch.zeros(0))
    with pytest.raises(ValueError, match="source must be"):
        DomainWeightedObjective(None, 3, source="test")
    with pytest.raises(ValueError, match="eval_data"):
        DomainWeightedObjective(DomainPenalisation(2), 3, source="eval_pass")


# --------------------------------------------------------------------------- with engine.fit
def _toy(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(120, 4, generator=g)
    d = torch.cat([torch.zeros(90, dtype=torch.long), torch.ones(30, dtype=torch.long)])
    y = (x[:, 0] > 0).long()
    y[90:] = (x[90:, 1] > 0).long()  # the small domain follows another rule: harder under ERM
    return x, y, d


def _train(weighting, source="train_running", epochs=3):
    x, y, d = _toy()
    seed_everything(0)
    model = MLP(4, (8,), 2)
    loader = make_loader(TensorDataset(x, y, d), 16, seed=0)
    obj = DomainWeightedObjective(weighting, len(loader), source=source, eval_data=(x, y, d))
    hist = fit(model, None, loader, torch.optim.Adam(model.parameters(), 1e-2),
               TrainConfig(epochs=epochs, progress=False), compute_loss=obj)  # fmt: skip
    obj.finish(model)
    return model, obj, hist


def test_objective_updates_once_per_epoch_and_first_epoch_is_erm() -> None:
    dp = DomainPenalisation(2, batch_reduction="mean")
    _, obj, hist = _train(dp)
    assert int(dp.epochs) == 3 and len(obj.weight_history) == 4
    assert obj.weight_history[0] == [1.0, 1.0]
    assert all(sum(w) == pytest.approx(1.0, abs=1e-6) for w in obj.weight_history[1:])
    assert obj.weight_history[-1][1] > obj.weight_history[-1][0]  # the harder, smaller domain weighs more
    _, _, erm = _train(None, epochs=1)
    _, _, dp1 = _train(DomainPenalisation(2, batch_reduction="mean"), epochs=1)
    assert dp1.losses == pytest.approx(erm.losses, abs=1e-6)  # epoch 1 = ERM exactly


def test_objective_eval_pass_uses_model_losses_and_restores_train_mode() -> None:
    dp = DomainPenalisation(2, batch_reduction="mean")
    model, obj, _ = _train(dp, source="eval_pass", epochs=2)
    x, y, d = _toy()
    with torch.no_grad():
        per = F.cross_entropy(model(x), y, reduction="none").double()
    expected = [float(per[d == k].mean()) for k in range(2)]
    assert dp.average_losses.tolist() == pytest.approx(expected, abs=1e-5)  # last update: after the final epoch
    model_train = MLP(4, (8,), 2).train()
    DomainWeightedObjective(dp, 1, source="eval_pass", eval_data=(x, y, d))._eval_averages(model_train)
    assert model_train.training
