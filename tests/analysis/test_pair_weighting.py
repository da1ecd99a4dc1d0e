"""Tests of the General Pair Weighting tools (paper 28: the GPW framework, Eqs. (1)-(3); the MS
weights, Eqs. (13)-(14); the gradient identity dL/dS = (w- - w+)/m)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from paperzoo.analysis.pair_weighting import (
    REFERENCE_PAIR_LOSSES,
    binomial_deviance_pair_loss,
    contrastive_pair_loss,
    gpw_pair_weights,
    lifted_structure_pair_loss,
    ms_pair_weights,
    pair_masks,
    triplet_pair_loss,
)
from paperzoo.losses.multi_similarity import ms_pair_masks, multi_similarity_loss

F64 = torch.float64
HYP = settings(max_examples=25, deadline=None)


def batch(n: int, seed: int, kind: str = "pk", dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, dim, dtype=F64, generator=gen), dim=1)
    if kind == "pk":
        labels = torch.arange(n) // 3
    elif kind == "random":
        labels = torch.randint(0, max(2, n // 3), (n,), generator=gen)
    else:  # some anchors without positives
        labels = torch.cat([torch.arange(n // 2) // 2, 50 + torch.arange(n - n // 2)])
    return x @ x.T, labels


# --------------------------------------------------------------------------- dL/dS = (w- - w+) / m, Eqs. (13)-(14)
@HYP
@given(
    n=st.integers(2, 30),
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["pk", "random", "singletons"]),
    beta=st.sampled_from([10.0, 40.0, 50.0]),
    base=st.sampled_from([0.5, 1.0]),
    mining=st.booleans(),
)
def test_property3_autograd_gradient_equals_closed_form_weights(
    n: int, seed: int, kind: str, beta: float, base: float, mining: bool
) -> None:
    S, labels = batch(n, seed, kind)
    leaf = S.clone().requires_grad_(True)
    loss = multi_similarity_loss(leaf, labels, 2.0, beta, base, 0.1, mining=mining)
    (grad,) = torch.autograd.grad(loss, leaf)
    w_pos, w_neg = ms_pair_weights(S, labels, 2.0, beta, base, 0.1, mining=mining)
    pos, neg = ms_pair_masks(S, labels, 0.1, mining=mining)
    # dL/dS = -w+/m on kept positives, +w-/m on kept negatives, 0 elsewhere
    torch.testing.assert_close(grad, (w_neg - w_pos) / n, atol=1e-10, rtol=0)
    assert torch.equal(w_pos > 0, pos) and torch.equal(w_neg > 0, neg)
    g_pos, g_neg = gpw_pair_weights(
        lambda s, y: multi_similarity_loss(s, y, 2.0, beta, base, 0.1, mining=mining), S, labels
    )
    torch.testing.assert_close(g_pos * n, w_pos, atol=1e-10, rtol=0)
    torch.testing.assert_close(g_neg * n, w_neg, atol=1e-10, rtol=0)


def test_ms_weights_match_eqs_13_14_literally() -> None:
    """w+_ij = 1/(e^{a(S_ij-l)} + sum_k e^{-a(S_ik-S_ij)}), w-_ij = 1/(e^{-b(S_ij-l)} + sum_k e^{b(S_ik-S_ij)})."""
    S, labels = batch(12, 3)
    a, b, lam = 2.0, 40.0, 0.5
    w_pos, w_neg = ms_pair_weights(S, labels, a, b, lam, 0.1)
    pos, neg = ms_pair_masks(S, labels, 0.1)
    for i, j in itertools.product(range(12), range(12)):
        if pos[i, j]:
            ks = torch.nonzero(pos[i]).flatten()
            expected = 1.0 / (torch.exp(a * (S[i, j] - lam)) + torch.exp(-a * (S[i, ks] - S[i, j])).sum())
            assert w_pos[i, j].item() == pytest.approx(expected.item(), rel=1e-12)
        else:
            assert w_pos[i, j].item() == 0.0
        if neg[i, j]:
            ks = torch.nonzero(neg[i]).flatten()
            expected = 1.0 / (torch.exp(-b * (S[i, j] - lam)) + torch.exp(b * (S[i, ks] - S[i, j])).sum())
            assert w_neg[i, j].item() == pytest.approx(expected.item(), rel=1e-12)
        else:
            assert w_neg[i, j].item() == 0.0


def test_ms_weights_stay_finite_at_large_scales() -> None:
    S, labels = batch(20, 4)
    w_pos, w_neg = ms_pair_weights(S, labels, alpha=500.0, beta=5000.0, base=-0.9)
    assert torch.isfinite(w_pos).all() and torch.isfinite(w_neg).all()
    assert (w_pos <= 1).all() and (w_neg <= 1).all()


# --------------------------------------------------------------------------- GPW identity, Eqs. (1)-(3)
@pytest.mark.parametrize("name", [*REFERENCE_PAIR_LOSSES, "multi-similarity"])
def test_sgd_step_on_loss_equals_step_on_weighted_similarities(name: str) -> None:
    """dL/dtheta equals the gradient of sum_i [sum_N w S - sum_P w S] with w held constant."""
    fn = REFERENCE_PAIR_LOSSES.get(name, multi_similarity_loss)
    gen = torch.Generator().manual_seed(11)
    emb = torch.randn(15, 4, dtype=F64, generator=gen, requires_grad=True)
    labels = torch.arange(15) // 3
    x = F.normalize(emb, dim=1)
    S = x @ x.T
    (g_loss,) = torch.autograd.grad(fn(S, labels), emb, retain_graph=True)
    w_pos, w_neg = gpw_pair_weights(fn, S, labels)
    (g_gpw,) = torch.autograd.grad(((w_neg - w_pos) * S).sum(), emb)
    torch.testing.assert_close(g_loss, g_gpw, atol=1e-12, rtol=1e-9)
    assert (w_pos >= 0).all() and (w_neg >= 0).all()  # sign convention holds


# --------------------------------------------------------------------------- the reference losses
def test_contrastive_weights_are_self_similarity_indicators() -> None:
    S, labels = batch(12, 0)
    w_pos, w_neg = gpw_pair_weights(contrastive_pair_loss, S, labels)
    pos, neg = pair_masks(labels)
    assert torch.equal(w_pos, pos.to(F64))  # every positive weight 1 (S < 1)
    assert torch.equal(w_neg, (neg & (S > 0.5)).to(F64))


def test_triplet_weights_count_violating_triplets() -> None:
    S, labels = batch(9, 1)
    w_pos, w_neg = gpw_pair_weights(triplet_pair_loss, S, labels)
    pos, neg = pair_masks(labels)
    count_pos = torch.zeros(9, 9, dtype=F64)
    count_neg = torch.zeros(9, 9, dtype=F64)
    for i, p, n in itertools.product(range(9), repeat=3):
        if pos[i, p] and neg[i, n] and S[i, n] - S[i, p] + 0.1 > 0:
            count_pos[i, p] += 1
            count_neg[i, n] += 1
    assert torch.equal(w_pos, count_pos) and torch.equal(w_neg, count_neg)


def test_binomial_deviance_weights_are_sigmoids() -> None:
    S, labels = batch(12, 2)
    a, b, lam = 2.0, 50.0, 0.5
    w_pos, w_neg = gpw_pair_weights(lambda s, y: binomial_deviance_pair_loss(s, y, a, b, lam), S, labels)
    pos, neg = pair_masks(labels)
    torch.testing.assert_close(w_pos, torch.where(pos, 1 / (1 + torch.exp(a * (S - lam))), 0.0), atol=1e-14, rtol=0)
    torch.testing.assert_close(w_neg, torch.where(neg, 1 / (1 + torch.exp(-b * (S - lam))), 0.0), atol=1e-14, rtol=0)


def test_lifted_structure_weights_are_softmax_over_negatives() -> None:
    S, labels = batch(12, 5)
    w_pos, w_neg = gpw_pair_weights(lifted_structure_pair_loss, S, labels)
    pos, neg = pair_masks(labels)
    active = (
        torch.logsumexp((1.0 - S).masked_fill(~pos, -torch.inf), 1)
        + torch.logsumexp(S.masked_fill(~neg, -torch.inf), 1)
    ) > 0
    assert active.any()
    soft_neg = torch.softmax(S.masked_fill(~neg, -torch.inf), dim=1)
    soft_pos = torch.softmax((1.0 - S).masked_fill(~pos, -torch.inf), dim=1)
    torch.testing.assert_close(w_neg[active], soft_neg[active], atol=1e-14, rtol=0)
    torch.testing.assert_close(w_pos[active], soft_pos[active], atol=1e-14, rtol=0)
    assert (w_neg[~active] == 0).all()


def test_lifted_structure_skips_anchors_without_positives_without_nan() -> None:
    S, labels = batch(10, 6, kind="singletons")
    w_pos, w_neg = gpw_pair_weights(lifted_structure_pair_loss, S, labels)
    assert torch.isfinite(w_pos).all() and torch.isfinite(w_neg).all()
    no_pos = ~pair_masks(labels)[0].any(1)
    assert no_pos.any() and (w_neg[no_pos] == 0).all()


def test_gpw_leaves_the_input_untouched_and_works_under_no_grad() -> None:
    S, labels = batch(8, 7)
    before = S.clone()
    with torch.no_grad():
        w_pos, _ = gpw_pair_weights(contrastive_pair_loss, S, labels)
    assert torch.equal(S, before) and not S.requires_grad and w_pos.sum() > 0


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_raise() -> None:
    S, labels = batch(6, 0)
    with pytest.raises(ValueError, match="square"):
        gpw_pair_weights(contrastive_pair_loss, S[:, :5], labels)
    with pytest.raises(ValueError, match="labels must have shape"):
        ms_pair_weights(S, labels[:4])
    with pytest.raises(ValueError, match="NaN"):
        contrastive_pair_loss(torch.full((3, 3), float("nan")), torch.arange(3))
    with pytest.raises(ValueError, match="empty batch"):
        triplet_pair_loss(torch.zeros(0, 0), torch.zeros(0, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        binomial_deviance_pair_loss(S, labels.float())
    with pytest.raises(ValueError, match="scalar"):
        gpw_pair_weights(lambda s, y: s.sum(1), S, labels)
    with pytest.raises(ValueError, match=r"^ms_pair_weights: beta must be a float in \(0, inf\), got 0.0$"):
        ms_pair_weights(S, labels, beta=0.0)
