"""DeGLA's loss (paper 04): golden values of the released code, the paper's invariants, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses import (
    DeGLALoss,
    degla_loss,
    feature_distill_loss,
    image_grounded_contrast,
    negclip_base_loss,
    text_grounded_contrast,
)
from paperzoo.losses.degla import _reference_degla_loss

D64 = torch.float64


def mk(n: int, off: float) -> torch.Tensor:
    return F.normalize(torch.sin(0.7 * torch.arange(n * 4, dtype=D64) + off).reshape(n, 4), dim=1)


def golden_inputs() -> tuple[torch.Tensor, ...]:
    return mk(3, 0.0), mk(9, 1.0), mk(3, 2.0), mk(9, 3.0)


# torch.manual_seed(0); randn (3,4), (9,4), (3,4), (9,4) float64, rows normalised (recorded, not regenerated)
RANDOM_CASE = [
    [[0.56153266089081, -0.1069242896544219, -0.7939419137346801, 0.2071340258144413],
     [-0.5424487142211165, -0.6995395523515059, 0.20174317330579317, 0.4191580837347895],
     [-0.6956158881700785, -0.3900857950366349, -0.5770242123307416, 0.17605302331989772]],
    [[0.15041397676323323, -0.4035769781525752, 0.5763311020734405, -0.6945096968958165],
     [0.09626957035384467, -0.397117880593656, -0.7907086749665501, -0.455861108309682],
     [0.5292392146601084, -0.7282883976964591, 0.4251723024225413, -0.09343648484072495],
     [0.4920324479275643, -0.11808485467522559, -0.37613794553504093, -0.7761960340090756],
     [-0.7532011913356188, -0.36132260360858615, 0.263304041512676, -0.4824986250915208],
     [-0.8648818663380613, -0.031273403542760134, 0.4664154469549736, -0.18291517802587012],
     [-0.1849462686944293, 0.8919736736938839, 0.2847147585357251, 0.2985219412455111],
     [-0.5510574616422415, -0.819940493615063, 0.01898524089653909, -0.15385974628471502],
     [-0.15699180787574812, 0.506071408244231, 0.848071456542978, -0.00448403999504714]],
    [[-0.22094342084107146, -0.16194379217224303, -0.7567218159808485, 0.5935741791744022],
     [0.5465138779198982, 0.45891950751906013, 0.16988017573232644, -0.6796000240969478],
     [-0.7509938284648765, 0.49863730386036526, 0.43166942184428625, 0.0321032560833491]],
    [[-0.41089512564297603, -0.4654858047186931, -0.7008610345937178, -0.35111532509484256],
     [-0.5693085577610785, 0.264877589855011, -0.7094647777589906, 0.3199802455964861],
     [0.41121558684599135, -0.07129377447492637, -0.8169169369913902, 0.3980774508969707],
     [-0.14577556407200992, 0.8233170451997806, 0.351622074454537, -0.4210230929049828],
     [0.7637709673033329, 0.18973242717279465, -0.47316807121903703, -0.3959387477407428],
     [-0.3568935152322023, -0.0900807538837766, 0.916546640016465, 0.15638009220952842],
     [0.6720082117754758, 0.5179152938218834, -0.3827396911648396, -0.3656214443092234],
     [0.8149316071197202, -0.4063915341742365, 0.38971083320441124, -0.1373239351020205],
     [0.20640296187365945, -0.3494176938295125, 0.8590473887686073, -0.3119978788685639]],
]  # fmt: skip


@pytest.mark.parametrize(
    ("s", "base", "clip", "igc", "tgc_ref", "tgc_own", "distill", "total"),
    [
        (10.0, 2.74188950, 1.23283326, 2.18805270, 0.927921028, 7.41793134, 33.3719787, 3.22034676),
        (100.0, 24.4641452, 12.2307757, 20.9813746, 0.927921028, 7.41793134, 33.3719787, 26.8219346),
    ],
)
def test_golden_values_of_the_released_code(s, base, clip, igc, tgc_ref, tgc_own, distill, total) -> None:
    v, t, vs, ts = golden_inputs()
    ref = DeGLALoss(2, reference_tgc_indexing=True)(v, t, s, vs, ts)
    own = DeGLALoss(2)(v, t, s, vs, ts)
    approx = lambda x: pytest.approx(x, rel=2e-8)  # noqa: E731
    assert float(ref["base"]) == approx(base) and float(ref["igc"]) == approx(igc)
    assert float(ref["tgc"]) == approx(tgc_ref) and float(own["tgc"]) == approx(tgc_own)
    assert float(ref["distill"]) == approx(distill) and float(ref["loss"]) == approx(total)
    assert float(negclip_base_loss(v, t, s, include_negatives=False)) == approx(clip)
    for key, value in _reference_degla_loss(v, t, s, vs, ts, 2).items():
        torch.testing.assert_close(ref[key], value)


def test_golden_random_case() -> None:
    v, t, vs, ts = (torch.tensor(x, dtype=D64) for x in RANDOM_CASE)
    ref = degla_loss(v, t, 100.0, vs, ts, reference_tgc_indexing=True)
    approx = lambda x: pytest.approx(x, rel=2e-8)  # noqa: E731
    assert float(ref["loss"]) == approx(90.8435846) and float(ref["base"]) == approx(82.0156237)
    assert float(ref["igc"]) == pytest.approx(84.834371, rel=2e-8) and float(ref["tgc"]) == approx(2.31034068)
    assert float(ref["distill"]) == approx(22.6979483)
    assert float(text_grounded_contrast(t, ts, 2)) == approx(3.4601838)


def _random(n: int, k: int, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(
        F.normalize(torch.randn(r, d, generator=g, dtype=D64), dim=1) for r in (n, n * (1 + k), n, n * (1 + k))
    )


def test_igc_is_a_gather_of_own_negatives_and_matches_the_masked_matrix() -> None:
    n, k = 4, 3
    v, t, vs, ts = _random(n, k)
    z = torch.stack([torch.cat([(v[i] * t[i]).sum().view(1), t[n + i * k : n + i * k + k] @ v[i]]) for i in range(n)])
    want = F.cross_entropy(7.0 * z, torch.zeros(n, dtype=torch.long))
    torch.testing.assert_close(image_grounded_contrast(v, t, 7.0), want)
    for ref in (True, False):
        naive = _reference_degla_loss(v, t, 7.0, vs, ts, k, reference_tgc_indexing=ref)
        ours = DeGLALoss(k, reference_tgc_indexing=ref)(v, t, 7.0, vs, ts)
        for key in ours:
            torch.testing.assert_close(ours[key], naive[key])


@pytest.mark.parametrize(("n", "k"), [(1, 3), (4, 1)])
def test_tgc_indexings_agree_when_n_or_k_is_one(n: int, k: int) -> None:
    _, t, _, ts = _random(n, k, seed=1)
    own = text_grounded_contrast(t, ts, k)
    torch.testing.assert_close(own, text_grounded_contrast(t, ts, k, reference_indexing=True))
    if n == 4:  # and they differ in general
        _, t2, _, ts2 = _random(4, 3, seed=1)
        assert not torch.allclose(
            text_grounded_contrast(t2, ts2, 3), text_grounded_contrast(t2, ts2, 3, reference_indexing=True)
        )


def test_distillation_closed_form_and_teacher_gets_no_gradient() -> None:
    v, t, vs, ts = _random(3, 2, seed=2)
    assert float(feature_distill_loss(v, t, v, t)) == 0.0
    cos = torch.cat([(v * vs).sum(1), (t * ts).sum(1)])
    torch.testing.assert_close(feature_distill_loss(v, t, vs, ts), 2 * (1 - cos).sum())
    vs_, ts_ = vs.clone().requires_grad_(True), ts.clone().requires_grad_(True)
    vv = v.clone().requires_grad_(True)
    out = DeGLALoss(2)(vv, t, 10.0, vs_, ts_)
    out["loss"].backward()
    assert vs_.grad is None and ts_.grad is None and vv.grad is not None
    mean = feature_distill_loss(v, t, vs, ts, reduction="mean")
    torch.testing.assert_close(mean, F.mse_loss(v, vs) + F.mse_loss(t, ts))


def test_base_reduces_to_clip() -> None:
    v, t, _, _ = _random(5, 0, seed=3)
    target = torch.arange(5)
    clip = (F.cross_entropy(9.0 * v @ t.T, target) + F.cross_entropy(9.0 * t @ v.T, target)) / 2
    torch.testing.assert_close(negclip_base_loss(v, t, 9.0), clip)
    v, t, _, _ = _random(5, 3, seed=3)
    clip = (F.cross_entropy(9.0 * v @ t[:5].T, target) + F.cross_entropy(9.0 * t[:5] @ v.T, target)) / 2
    torch.testing.assert_close(negclip_base_loss(v, t, 9.0, include_negatives=False), clip)
    assert float(negclip_base_loss(v, t, 9.0)) > float(clip)  # the negatives only add distractors
    # without negatives the local terms vanish
    v, t, vs, ts = _random(4, 0, seed=4)
    out = DeGLALoss(0)(v, t, 9.0, vs, ts)
    assert float(out["igc"]) == 0.0 and float(out["tgc"]) == 0.0


def test_batch_permutation_invariance() -> None:
    n, k = 5, 3
    v, t, vs, ts = _random(n, k, seed=5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    rows = torch.cat([perm, (n + perm[:, None] * k + torch.arange(k)).reshape(-1)])
    a = DeGLALoss(k)(v, t, 20.0, vs, ts)
    b = DeGLALoss(k)(v[perm], t[rows], 20.0, vs[perm], ts[rows])
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_igc_gradient_signs_and_locality() -> None:
    n, k = 3, 2
    _, t, _, _ = _random(n, k, seed=6)
    v = _random(n, k, seed=7)[0]
    # gradient w.r.t. the logits: build IGC from an explicit similarity matrix
    sim = (v @ t.T).clone().requires_grad_(True)
    s = 10.0
    cols = torch.cat([torch.arange(n)[:, None], n + torch.arange(n)[:, None] * k + torch.arange(k)], 1)
    z = s * sim.gather(1, cols)
    loss = (torch.logsumexp(z, 1) - z[:, 0]).mean()
    loss.backward()
    g = sim.grad
    own = torch.zeros_like(g, dtype=torch.bool)
    own.scatter_(1, cols, True)
    assert (g[torch.arange(n), torch.arange(n)] < 0).all()
    assert (g.gather(1, cols[:, 1:]) > 0).all()
    assert (g[~own] == 0).all()  # other samples' negatives and positives get exactly zero
    torch.testing.assert_close(loss, image_grounded_contrast(v, t, s))
    # raising v_i . t_i lowers L_base and L_IGC
    t2 = t.clone()
    t2[0] = F.normalize(t[0] + 0.5 * v[0], dim=0)
    assert float(image_grounded_contrast(v, t2, s)) < float(image_grounded_contrast(v, t, s))
    assert float(negclip_base_loss(v, t2, s)) < float(negclip_base_loss(v, t, s))


def test_gradcheck_all_terms() -> None:
    v, t, vs, ts = (x.clone().requires_grad_(True) for x in _random(3, 2, d=4, seed=8))
    for ref in (False, True):
        loss = DeGLALoss(2, reference_tgc_indexing=ref)

        def f(a: torch.Tensor, b: torch.Tensor, s: torch.Tensor, loss: DeGLALoss = loss) -> torch.Tensor:
            return loss(a, b, s, vs.detach(), ts.detach())["loss"]

        assert torch.autograd.gradcheck(f, (v, t, torch.tensor(12.0, dtype=D64, requires_grad=True)))


def test_weights_and_negclip_special_case() -> None:
    v, t, vs, ts = _random(4, 2, seed=9)
    negclip = DeGLALoss(2, w_igc=0, w_tgc=0, w_distill=0)
    torch.testing.assert_close(negclip(v, t, 5.0)["loss"], negclip_base_loss(v, t, 5.0))
    out = DeGLALoss(2, w_igc=0.3, w_tgc=0.2, w_distill=0.01)(v, t, 5.0, vs, ts)
    torch.testing.assert_close(out["loss"], out["base"] + 0.2 * out["tgc"] + 0.3 * out["igc"] + 0.01 * out["distill"])


def test_bad_input_names_the_argument() -> None:
    v, t, vs, ts = _random(3, 2, seed=10)
    loss = DeGLALoss(2)
    with pytest.raises(ValueError, match="text_emb must have"):
        loss(v, t[:7], 5.0, vs, ts[:7])
    with pytest.raises(ValueError, match="num_negatives"):
        DeGLALoss(3)(v, t, 5.0, vs, ts)
    with pytest.raises(ValueError, match="image_emb"):
        loss(v[:0], t, 5.0, vs, ts)
    bad = v.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="image_emb contains NaN"):
        loss(bad, t, 5.0, vs, ts)
    with pytest.raises(ValueError, match="teacher_text_emb"):
        loss(v, t, 5.0, vs, ts[:3])
    with pytest.raises(ValueError, match="teacher_image_emb and teacher_text_emb are required"):
        loss(v, t, 5.0)
    with pytest.raises(ValueError, match="logit_scale"):
        loss(v, t, -1.0, vs, ts)
    with pytest.raises(ValueError, match="w_igc"):
        DeGLALoss(w_igc=-0.1)
    with pytest.raises(ValueError, match="distill_reduction"):
        DeGLALoss(distill_reduction="max")
    with pytest.raises(ValueError, match="text_emb must have 4 columns"):
        loss(v[:, :4], t, 5.0, vs[:, :4], ts)
