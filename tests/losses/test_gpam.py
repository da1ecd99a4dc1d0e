"""Tests of the GPAM components (Gaussian prototypes, adaptive-margin boundary, NOTA prediction)."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses import (
    NOTA,
    AdaptiveBoundary,
    GPAMLoss,
    SemiFactualAugmenter,
    boundary_margin_loss,
    gaussian_distance,
    gaussian_prototypes,
    nota_predict,
    nota_scores,
    semi_factual_views,
)

D64 = torch.float64
SUPPORT = torch.tensor([[0, 0], [0.4, 0.2], [0.2, -0.2], [2, 2], [2.6, 1.8], [2.2, 2.4]], dtype=D64)
SUPPORT_LABELS = torch.tensor([0, 0, 0, 1, 1, 1])
QUERIES = torch.tensor([[0.9, 0.6], [1.7, 1.5], [1.2, 1.0]], dtype=D64)
QUERY_TARGETS = torch.tensor([0, 1, NOTA])


def _naive_distance(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((x[:, None, :] - mu[None]) ** 2 / var[None]).sum(-1) + 0.5 * var.log().sum(1)[None]


def _naive_boundary(D: torch.Tensor, r: torch.Tensor, t: torch.Tensor, m: float, other: bool) -> torch.Tensor:
    pos, neg = [], []
    for q in range(D.shape[0]):
        for c in range(D.shape[1]):
            if int(t[q]) == c:
                pos.append(torch.relu(D[q, c] - r[c] + m))
            elif int(t[q]) == NOTA or other:
                neg.append(torch.relu(r[c] - D[q, c] + m))
    zero = D.new_zeros(())
    return (torch.stack(pos).mean() if pos else zero) + (torch.stack(neg).mean() if neg else zero)


# --------------------------------------------------------------------------- golden values
def test_golden_values() -> None:
    mu, var, classes = gaussian_prototypes(SUPPORT, SUPPORT_LABELS, shrinkage=0.5, eps=1e-3)
    assert classes.tolist() == [0, 1]
    torch.testing.assert_close(mu, torch.tensor([[0.2, 0.0], [2.2666667, 2.0666667]], dtype=D64), atol=1e-7, rtol=0)
    torch.testing.assert_close(var, torch.tensor([[0.57044444] * 2, [0.58822222] * 2], dtype=D64), atol=1e-8, rtol=0)
    D = gaussian_distance(QUERIES, mu, var)
    want = torch.tensor([[0.183694, 2.885481], [3.382953, 0.015251], [1.19168, 1.403615]], dtype=D64)
    torch.testing.assert_close(D, want, atol=1e-6, rtol=0)
    w = torch.tensor([0.0, 1.0], dtype=D64, requires_grad=True)
    r = F.softplus(w)
    torch.testing.assert_close(r.detach(), torch.tensor([0.693147181, 1.31326169], dtype=D64))
    loss = boundary_margin_loss(D, r, QUERY_TARGETS, margin=1.0)
    assert loss.item() == pytest.approx(0.95083049, abs=1e-8)
    loss.backward()
    torch.testing.assert_close(w.grad, torch.tensor([0.0, 0.365529289], dtype=D64), atol=1e-9, rtol=0)
    assert nota_predict(D, r.detach()).tolist() == [0, 1, NOTA]


# --------------------------------------------------------------------------- invariants
def test_shared_variance_gives_mahalanobis_and_isotropic_gives_protonet() -> None:
    g = torch.Generator().manual_seed(0)
    s, x = torch.randn(20, 6, generator=g, dtype=D64), torch.randn(40, 6, generator=g, dtype=D64)
    labels = torch.arange(4).repeat_interleave(5)
    mu, var, _ = gaussian_prototypes(s, labels, shrinkage=0.0)
    assert torch.allclose(var, var[:1].expand_as(var))  # lam = 0: one variance vector for all classes
    maha = (((x[:, None] - mu[None]) ** 2) / var[0]).sum(-1)
    assert torch.equal(gaussian_distance(x, mu, var).argmin(1), maha.argmin(1))
    iso = torch.full_like(var, 0.7)
    assert torch.equal(gaussian_distance(x, mu, iso).argmin(1), torch.cdist(x, mu).argmin(1))


def test_distance_matches_the_naive_formula_and_supports_are_permutation_invariant() -> None:
    g = torch.Generator().manual_seed(1)
    s, x = torch.randn(15, 8, generator=g, dtype=D64) * 3, torch.randn(30, 8, generator=g, dtype=D64)
    labels = torch.arange(3).repeat_interleave(5)
    mu, var, _ = gaussian_prototypes(s, labels)
    D = gaussian_distance(x, mu, var)
    torch.testing.assert_close(D, _naive_distance(x, mu, var))
    perm = torch.randperm(15, generator=g)
    mu2, var2, _ = gaussian_prototypes(s[perm], labels[perm])
    torch.testing.assert_close(gaussian_distance(x, mu2, var2), D)


def test_views_equal_to_the_original_leave_prototypes_unchanged() -> None:
    h = torch.randn(10, 4, dtype=D64)
    views = semi_factual_views(h, mask_ratio=0.0, n_views=3)
    assert views.shape == (3, 10, 4) and torch.equal(views, h.expand(3, 10, 4))
    aug = SemiFactualAugmenter(mask_ratio=0.0, n_views=2).train()
    torch.testing.assert_close(aug(h), h)
    labels = torch.arange(2).repeat_interleave(5)
    for a, b in zip(gaussian_prototypes(aug(h), labels), gaussian_prototypes(h, labels)):
        torch.testing.assert_close(a, b)


def test_semi_factual_views_protect_features_and_eval_is_the_expectation() -> None:
    h = torch.ones(2000, 4, dtype=D64)
    protected = torch.tensor([True, False, False, True])
    views = semi_factual_views(h, 0.5, 2, protected, generator=torch.Generator().manual_seed(0))
    assert torch.all(views[..., protected] == 1)
    assert abs(float(views[..., ~protected].mean()) - 0.5) < 0.03
    aug = SemiFactualAugmenter(0.5, 2, protected).eval()
    out = aug(h)
    torch.testing.assert_close(out[0], torch.tensor([1.0, 2 / 3, 2 / 3, 1.0], dtype=D64))
    train_mean = aug.train()(h).mean(0)
    torch.testing.assert_close(train_mean, out[0], atol=0.03, rtol=0)


def test_boundary_loss_is_zero_when_satisfied_and_radius_gradients_have_the_right_sign() -> None:
    D = torch.tensor([[0.0, 10.0], [10.0, 0.0], [10.0, 10.0]], dtype=D64)
    r = torch.tensor([2.0, 2.0], dtype=D64)
    assert boundary_margin_loss(D, r, QUERY_TARGETS, margin=1.0, other_class_negatives=True).item() == 0.0
    # a violated positive: the loss decreases as its radius grows
    r1 = torch.tensor([0.5, 2.0], dtype=D64, requires_grad=True)
    boundary_margin_loss(D, r1, QUERY_TARGETS, margin=1.0).backward()
    assert r1.grad[0] < 0 and r1.grad[1] == 0
    # a violated negative: the loss increases with the radius
    r2 = torch.tensor([9.5, 2.0], dtype=D64, requires_grad=True)
    boundary_margin_loss(D, r2, QUERY_TARGETS, margin=1.0).backward()
    assert r2.grad[0] > 0


@pytest.mark.parametrize("other", [False, True])
def test_boundary_loss_matches_the_naive_loops(other: bool) -> None:
    g = torch.Generator().manual_seed(2)
    D, r = torch.rand(12, 4, generator=g, dtype=D64) * 4, torch.rand(4, generator=g, dtype=D64) * 3
    t = torch.tensor([0, 1, 2, 3, -1, -1, 0, 2, -1, 3, 1, -1])
    got = boundary_margin_loss(D, r, t, margin=0.7, other_class_negatives=other)
    torch.testing.assert_close(got, _naive_boundary(D, r, t, 0.7, other))
    # no NOTA query and no other-class negatives: only L_pos remains
    known = t >= 0
    got = boundary_margin_loss(D[known], r, t[known], margin=0.7)
    torch.testing.assert_close(got, (D[known].gather(1, t[known, None]).squeeze(1) - r[t[known]] + 0.7).relu().mean())


def test_nota_predict_is_nota_iff_outside_every_boundary() -> None:
    g = torch.Generator().manual_seed(3)
    D, r = torch.rand(200, 5, generator=g, dtype=D64) * 3, torch.rand(5, generator=g, dtype=D64) * 1.5
    pred = nota_predict(D, r)
    outside = (D >= r).all(1)
    assert torch.equal(pred == NOTA, outside)
    assert torch.equal(pred[~outside], (D - r)[~outside].argmin(1))
    assert torch.equal(nota_scores(D, r) >= 0, outside)


def test_one_shot_is_finite_thanks_to_shrinkage() -> None:
    s, labels = torch.randn(5, 3, dtype=D64), torch.arange(5)
    mu, var, _ = gaussian_prototypes(s, labels, k_shot=1)
    torch.testing.assert_close(mu, s)
    assert torch.all(var > 1e-3) and torch.isfinite(gaussian_distance(torch.randn(4, 3, dtype=D64), mu, var)).all()


# --------------------------------------------------------------------------- gradients
def test_gradcheck_prototypes_distance_and_boundary() -> None:
    s = torch.randn(6, 3, dtype=D64, requires_grad=True)
    x = torch.randn(5, 3, dtype=D64, requires_grad=True)
    w = torch.randn(2, dtype=D64, requires_grad=True)
    labels, t = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 1, -1, 0, -1])

    def f(s: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        mu, var, _ = gaussian_prototypes(s, labels)
        D = gaussian_distance(x, mu, var)
        return D.sum() * 0.01 + boundary_margin_loss(D, F.softplus(w), t, 0.5, True)

    assert torch.autograd.gradcheck(f, (s, x, w))


def test_gradcheck_gpam_loss() -> None:
    torch.manual_seed(0)
    loss = GPAMLoss(3, hidden=4, n_views=0).double()
    s = torch.randn(4, 3, dtype=D64, requires_grad=True)
    q = torch.randn(5, 3, dtype=D64, requires_grad=True)
    sl, ql = torch.tensor([7, 7, 2, 2]), torch.tensor([7, 2, -1, 2, -1])
    assert torch.autograd.gradcheck(lambda s, q: loss(s, sl, q, ql), (s, q))


# --------------------------------------------------------------------------- the episode module
def test_gpam_loss_trains_and_predicts_class_ids() -> None:
    torch.manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, 0.0]])
    labels = torch.tensor([10, 20, 30]).repeat_interleave(5)
    support = centres.repeat_interleave(5, 0) + 0.3 * torch.randn(15, 2)
    query = torch.cat([centres + 0.3 * torch.randn(3, 2), torch.tensor([[0.0, -6.0], [0.0, -5.0]])])
    qlabels = torch.tensor([10, 20, 30, NOTA, NOTA])
    gpam = GPAMLoss(2, hidden=8, n_views=0, k_shot=5)
    opt = torch.optim.Adam(gpam.parameters(), lr=0.05)
    first = gpam(support, labels, query, qlabels).item()
    for _ in range(150):
        opt.zero_grad()
        loss = gpam(support, labels, query, qlabels)
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert gpam.predict(support, labels, query).tolist() == [10, 20, 30, NOTA, NOTA]
    assert gpam.scores(support, labels, query).shape == (5,)
    clone = pickle.loads(pickle.dumps(gpam))
    assert torch.equal(clone.predict(support, labels, query), gpam.predict(support, labels, query))


def test_adaptive_boundary_is_positive_per_prototype() -> None:
    r = AdaptiveBoundary(4, hidden=3)(torch.randn(6, 4))
    assert r.shape == (6,) and torch.all(r > 0)


# --------------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument() -> None:
    gpam = GPAMLoss(2, k_shot=3)
    s, q = SUPPORT.float(), QUERIES.float()
    with pytest.raises(ValueError, match="support_labels.*K = 3"):
        gpam(s[:5], SUPPORT_LABELS[:5], q, torch.tensor([0, 1, -1]))
    with pytest.raises(ValueError, match="support_labels.*K = 2"):
        gaussian_prototypes(s[:5], SUPPORT_LABELS[:5], k_shot=2)
    with pytest.raises(ValueError, match=r"query_labels has classes \[5\].*absent from support_labels"):
        gpam(s, SUPPORT_LABELS, q, torch.tensor([0, 5, -1]))
    with pytest.raises(ValueError, match="support contains NaN"):
        gaussian_prototypes(torch.full((6, 2), float("nan")), SUPPORT_LABELS)
    with pytest.raises(ValueError, match="empty set: query"):
        gpam(s, SUPPORT_LABELS, q[:0], torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="query must have 2 columns"):
        gpam(s, SUPPORT_LABELS, torch.randn(3, 4), torch.tensor([0, 1, -1]))
    with pytest.raises(ValueError, match="query_labels must have shape"):
        gpam(s, SUPPORT_LABELS, q, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="support_labels must be an integer"):
        gaussian_prototypes(s, SUPPORT_LABELS.float())
    with pytest.raises(ValueError, match="support_labels must be >= 0"):
        gaussian_prototypes(s, torch.tensor([-1, -1, -1, 1, 1, 1]))
    D, r = torch.rand(3, 2), torch.rand(2)
    with pytest.raises(ValueError, match="target must lie in"):
        boundary_margin_loss(D, r, torch.tensor([0, 2, -1]))
    with pytest.raises(ValueError, match="radius must be"):
        nota_predict(D, torch.rand(3))
    with pytest.raises(ValueError, match="var must be > 0"):
        gaussian_distance(q, SUPPORT[:2].float(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="shrinkage"):
        gaussian_prototypes(s, SUPPORT_LABELS, shrinkage=1.5)
    with pytest.raises(ValueError, match="margin"):
        GPAMLoss(2, margin=-1.0)
    with pytest.raises(ValueError, match="mask_ratio"):
        SemiFactualAugmenter(mask_ratio=1.0)
    with pytest.raises(ValueError, match="protected_mask"):
        semi_factual_views(s, protected_mask=torch.ones(3, dtype=torch.bool))
