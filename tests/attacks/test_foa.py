"""Tests of FOA-Attack (paper 23): golden values of the official OT / Sinkhorn / dynamic
weighting, the properties of the plan, the k-means centres, the loss and the attack loop, the
evaluation helpers, and clear errors for bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.attacks.evaluation import (
    InputSmoothingDefence,
    embedding_match_rate,
    perturbation_norms,
    targeted_transfer_success,
)
from paperzoo.attacks.foa import (
    ConvSurrogate,
    DynamicEnsembleWeights,
    FOALoss,
    ViTSurrogate,
    attackvlm_like,
    batched_kmeans_centers,
    foa_attack,
    global_cosine,
    global_local_features,
    m_attack,
    ot_similarity,
    random_resized_crop,
    sinkhorn_plan,
)
from paperzoo.models import TinyViT

D = torch.float64
A = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 1, 0]], dtype=D)
B = torch.tensor([[0.9, 0.1, 0, 0], [0, 0.2, 1, 0.3]], dtype=D)


# --------------------------------------------------------------------------- golden values
def test_golden_ot_similarity_plan_and_gradient() -> None:
    s = F.normalize(A, dim=-1) @ F.normalize(B, dim=-1).T
    torch.testing.assert_close(
        s, torch.tensor([[0.993883735, 0], [0.110431526, 0.188144174], [0.637576713, 0.651750536]], dtype=D)
    )
    plan = sinkhorn_plan(s)
    expected_plan = [[0.333289851, 3.12513456e-05], [0.0637849607, 0.269555924], [0.102925188, 0.230412824]]
    torch.testing.assert_close(plan, torch.tensor(expected_plan, dtype=D), rtol=1e-7, atol=1e-9)
    b = B.clone().requires_grad_(True)
    value = ot_similarity(A, b)
    assert value.item() == pytest.approx(0.604804994, abs=1e-9)
    (grad,) = torch.autograd.grad(value, b)
    expected = [
        [-0.00964479152, 0.0868031237, 0.0656227030, 0],
        [0.125172467, 0.343164720, -0.0526330898, -0.0533328474],
    ]
    torch.testing.assert_close(grad, torch.tensor(expected, dtype=D), rtol=1e-7, atol=1e-10)


def test_golden_converged_sinkhorn_matches_pot() -> None:
    # POT's ot.sinkhorn(a, b, 1 - S, 0.1) run to convergence (the official loop stops earlier)
    value = ot_similarity(A, B, tol=0.0, n_iter=5000)
    assert value.item() == pytest.approx(0.604813191, abs=1e-8)


def test_golden_global_term_is_cosine() -> None:
    g_adv, g_t = torch.tensor([[0.3, -0.2, 0.5]], dtype=D), torch.tensor([[0.1, 0.4, 0.2]], dtype=D)
    assert ot_similarity(g_t, g_adv).item() == pytest.approx(0.176998081, abs=1e-9)
    assert global_cosine(g_adv, g_t).item() == pytest.approx(0.176998081, abs=1e-9)


def test_golden_dynamic_weights() -> None:
    dyn = DynamicEnsembleWeights(3)
    assert torch.equal(dyn(torch.tensor([0.60, 0.41, 0.50])), torch.ones(3))  # first call: ratio 1
    cur = torch.tensor([0.62, 0.40, 0.55])
    w = dyn(cur)
    assert dyn.last_ratio is not None
    torch.testing.assert_close(dyn.last_ratio, torch.tensor([1.03333332, 0.975609732, 1.09999998]))
    torch.testing.assert_close(w, torch.tensor([0.995734960, 0.939885007, 1.06438003]))
    assert (w * cur).sum().item() == pytest.approx(1.57871870, abs=1e-6)


# --------------------------------------------------------------------------- Sinkhorn / OT properties
def test_sinkhorn_marginals_and_cost_shift_invariance() -> None:
    g = torch.Generator().manual_seed(0)
    sim = torch.rand(4, 5, 7, generator=g, dtype=D) * 2 - 1
    plan = sinkhorn_plan(sim, eps=0.3, n_iter=5000, tol=1e-13)
    assert bool((plan >= 0).all())
    torch.testing.assert_close(plan.sum(-1), torch.full((4, 5), 1 / 5, dtype=D))
    torch.testing.assert_close(plan.sum(-2), torch.full((4, 7), 1 / 7, dtype=D))
    torch.testing.assert_close(sinkhorn_plan(sim + 0.7, eps=0.3, n_iter=5000, tol=1e-13), plan)


def test_batched_sinkhorn_equals_one_at_a_time() -> None:
    g = torch.Generator().manual_seed(1)
    sim = torch.rand(6, 4, 4, generator=g, dtype=D)
    batched = sinkhorn_plan(sim)
    for i in range(6):  # each matrix stops after its own number of iterations
        torch.testing.assert_close(batched[i], sinkhorn_plan(sim[i]))


def test_ot_similarity_identity_matching_and_symmetry() -> None:
    a = torch.eye(4, dtype=D)[:3] + 0.01
    assert ot_similarity(a, a, eps=0.01, n_iter=2000, tol=1e-13).item() == pytest.approx(1.0, abs=1e-3)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(5, 8, generator=g, dtype=D), torch.randn(5, 8, generator=g, dtype=D)
    kw = {"eps": 0.01, "n_iter": 5000, "tol": 1e-13}
    assert ot_similarity(x, y, **kw).item() == pytest.approx(ot_similarity(y, x, **kw).item(), abs=1e-6)


def test_ot_similarity_large_eps_is_mean_similarity() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(3, 6, generator=g, dtype=D), torch.randn(4, 6, generator=g, dtype=D)
    s = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T
    torch.testing.assert_close(sinkhorn_plan(s, eps=1e6), torch.full((3, 4), 1 / 12, dtype=D))
    assert ot_similarity(x, y, eps=1e6).item() == pytest.approx(s.mean().item(), abs=1e-6)


def test_ot_gradient_holds_the_plan_constant() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(3, 5, generator=g, dtype=D), torch.randn(4, 5, generator=g, dtype=D).requires_grad_(True)
    (grad,) = torch.autograd.grad(ot_similarity(x, y), y)
    s = F.normalize(x, dim=-1) @ F.normalize(y.detach(), dim=-1).T
    t = sinkhorn_plan(s)
    xh, yn = F.normalize(x, dim=-1), y.detach().norm(dim=-1, keepdim=True)
    yh = y.detach() / yn
    # d cos(a_j, b_k) / d b_k = (a^_j - S_jk b^_k) / |b_k|
    closed = ((t.T.unsqueeze(-1)) * (xh.unsqueeze(0) - s.T.unsqueeze(-1) * yh.unsqueeze(1))).sum(1) / yn
    torch.testing.assert_close(grad, closed)


# --------------------------------------------------------------------------- k-means
def test_kmeans_with_k_equal_n_returns_the_tokens() -> None:
    g = torch.Generator().manual_seed(5)
    tokens = torch.randn(3, 6, 4, generator=g, dtype=D)
    centres = batched_kmeans_centers(tokens, 6, generator=g)
    for b in range(3):
        key = lambda t: t[:, 0].argsort()  # noqa: E731
        torch.testing.assert_close(centres[b][key(centres[b])], tokens[b][key(tokens[b])])


def test_kmeans_centres_are_member_means_with_gradient() -> None:
    g = torch.Generator().manual_seed(6)
    blobs = torch.cat([torch.randn(2, 5, 3, generator=g, dtype=D) * 0.05 + c for c in (0.0, 3.0, -3.0)], dim=1)
    tokens = blobs.requires_grad_(True)
    centres = batched_kmeans_centers(tokens, 3, generator=g)
    (grad,) = torch.autograd.grad(centres.sum(), tokens)
    torch.testing.assert_close(grad, torch.full_like(grad, 1 / 5))  # 1 / |cluster| per coordinate
    lo, hi = tokens.detach().amin(1, keepdim=True), tokens.detach().amax(1, keepdim=True)
    assert bool((centres >= lo - 1e-12).all() and (centres <= hi + 1e-12).all())
    # the three blobs are recovered
    assert sorted(centres[0, :, 0].round().tolist()) == [-3.0, 0.0, 3.0]


def test_kmeans_bad_k() -> None:
    with pytest.raises(ValueError, match="k"):
        batched_kmeans_centers(torch.randn(2, 4, 3), 5)
    with pytest.raises(ValueError, match="batched_kmeans_centers: k must be"):
        batched_kmeans_centers(torch.randn(2, 4, 3), 0)


# --------------------------------------------------------------------------- dynamic weights
def test_dynamic_weights_sum_and_order() -> None:
    dyn = DynamicEnsembleWeights(4, temperature=0.5)
    dyn(torch.tensor([[1.0, 1.0, 1.0, 1.0]]))
    w = dyn(torch.tensor([[1.2, 1.0, 0.9, 1.1]]))
    assert w.sum().item() == pytest.approx(4.0)
    assert w[0].argsort().tolist() == [2, 1, 3, 0]


def test_dynamic_weights_lag() -> None:
    dyn = DynamicEnsembleWeights(2, lag=1)
    for v in ([1.0, 1.0], [2.0, 1.0], [4.0, 1.0]):
        dyn(torch.tensor(v))
    assert dyn.last_ratio is not None
    torch.testing.assert_close(dyn.last_ratio, torch.tensor([4.0, 1.0]))  # against two calls earlier


# --------------------------------------------------------------------------- loss and attack
class TinyConv(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _images(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 12, 12, generator=g), torch.rand(n, 1, 12, 12, generator=g)


def test_surrogate_output_layouts() -> None:
    x = torch.rand(2, 1, 8, 8)
    vit = TinyViT(8, 4, 1, dim=16, depth=1, heads=2, out_dim=3)
    g, t = global_local_features(ViTSurrogate(vit), x)
    assert g.shape == (2, 16) and t.shape == (2, 4, 16)
    g, t = global_local_features(ConvSurrogate(TinyConv(0)), x)
    assert g.shape == (2, 8) and t.shape == (2, 16, 8)
    torch.testing.assert_close(g, t.mean(1))
    g, t = global_local_features(TinyConv(0), x)  # a raw conv map
    assert t.shape == (2, 16, 8)
    g, t = global_local_features(nn.Flatten(), x)  # a global feature only: one token
    assert g.shape == (2, 64) and t.shape == (2, 1, 64)


def test_mattack_loss_is_mean_global_cosine() -> None:
    x, x_t = _images()
    encs = [TinyConv(0), TinyConv(1)]
    loss = FOALoss(encs, local_weight=0.0, dynamic_weighting=False)
    loss.set_target(x_t)
    total, per, w = loss(x)
    expected = torch.stack([global_cosine(*(global_local_features(e, z)[0] for z in (x, x_t))) for e in encs], -1)
    torch.testing.assert_close(per, expected)
    torch.testing.assert_close(total, expected.mean(-1))
    torch.testing.assert_close(w, torch.full_like(w, 0.5))


def test_foa_loss_adds_weighted_local_term_and_token_norm_switch() -> None:
    x, x_t = _images()
    encs = [TinyConv(0)]
    glob = FOALoss(encs, local_weight=0.0, dynamic_weighting=False)
    glob.set_target(x_t)
    foa = FOALoss(encs, n_clusters=4, local_weight=0.2, dynamic_weighting=False, generator=torch.Generator())
    foa.set_target(x_t)
    local = (foa(x)[1] - glob(x)[1]) / 0.2
    assert bool((local.abs() <= 1 + 1e-6).all()) and bool((local != 0).all())
    off = FOALoss(encs, n_clusters=4, official_token_norm=True, dynamic_weighting=False, generator=torch.Generator())
    off.set_target(x_t)
    assert not torch.allclose(off(x)[1], foa(x)[1])


def test_attack_stays_in_budget_and_range() -> None:
    x, x_t = _images()
    for update in ("ifgsm", "mifgsm"):
        adv = foa_attack(x, x_t, [TinyConv(0), TinyConv(1)], eps=8 / 255, alpha=2 / 255, steps=4, n_clusters=3,
                         update=update)  # fmt: skip
        assert (adv - x).abs().max().item() <= 8 / 255 + 1e-6
        assert adv.min().item() >= 0 and adv.max().item() <= 1
        assert not torch.equal(adv, x)


def test_zero_steps_returns_x_and_seed_determinism() -> None:
    x, x_t = _images()
    assert torch.equal(foa_attack(x, x_t, [TinyConv(0)], steps=0), x)
    kw = {"eps": 0.1, "alpha": 0.02, "steps": 3, "n_clusters": 3, "seed": 7}
    torch.testing.assert_close(foa_attack(x, x_t, [TinyConv(0)], **kw), foa_attack(x, x_t, [TinyConv(0)], **kw))


def test_white_box_similarity_increases() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 1, 12, 12, generator=g) * 0.3  # dim, unstructured sources
    x_t = (torch.rand(6, 1, 12, 12, generator=g) > 0.5).float()  # binary targets
    history: list[float] = []
    foa_attack(x, x_t, [TinyConv(0), TinyConv(1)], eps=0.3, alpha=0.02, steps=16, n_clusters=3, history=history,
               dynamic_weighting=False)  # fmt: skip
    assert len(history) == 16
    assert sum(history[-4:]) / 4 > sum(history[:4]) / 4 + 0.05


def test_baselines_and_official_double_call() -> None:
    x, x_t = _images()
    for fn in (m_attack, attackvlm_like):
        adv = fn(x, x_t, [TinyConv(0)], eps=0.1, alpha=0.05, steps=2)
        assert (adv - x).abs().max().item() <= 0.1 + 1e-6
    calls = {"n": 0}
    loss = FOALoss([TinyConv(0), TinyConv(1)], n_clusters=3, ratio_reference="official_double_call")
    inner = loss.weighting.__call__

    class Counting(DynamicEnsembleWeights):
        def __call__(self, losses: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            return inner(losses)

    loss.weighting = Counting(2)
    foa_attack(x, x_t, loss, eps=0.1, alpha=0.05, steps=3)
    assert calls["n"] == 6  # two state updates per step (uncropped, then crop)
    calls["n"] = 0
    loss.ratio_reference = "previous_step"
    foa_attack(x, x_t, loss, eps=0.1, alpha=0.05, steps=3)
    assert calls["n"] == 3


def test_random_resized_crop() -> None:
    x = torch.rand(3, 2, 10, 10, requires_grad=True)
    torch.testing.assert_close(random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0)), x)
    out = random_resized_crop(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.allclose(out, x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("eps", [0.0, -0.1])
def test_budget_must_be_positive(eps: float) -> None:
    x, x_t = _images()
    with pytest.raises(ValueError, match="foa_attack: eps must be a float in \\(0, inf\\)"):
        foa_attack(x, x_t, [TinyConv(0)], eps=eps)


def test_bad_attack_inputs() -> None:
    x, x_t = _images()
    with pytest.raises(ValueError, match="alpha"):
        foa_attack(x, x_t, [TinyConv(0)], alpha=0.0)
    with pytest.raises(ValueError, match="steps"):
        foa_attack(x, x_t, [TinyConv(0)], steps=-1)
    with pytest.raises(ValueError, match="x must hold images in"):
        foa_attack(x * 2, x_t, [TinyConv(0)])
    with pytest.raises(ValueError, match="x_t must hold images in"):
        foa_attack(x, x_t.clone().fill_(float("nan")), [TinyConv(0)])
    with pytest.raises(ValueError, match="same shape"):
        foa_attack(x, x_t[:2], [TinyConv(0)])
    with pytest.raises(ValueError, match="surrogates"):
        foa_attack(x, x_t, [])
    with pytest.raises(ValueError, match="ratio_reference"):
        FOALoss([TinyConv(0)], ratio_reference="next")
    with pytest.raises(RuntimeError, match="set_target"):
        FOALoss([TinyConv(0)])(x)


# --------------------------------------------------------------------------- evaluation
def test_evaluation_helpers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(5, 1, 2, 2)
    pred = model(x).argmax(-1)
    assert targeted_transfer_success([model, model], x, pred).tolist() == [1.0, 1.0]
    assert targeted_transfer_success([model], x, [(pred + 1) % 3]).tolist() == [0.0]
    with pytest.raises(ValueError, match="targets"):
        targeted_transfer_success([model], x, pred[:2])
    d = torch.zeros_like(x)
    d[:, 0, 0, 0] = 0.1
    d[:, 0, 1, 1] = -0.2
    norms = perturbation_norms(x + d, x)
    assert norms["linf"] == pytest.approx(0.2) and norms["l1"] == pytest.approx(0.3)
    assert norms["l2"] == pytest.approx(0.05**0.5)
    assert embedding_match_rate(nn.Flatten(), x, x, x + 1) == 1.0
    defence = InputSmoothingDefence(3, 1)
    assert set(defence(torch.rand(2, 1, 6, 6)).unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="kernel_size"):
        InputSmoothingDefence(2)
