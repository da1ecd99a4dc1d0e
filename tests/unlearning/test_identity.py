"""Identity-level splits, the paper's membership-inference attack and NoMUS (paper 36)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from paperzoo.unlearning.identity import (
    PAPER_METRICS,
    IdentityProtocol,
    IdentitySplits,
    evaluate_unlearning,
    forgetting_gap,
    logistic_attack_accuracy,
    membership_inference_attack,
    nomus,
    per_sample_losses,
)

IDS = np.repeat(np.arange(60), 4)  # 60 identities, 4 photos each


# --------------------------------------------------------------------------- splits
def _check_invariants(s: IdentitySplits) -> None:
    ident = s.identities
    for a, b in (("train", "test"), ("train", "unseen"), ("test", "unseen")):
        assert not np.intersect1d(ident[getattr(s, a)], ident[getattr(s, b)]).size, (a, b)
    assert not (s.forget & ~s.train).any()
    assert not (s.forget & s.retain).any()
    assert np.array_equal(s.retain, s.train & ~s.forget)
    sizes = s.sizes()
    assert sizes["forget"] + sizes["retain"] == sizes["train"]


def test_random_identities_invariants_and_sizes():
    s = IdentitySplits.random_identities(IDS, n_train=30, n_forget=5, n_test=10, n_unseen=12, seed=3)
    _check_invariants(s)
    assert s.sizes() == {"train": 120, "forget": 20, "retain": 100, "test": 40, "unseen": 48}
    assert s.shared_identities == 0
    again = IdentitySplits.random_identities(IDS, 30, 5, 10, 12, seed=3)
    assert np.array_equal(again.forget, s.forget) and np.array_equal(again.unseen, s.unseen)
    assert not np.array_equal(IdentitySplits.random_identities(IDS, 30, 5, 10, 12, seed=4).forget, s.forget)


def test_from_ranges_mucac_style():
    ids = np.repeat(np.arange(100), 2)
    s = IdentitySplits.from_ranges(ids, test=(0, 10), forget=(10, 30), retain=(30, 80), unseen=(80, None))
    _check_invariants(s)
    assert set(ids[s.forget]) == set(range(10, 30)) and set(ids[s.unseen]) == set(range(80, 100))
    assert set(ids[s.train]) == set(range(10, 80))


def test_first_n_rows_mufac_style():
    # 10 identities of 3 rows; train = 0..5, the first 7 training rows cut identity 2
    ids = np.repeat(np.arange(10), 3)
    whole = IdentitySplits.first_n_rows(ids, range(6), 7, [6, 7], [8, 9])
    _check_invariants(whole)
    assert set(ids[whole.forget]) == {0, 1} and whole.sizes()["forget"] == 6
    exact = IdentitySplits.first_n_rows(ids, range(6), 7, [6, 7], [8, 9], whole_identities=False)
    assert exact.sizes()["forget"] == 7 and exact.shared_identities == 1
    assert not (exact.forget & exact.retain).any()


def test_bad_splits_raise():
    with pytest.raises(ValueError, match="forget_ids must be training identities"):
        IdentitySplits(IDS, range(10), [3, 11], range(10, 20), range(20, 30))
    with pytest.raises(ValueError, match="train_ids and test_ids share"):
        IdentitySplits(IDS, range(10), [1], range(9, 20), range(20, 30))
    with pytest.raises(ValueError, match="test_ids and unseen_ids share"):
        IdentitySplits(IDS, range(10), [1], range(10, 20), range(19, 30))
    with pytest.raises(ValueError, match="forget_ids is empty"):
        IdentitySplits(IDS, range(10), [], range(10, 20), range(20, 30))
    with pytest.raises(ValueError, match="no sample"):
        IdentitySplits(IDS, range(10), [1], range(10, 20), range(60, 70))
    with pytest.raises(ValueError, match="retain split is empty"):
        IdentitySplits(IDS, range(3), range(3), range(10, 20), range(20, 30))
    with pytest.raises(ValueError, match="identities must be"):
        IdentitySplits(IDS.astype(float), range(10), [1], range(10, 20), range(20, 30))
    with pytest.raises(ValueError, match="exceeds the 60 identities"):
        IdentitySplits.random_identities(IDS, 40, 5, 10, 11)
    with pytest.raises(ValueError, match="n_forget must be below"):
        IdentitySplits.random_identities(IDS, 10, 10, 10, 10)
    with pytest.raises(ValueError, match="n_train must be"):
        IdentitySplits.random_identities(IDS, 0, 0, 10, 10)


def test_build_gives_unlearning_data_with_identities():
    s = IdentitySplits.random_identities(IDS, 30, 5, 10, 12, seed=0)
    x, y = torch.randn(len(IDS), 3), torch.randint(0, 4, (len(IDS),))
    d = s.build(x, y, 4)
    assert torch.equal(d.data.groups, torch.as_tensor(IDS))
    assert set(d.data.forget_idx.tolist()) == set(np.flatnonzero(s.forget).tolist())
    assert set(d.unseen_idx.tolist()) == set(np.flatnonzero(s.unseen).tolist())
    assert torch.equal(d.x_unseen, x[d.unseen_idx])
    with pytest.raises(ValueError, match="x must have 240 rows"):
        s.build(x[:10], y[:10], 4)


# --------------------------------------------------------------------------- the attack
def test_mia_golden_case_1():
    # the paper's attack on fixed losses: fold scores 0.70 .55 .70 .65 .75 .60 .60 .70 .65 .65
    assert logistic_attack_accuracy(np.linspace(0.5, 2.5, 100), np.linspace(0.0, 2.0, 100)) == pytest.approx(0.655)


def test_mia_separable_is_one_and_identical_is_chance():
    assert membership_inference_attack(np.linspace(0, 0.4, 50), np.linspace(1, 3, 50)) == 1.0
    rng = np.random.default_rng(0)
    same = rng.gamma(2.0, size=300)
    assert abs(membership_inference_attack(same, same.copy()) - 0.5) <= 0.1


def test_mia_shift_invariant_and_deterministic():
    rng = np.random.default_rng(1)
    f, u = rng.gamma(2.0, size=200), rng.gamma(2.5, size=200)
    base = membership_inference_attack(f, u)
    assert membership_inference_attack(f + 3.0, u + 3.0) == pytest.approx(base, abs=1e-12)
    assert membership_inference_attack(f, u) == base


def test_mia_balance_pitfall():
    losses = np.linspace(0, 1, 150)
    # the reference truncates only the forget side: 50 forget vs 150 unseen scores the majority rate
    assert membership_inference_attack(losses[::3], losses, balance="reference") == pytest.approx(0.75)
    assert abs(membership_inference_attack(losses[::3], losses, balance="min") - 0.5) <= 0.15


def test_mia_min_equals_reference_when_forget_is_larger():
    rng = np.random.default_rng(2)
    f, u = rng.gamma(2.0, size=120), rng.gamma(2.2, size=100)
    assert membership_inference_attack(f, u, balance="min") == membership_inference_attack(f, u, balance="reference")
    # the reference's permutation: np.random.seed(42); np.random.shuffle(forget); forget[:|U|]
    np.random.seed(42)
    g = f.copy()
    np.random.shuffle(g)
    assert membership_inference_attack(f, u) == logistic_attack_accuracy(u, g[:100])


def test_mia_bad_input():
    with pytest.raises(ValueError, match="forget_losses holds NaN"):
        membership_inference_attack([np.nan] * 20, np.ones(20))
    with pytest.raises(ValueError, match="unseen_losses needs at least n_splits=10"):
        membership_inference_attack(np.ones(20), np.ones(5))
    with pytest.raises(ValueError, match="balance must be"):
        membership_inference_attack(np.ones(20), np.ones(20), balance="max")


# --------------------------------------------------------------------------- NoMUS
@pytest.mark.parametrize(
    ("acc", "gap", "expected"),
    [(0.5951, 0.2136, 0.58395), (0.488, 0.0445, 0.6995), (0.5633, 0.0953, 0.68635), (0.4048, 0.0485, 0.6539),
     (0.5984, 0.1415, 0.6577)],
)  # fmt: skip
def test_nomus_golden(acc, gap, expected):
    assert nomus(acc, 0.5 + gap) == pytest.approx(expected, abs=1e-12)
    assert nomus(acc, 0.5 - gap) == pytest.approx(expected, abs=1e-12)  # symmetric about 0.5


def test_nomus_properties():
    assert nomus(0.7, 0.5, lam=0.3) == pytest.approx(0.3 * 0.7 + 0.7)
    mias = np.linspace(0.5, 1.0, 11)
    values = np.array([nomus(0.6, m) for m in mias])
    assert np.allclose(np.diff(values), np.diff(values)[0]) and np.diff(values)[0] < 0  # linear, decreasing
    assert nomus(0.0, 1.0) == 0.0 and nomus(1.0, 0.5) == 1.0
    assert forgetting_gap(0.3) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="lam must be"):
        nomus(0.5, 0.5, lam=1.5)
    with pytest.raises(ValueError, match="mia must lie in"):
        nomus(0.5, 1.5)


# --------------------------------------------------------------------------- evaluation
def _toy(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = np.repeat(np.arange(40), 5)
    x, y = torch.randn(200, 6, generator=g), torch.randint(0, 3, (200,), generator=g)
    return IdentitySplits.random_identities(ids, 20, 4, 8, 8, seed=seed).build(x, y, 3)


def test_per_sample_losses_kinds():
    model = nn.Linear(6, 3)
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    ce = per_sample_losses(model, x, y)
    assert ce.shape == (10,) and ce.dtype == np.float64
    assert np.allclose(ce, nn.functional.cross_entropy(model(x), y, reduction="none").detach().numpy(), atol=1e-6)
    t = torch.randint(0, 2, (10, 3)).float()
    bce = per_sample_losses(model, x, t, kind="bce_mean")
    ref = nn.functional.binary_cross_entropy_with_logits(model(x), t, reduction="none").mean(1).detach().numpy()
    assert np.allclose(bce, ref, atol=1e-6)
    with pytest.raises(ValueError, match="kind must be"):
        per_sample_losses(model, x, y, kind="mse")


def test_evaluate_unlearning_columns():
    d = _toy()
    torch.manual_seed(0)
    out = evaluate_unlearning(nn.Linear(6, 3), d)
    assert tuple(out) == PAPER_METRICS
    assert out["|MIA - 0.5|"] == pytest.approx(abs(out["MIA"] - 0.5))
    assert out["NoMUS"] == pytest.approx(nomus(out["test acc"], out["MIA"]))
    assert out["top-2 acc"] >= out["test acc"]


def test_identity_protocol_runs_a_method():
    from paperzoo.unlearning.baselines import Original

    d = _toy(1)

    def train_fn(model, x, y, seed):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(20):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    proto = IdentityProtocol(d, lambda: nn.Linear(6, 3), train_fn)
    out = proto.run(Original(), seed=0)
    assert set(PAPER_METRICS) <= set(out) and {"MIA AUC", "oracle KL", "time s"} <= set(out)
    assert out == {**out, **proto.evaluate(proto.original(0), 0)}  # same numbers on the same model
    with pytest.raises(ValueError, match="balance must be"):
        IdentityProtocol(d, lambda: nn.Linear(6, 3), train_fn, balance="none")
