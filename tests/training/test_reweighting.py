"""Tests of the loss-based sample reweighting of Sow et al. (ICLR 2025)."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from paperzoo.engine import TrainConfig, fit, make_loader, seed_everything
from paperzoo.training.reweighting import (
    STRATEGIES,
    LossReweighter,
    ReweightedObjective,
    loss_based_weights,
    normalize_losses,
    per_sequence_lm_loss,
    reweighted_loss,
    strategy_scores,
)

LOSSES = torch.tensor([2.0, 3.5, 1.2, 4.8, 2.9, 3.0], dtype=torch.float64)
# the authors' trainer functions h_func, f_func_* and g_func on LOSSES, delta = 1, float64
GOLDEN_H = [-0.555556, 0.277778, -1.0, 1.0, -0.0555556, 0.0]
GOLDEN = {
    ("linupper", 1.0): [0.11739, 0.2046, 0.075268, 0.2046, 0.193543, 0.2046],
    ("linupper", 0.4): [0.0593447, 0.237995, 0.0195359, 0.237995, 0.207133, 0.237995],
    ("quadratic", 1.0): [0.16719, 0.210738, 0.0837448, 0.0837448, 0.226941, 0.227642],
    ("quadratic", 0.4): [0.134252, 0.239468, 0.0238389, 0.0238389, 0.288185, 0.290418],
    ("extremes", 1.0): [0.165098, 0.125056, 0.257491, 0.257491, 0.100137, 0.0947257],
    ("extremes", 0.4): [0.123294, 0.0615672, 0.374535, 0.374535, 0.0353244, 0.0307437],
}
# the README's "uniform" key of the released code is F(h) = h (an exponential tilt), r = 1
GOLDEN_TILT = [0.0828397, 0.190612, 0.0531152, 0.392471, 0.13658, 0.144382]


def _naive_weights(losses: list[float], f, r: float, delta: float = 1.0) -> list[float]:
    """The rule written out element by element, as in the paper."""
    lo, hi = min(losses), max(losses)
    spread = max(hi - lo, 1e-6)
    h = [2 * delta * v / spread - delta * (hi + lo) / spread for v in losses]
    fs = [f(x) for x in h]
    g = [math.exp((x - max(fs)) / r) for x in fs]
    return [x / sum(g) for x in g]


# --------------------------------------------------------------------------- golden values
def test_normalised_losses_golden() -> None:
    assert normalize_losses(LOSSES).tolist() == pytest.approx(GOLDEN_H, abs=1e-6)


@pytest.mark.parametrize(("strategy", "r"), list(GOLDEN))
def test_weights_golden(strategy: str, r: float) -> None:
    assert loss_based_weights(LOSSES, strategy, r).tolist() == pytest.approx(GOLDEN[strategy, r], abs=1e-5)


def test_exponential_tilt_golden_and_uniform_is_truly_uniform() -> None:
    h = normalize_losses(LOSSES)
    assert torch.softmax(h, 0).tolist() == pytest.approx(GOLDEN_TILT, abs=1e-5)
    assert torch.equal(loss_based_weights(LOSSES, "uniform", 1.0), torch.full((6,), 1 / 6, dtype=torch.float64))


@pytest.mark.parametrize("strategy", ["linupper", "quadratic", "extremes", "upper"])
@pytest.mark.parametrize("r", [0.3, 1.0, 2.5])
def test_matches_naive_formula(strategy: str, r: float) -> None:
    delta = 0.7
    fns = {
        "linupper": lambda h: min(h + delta, delta),
        "quadratic": lambda h: 1 - h * h / delta**2,
        "extremes": abs,
        "upper": lambda h: 0.5 * h + 0.5 * delta,
    }
    losses = torch.rand(17, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 5
    naive = _naive_weights(losses.tolist(), fns[strategy], r, delta)
    assert loss_based_weights(losses, strategy, r, delta).tolist() == pytest.approx(naive, abs=1e-12)


# --------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_weights_are_a_distribution_and_affine_invariant(strategy: str) -> None:
    losses = torch.rand(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    w = loss_based_weights(losses, strategy, 0.5)
    assert bool((w >= 0).all()) and float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(loss_based_weights(4.0 * losses - 7.0, strategy, 0.5), w, atol=1e-12)


def test_equal_losses_give_uniform_weights_without_nan() -> None:
    for strategy in STRATEGIES:
        w = loss_based_weights(torch.full((5,), 2.5), strategy, 0.1)
        assert torch.allclose(w, torch.full((5,), 0.2)), strategy
    assert torch.equal(normalize_losses(torch.full((3,), 1.0)), torch.zeros(3))


def test_linupper_monotone_capped_and_bounded_ratio() -> None:
    losses = torch.linspace(0.0, 10.0, 41, dtype=torch.float64)
    for r in (0.25, 1.0, 3.0):
        w = loss_based_weights(losses, "linupper", r)
        assert bool((w[1:] >= w[:-1] - 1e-15).all())
        h = normalize_losses(losses)
        assert torch.allclose(w[h >= 0], w[h >= 0][0].expand(int((h >= 0).sum())))
        assert float(w.max() / w.min()) <= math.exp(1.0 / r) * (1 + 1e-12)


def test_quadratic_peaks_in_the_middle_and_is_symmetric() -> None:
    losses = torch.linspace(-1.0, 1.0, 21, dtype=torch.float64)  # h = losses
    w = loss_based_weights(losses, "quadratic", 1.0)
    assert int(w.argmax()) == 10
    assert torch.allclose(w, w.flip(0))


def test_extremes_minimal_in_the_middle() -> None:
    w = loss_based_weights(torch.linspace(-1.0, 1.0, 21, dtype=torch.float64), "extremes", 1.0)
    assert int(w.argmin()) == 10 and torch.allclose(w, w.flip(0))


def test_temperature_limits() -> None:
    losses = torch.tensor([0.5, 1.0, 3.0, 2.0], dtype=torch.float64)
    for strategy in ("linupper", "quadratic", "extremes"):
        assert torch.allclose(
            loss_based_weights(losses, strategy, 1e9), torch.full((4,), 0.25, dtype=torch.float64), atol=1e-8
        )
    cold = loss_based_weights(losses, "quadratic", 1e-4)  # all mass on argmax F: the mid-range loss
    assert float(cold[3]) == pytest.approx(1.0) and cold.sum() == pytest.approx(1.0)
    cold_extremes = loss_based_weights(losses, "extremes", 1e-4)  # ties between the two ends
    assert cold_extremes[[0, 2]].tolist() == pytest.approx([0.5, 0.5])


def test_strategy_scores() -> None:
    h = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert strategy_scores(h, "linupper").tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert strategy_scores(h, "quadratic").tolist() == [0.0, 0.75, 1.0, 0.75, 0.0]
    assert strategy_scores(h, "extremes").tolist() == [1.0, 0.5, 0.0, 0.5, 1.0]
    assert strategy_scores(h, "upper").tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


# --------------------------------------------------------------------------- the back-propagated loss
def test_uniform_reweighted_loss_is_the_token_weighted_mean() -> None:
    losses = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    counts = torch.tensor([10, 30, 60])
    expected = float((losses * counts).sum() / counts.sum())
    w = loss_based_weights(losses, "uniform")
    assert float(reweighted_loss(losses, w, counts)) == pytest.approx(expected)
    assert float(reweighted_loss(losses, w)) == pytest.approx(float(losses.mean()))
    assert float(LossReweighter("linupper", warmup_steps=5)(losses, counts)) == pytest.approx(expected)


def test_no_gradient_through_weights() -> None:
    losses = torch.tensor([1.0, 2.0, 4.0, 3.0], dtype=torch.float64, requires_grad=True)
    reweighter = LossReweighter("linupper", r=0.5, warmup_steps=0)
    reweighter(losses).backward()
    w = reweighter.last_weights
    assert w is not None and not w.requires_grad
    assert torch.allclose(losses.grad, 4 * w / 4)  # d/dl of N * sum w_i l_i / N, w held constant
    # with token counts: the gradient is N * w_i * n_i / sum n (the weights' own dependence on l is not followed)
    x = losses.detach().clone().requires_grad_(True)
    counts = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    reweighter(x, counts).backward()
    assert torch.allclose(x.grad, 4 * reweighter.last_weights * counts / counts.sum())


def test_warmup_and_step_counter() -> None:
    losses = torch.tensor([1.0, 5.0, 2.0])
    rw = LossReweighter("linupper", warmup_steps=2)
    rw(losses)
    assert torch.allclose(rw.last_weights, torch.full((3,), 1 / 3))
    rw(losses)
    rw(losses)  # step 2: reweighting is on
    assert int(rw.steps) == 3 and float(rw.last_weights[0]) < 1 / 3
    rw.eval()
    rw(losses)
    assert int(rw.steps) == 3  # evaluation calls do not count
    state = rw.state_dict()
    fresh = LossReweighter("linupper", warmup_steps=2)
    fresh.load_state_dict(state)
    assert int(fresh.steps) == 3
    assert torch.allclose(LossReweighter("linupper", warmup_steps=2)(losses, step=2), rw(losses, step=2))


# --------------------------------------------------------------------------- causal LM loss
def test_per_sequence_lm_loss_matches_cross_entropy_and_ignores() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 6), generator=g)
    labels[1, 3:] = -100
    labels[2, 1:] = -100  # no target at all
    losses, n = per_sequence_lm_loss(logits, labels)
    assert n.tolist() == [5, 2, 0]
    for i in range(2):
        m = labels[i, 1:] != -100
        ref = F.cross_entropy(logits[i, :-1][m], labels[i, 1:][m])
        assert float(losses[i]) == pytest.approx(float(ref), rel=1e-12)
    assert float(losses[2]) == 0.0 and losses.dtype == torch.float64
    half, _ = per_sequence_lm_loss(logits.to(torch.bfloat16), labels)
    assert half.dtype == torch.bfloat16 and torch.allclose(half.double(), losses, rtol=0.05)
    total = float(reweighted_loss(losses, torch.full((3,), 1 / 3, dtype=torch.float64), n))
    assert total == pytest.approx(float(F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))))


def test_objective_drives_engine_fit() -> None:
    seed_everything(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    model = torch.nn.Linear(5, 3)
    objective = ReweightedObjective.classification(LossReweighter("quadratic", r=1.0, warmup_steps=2))
    loader = make_loader(TensorDataset(x, y), 16, seed=0)
    hist = fit(model, None, loader, torch.optim.SGD(model.parameters(), lr=0.1),
               TrainConfig(epochs=2, progress=False), compute_loss=objective)  # fmt: skip
    assert hist.steps == 8 and int(objective.reweighter.steps) == 8
    assert all(math.isfinite(v) for v in hist.losses)


def test_causal_lm_objective() -> None:
    from paperzoo.models.tiny_lm import TinyCausalLM

    torch.manual_seed(0)
    model = TinyCausalLM(20, d_model=8, n_layers=1, n_heads=2, max_len=12)
    tokens = torch.randint(0, 20, (4, 12))
    loss = ReweightedObjective.causal_lm(LossReweighter("uniform", warmup_steps=0))(model, tokens)
    ref = F.cross_entropy(model(tokens)[:, :-1].reshape(-1, 20), tokens[:, 1:].reshape(-1))
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    # causality: changing the last token leaves the earlier logits unchanged
    other = tokens.clone()
    other[:, -1] = (other[:, -1] + 1) % 20
    assert torch.allclose(model(tokens)[:, :-1], model(other)[:, :-1], atol=1e-6)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: loss_based_weights(LOSSES, "mid"), "strategy"),
        (lambda: loss_based_weights(LOSSES, "linupper", r=0.0), "r must"),
        (lambda: loss_based_weights(LOSSES, "linupper", delta=-1.0), "delta"),
        (lambda: loss_based_weights(torch.tensor([]), "linupper"), "empty batch"),
        (lambda: loss_based_weights(torch.ones(2, 3), "linupper"), "shape"),
        (lambda: loss_based_weights(torch.tensor([1.0, float("nan")]), "linupper"), "losses contains NaN"),
        (lambda: LossReweighter(warmup_steps=-1), "warmup_steps"),
        (lambda: LossReweighter(distributed="yes"), "distributed"),
        (lambda: LossReweighter(distributed=True)(LOSSES), "process group"),
        (lambda: LossReweighter()(LOSSES, torch.ones(4)), "token_counts must have shape"),
        (lambda: LossReweighter()(LOSSES, -torch.ones(6)), "token_counts must be non-negative"),
        (lambda: LossReweighter()(LOSSES, torch.zeros(6)), "token_counts must have a positive sum"),
        (lambda: LossReweighter()(LOSSES, step=-2), "step"),
        (lambda: reweighted_loss(LOSSES, torch.ones(5)), "weights must have shape"),
        (lambda: reweighted_loss(LOSSES, -torch.ones(6)), "weights must be non-negative"),
        (lambda: reweighted_loss(LOSSES, torch.ones(6), global_batch_size=3), "global_batch_size"),
        (lambda: per_sequence_lm_loss(torch.randn(2, 5), torch.zeros(2, 5, dtype=torch.long)), "logits must"),
        (lambda: per_sequence_lm_loss(torch.randn(2, 1, 4), torch.zeros(2, 1, dtype=torch.long)), "T >= 2"),
        (lambda: per_sequence_lm_loss(torch.randn(2, 5, 4), torch.zeros(2, 4, dtype=torch.long)), "labels must have"),
        (lambda: per_sequence_lm_loss(torch.randn(2, 5, 4), torch.full((2, 5), 4)), r"labels must lie in \[0, 4\)"),
        (lambda: per_sequence_lm_loss(torch.randn(0, 5, 4), torch.zeros(0, 5, dtype=torch.long)), "empty batch"),
        (lambda: ReweightedObjective(3, LossReweighter()), "per_sample"),
    ],
)
def test_bad_input_names_the_argument(call, match: str) -> None:
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        call()


# --------------------------------------------------------------------------- data parallel
def _rank_worker(rank: int, port: int, out: dict) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    local = [torch.tensor([1.0, 4.0, 2.5]), torch.tensor([0.5, 3.0, 6.0, 2.0, 1.5])][rank]
    rw = LossReweighter("linupper", r=0.5, warmup_steps=0)
    loss = rw(local)
    out[rank] = (rw.last_weights.tolist(), float(loss))
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.distributed
def test_weights_are_normalised_over_the_global_batch() -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank_worker, args=(port, out), nprocs=2, join=True)
        got = dict(out)
    everyone = torch.tensor([1.0, 4.0, 2.5, 0.5, 3.0, 6.0, 2.0, 1.5])
    w = loss_based_weights(everyone, "linupper", 0.5)
    assert got[0][0] + got[1][0] == pytest.approx(w.tolist(), abs=1e-6)
    # gradient averaging over ranks of N * sum_local w_i l_i / B_local reproduces N * sum w_i l_i / B per rank
    assert got[0][1] == pytest.approx(8 * float((w[:3] * everyone[:3]).sum()) / 3, rel=1e-6)


def test_reweighted_cross_entropy_is_a_classification_loss() -> None:
    from paperzoo.training.reweighting import ReweightedCrossEntropy, loss_based_weights

    logits, target = torch.randn(16, 5, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 5
    loss = ReweightedCrossEntropy("linupper", r=1.0, warmup_steps=0)
    per = F.cross_entropy(logits, target, reduction="none")
    expected = (loss_based_weights(per, "linupper", r=1.0) * per).sum()
    torch.testing.assert_close(loss(logits, target), expected)
    assert int(loss.reweighter.steps) == 1
    burn_in = ReweightedCrossEntropy("linupper", warmup_steps=5)
    torch.testing.assert_close(burn_in(logits, target), per.mean())  # uniform during the burn-out phase
    with pytest.raises(ValueError, match="target"):
        loss(logits, target + 5)
