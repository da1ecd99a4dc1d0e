"""Tests of the DiST tools (paper 41: the Disrupted Structure Testbench, an odd-one-out test of
global-structure sensitivity; DiSTinguish training; the cue-conflict shape bias it is compared
with): the disruptors' invariants, the built-in local control at chance, the odd-one-out rule and
its golden values, gradients and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.analysis.shape_bias import (
    DiSTinguishLoss,
    DiSTinguishObjective,
    FramedTileShuffle,
    GramTextureDisruptor,
    TileShuffle,
    dist_accuracy,
    dist_scores,
    frame_tiles,
    histogram_match,
    local_bag_control,
    make_dist_triplets,
    mutual_derangements,
    odd_one_out,
    odd_one_out_loss,
    penultimate_features,
    phase_amplitude_swap,
    shape_bias,
    shuffle_tiles,
    triplet_similarities,
)

F64 = torch.float64


def images(n: int = 16, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Random object-like images in [0, 1]: a bright random blob on a dark background."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.rand(n, 2, generator=gen) * size * 0.5 + size * 0.25
    d2 = (yy[None] - centre[:, :1, None]) ** 2 + (xx[None] - centre[:, 1:, None]) ** 2
    return (x * (d2 < (size / 3) ** 2)[:, None]).float()


def tiles_of(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, T, tile pixels) tiles in row-major order."""
    N, C, H, W = x.shape
    th, tw = H // grid, W // grid
    return x.reshape(N, C, grid, th, grid, tw).permute(0, 2, 4, 1, 3, 5).reshape(N, grid * grid, -1)


def sorted_rows(m: torch.Tensor) -> torch.Tensor:
    """Rows of each (N, R, D) matrix sorted lexicographically (a canonical form of the multiset)."""
    out = m.clone()
    for d in reversed(range(m.shape[-1])):  # stable sorts, least significant column first
        idx = out[..., d].argsort(dim=1, stable=True)
        out = out.gather(1, idx[..., None].expand_as(out))
    return out


def patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """All k x k patches with zero padding k // 2: (N, H*W, k*k)."""
    return F.unfold(x, k, padding=k // 2).transpose(1, 2)


# --------------------------------------------------------------------------- disruptor invariants
@pytest.mark.parametrize("grid", [2, 4, 7])
def test_mutual_derangements(grid: int) -> None:
    T = grid * grid
    p1, p2 = mutual_derangements(500, T, torch.Generator().manual_seed(grid))
    ident = torch.arange(T)
    for p in (p1, p2):
        assert (p.sort(dim=1).values == ident).all()  # permutations
        assert not (p == ident).any()  # no tile stays in place
    assert not (p1 == p2).any()  # the two disruptions never share a tile position
    assert len({tuple(r) for r in p1.tolist()}) > 1  # not a fixed pattern
    q1, _ = mutual_derangements(500, T, torch.Generator().manual_seed(grid))
    assert torch.equal(p1, q1)


def test_framed_tile_shuffle_keeps_local_content_and_destroys_arrangement() -> None:
    x = images(12)
    d = FramedTileShuffle(grid=4, frame=1)
    ref, d1, d2 = d.triplet(x, torch.Generator().manual_seed(0))
    assert torch.equal(ref, frame_tiles(x, 4, 1))
    # the frames: every tile border (the image border included) is blank
    assert (ref[..., 0, :] == 0).all() and (ref[..., 6, :] == 0).all() and (ref[..., :, 7] == 0).all()
    assert torch.equal(ref[..., 1:6, 1:6], x[..., 1:6, 1:6])
    t0, t1, t2 = tiles_of(ref, 4), tiles_of(d1, 4), tiles_of(d2, 4)
    assert torch.equal(sorted_rows(t0), sorted_rows(t1)) and torch.equal(sorted_rows(t0), sorted_rows(t2))
    # same multiset of 3x3 patches (receptive field 2 * frame + 1), and of pixel values
    p0 = sorted_rows(patches(ref, 3))
    assert torch.equal(p0, sorted_rows(patches(d1, 3))) and torch.equal(p0, sorted_rows(patches(d2, 3)))
    assert torch.equal(ref.flatten(1).sort().values, d1.flatten(1).sort().values)
    # ... but not of 5x5 patches: those see the neighbouring tiles
    assert not torch.equal(sorted_rows(patches(ref, 5)), sorted_rows(patches(d1, 5)))
    # no tile in place, no shared position (on noise images, whose tiles are all distinct)
    r0, r1, r2 = (tiles_of(t, 4) for t in d.triplet(torch.rand(12, 1, 28, 28), torch.Generator().manual_seed(0)))
    assert not (r0 == r1).all(dim=2).any() and not (r0 == r2).all(dim=2).any() and not (r1 == r2).all(dim=2).any()


def test_shuffle_tiles_inverse_and_single_disruption() -> None:
    x = images(5)
    perm = mutual_derangements(5, 16, torch.Generator().manual_seed(3))[0]
    y = shuffle_tiles(x, perm, 4)
    assert torch.equal(shuffle_tiles(y, perm.argsort(dim=1), 4), x)
    assert torch.equal(shuffle_tiles(x, torch.arange(16), 4), x)
    d = FramedTileShuffle(grid=4)(x, torch.Generator().manual_seed(1))
    assert d.shape == x.shape and torch.equal(d.flatten(1).sort().values, frame_tiles(x, 4, 1).flatten(1).sort().values)
    u = TileShuffle(grid=4)
    assert u.frame == 0 and torch.equal(u.reference(x), x)


# --------------------------------------------------------------------------- the control and the score
def test_local_bag_control_scores_exactly_chance() -> None:
    x = images(64)
    trip = make_dist_triplets(x, FramedTileShuffle(grid=4, frame=1), seed=0)
    res = dist_accuracy(local_bag_control(3), trip)
    assert res.accuracy == pytest.approx(1 / 3, abs=1e-12)
    assert res.ci[0] == pytest.approx(1 / 3) and res.ci[1] == pytest.approx(1 / 3)
    # 5x5 sees relations between tiles: above chance
    assert dist_accuracy(local_bag_control(5), trip).accuracy > 0.6
    # unframed tiles: the seams give the local control away
    assert dist_accuracy(local_bag_control(3), make_dist_triplets(x, TileShuffle(grid=4), seed=0)).accuracy > 0.8


def test_identity_and_constant_features_give_chance() -> None:
    x = images(20)
    assert dist_accuracy(lambda im: im.flatten(1), (x, x, x)).accuracy == pytest.approx(1 / 3)
    trip = make_dist_triplets(x, FramedTileShuffle(), seed=1)
    assert dist_accuracy(lambda im: torch.ones(len(im), 5), trip).accuracy == pytest.approx(1 / 3)
    assert dist_accuracy(lambda im: torch.ones(len(im), 5), trip, similarity="euclidean").accuracy == pytest.approx(
        1 / 3
    )


def test_golden_values() -> None:
    t = torch.tensor
    fx, f1, f2 = t([[1.0, 0.0]]), t([[0.6, 0.8]]), t([[0.8, 0.6]])
    s = triplet_similarities(fx, f1, f2)  # s(x,d1), s(x,d2), s(d1,d2)
    assert s[0].tolist() == pytest.approx([0.6, 0.8, 0.96])
    assert odd_one_out(fx, f1, f2)[0].tolist() == [1.0, 0.0, 0.0]  # sums 1.4, 1.56, 1.76
    assert odd_one_out(fx, f1, t([[0.0, 1.0]]))[0, 0] == 1.0  # sums 0.6, 1.4, 0.8
    assert odd_one_out(t([[0.6, 0.8]]), t([[1.0, 0.0]]), f2)[0].tolist() == [0.0, 1.0, 0.0]  # d1 is odd
    equal = t([[0.3, 0.4]])
    assert odd_one_out(equal, equal, equal)[0].tolist() == pytest.approx([1 / 3] * 3)
    # two tied lowest: half credit each
    assert odd_one_out(t([[1.0, 0.0]]), t([[0.0, 1.0]]), t([[1.0, 1.0]]))[0].tolist() == pytest.approx([0.5, 0.5, 0.0])
    res = dist_scores(fx, f1, f2, return_margins=True, bootstrap=0)
    assert res.accuracy == 1.0 and res.margin == pytest.approx(0.96 - 0.8) and res.margins is not None


def test_closed_form_and_invariances() -> None:
    gen = torch.Generator().manual_seed(0)
    fx, f1, f2 = (torch.randn(400, 6, generator=gen) for _ in range(3))
    s = triplet_similarities(fx, f1, f2)
    correct = (s[:, 2] > s[:, :2].max(dim=1).values).double()
    credit = odd_one_out(fx, f1, f2)
    assert torch.equal(credit[:, 0], correct)
    assert torch.allclose(credit.sum(dim=1), torch.ones(400, dtype=F64))
    assert torch.equal(odd_one_out(fx, f2, f1)[:, 0], credit[:, 0])  # order of d1, d2
    scale = torch.rand(400, 1, generator=gen) + 0.1
    assert torch.equal(odd_one_out(fx * scale, f1 * 3.0, f2 * scale)[:, 0], credit[:, 0])  # cosine: per-vector scale
    a = dist_scores(fx, f1, f2, bootstrap=500, seed=1)
    assert a.ci[0] <= a.accuracy <= a.ci[1] and a.ci == dist_scores(fx, f1, f2, bootstrap=500, seed=1).ci
    e = odd_one_out(fx, f1, f2, similarity="euclidean")[:, 0]
    d = torch.stack([(fx - f1).norm(dim=1), (fx - f2).norm(dim=1), (f1 - f2).norm(dim=1)], dim=1)
    assert torch.equal(e, (d[:, 2] < d[:, :2].min(dim=1).values).double())


# --------------------------------------------------------------------------- Gram synthesis
def test_gram_synthesis_matches_statistics() -> None:
    x = images(3, seed=5)
    g = GramTextureDisruptor(iters=100, hist_match=False, seed=0)
    y = g.synthesize(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and (y > 0).all() and (y < 1).all()
    assert float(g.gram_error(y, x).max()) < 0.05
    matched = histogram_match(y, x)
    assert torch.equal(matched.flatten(1).sort().values, x.flatten(1).sort().values)
    in_y_order = matched.flatten(1).gather(1, y.flatten(1).argsort())
    assert (in_y_order.diff(dim=1) >= 0).all()  # y's rank order is kept
    assert float(g.gram_error(torch.rand_like(x), x).min()) > 0.1  # a random image does not match


def test_triplet_cache_round_trip() -> None:
    x = images(4)
    g = GramTextureDisruptor(iters=3, max_eval=4)
    a = make_dist_triplets(x, g, seed=2, cache_key="test-cache")
    b = make_dist_triplets(x, g, seed=2, cache_key="test-cache")
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="cache_key"):
        make_dist_triplets(x, g, seed=2, cache_key="a/b")


# --------------------------------------------------------------------------- models and DiSTinguish
class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.feat = nn.Linear(4 * 16, 8)
        self.head = nn.Linear(8, 3)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.feat(F.max_pool2d(F.relu(self.conv(x)), 7).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(x))


def test_penultimate_features_is_the_input_of_the_last_linear() -> None:
    torch.manual_seed(0)
    net, x = TinyNet().train(), images(10)
    f = penultimate_features(net, batch_size=3)(x)
    with torch.no_grad():
        assert torch.allclose(f, net.penultimate(x))
        assert torch.allclose(
            penultimate_features(net, layer="feat")(x), F.max_pool2d(F.relu(net.conv(x)), 7).flatten(1)
        )
    assert net.training  # mode restored
    with pytest.raises(ValueError, match="no nn.Linear"):
        penultimate_features(nn.Conv2d(1, 1, 3))(x)


def test_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    fx, f1, f2 = (torch.randn(5, 4, dtype=F64, generator=gen, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda a, b, c: odd_one_out_loss(a, b, c, 0.5), (fx, f1, f2))
    assert torch.autograd.gradcheck(lambda a, b, c: triplet_similarities(a, b, c, "euclidean"), (fx, f1, f2))
    loss = DiSTinguishLoss(4).double()
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b), (fx, f1))
    # the soft odd-one-out loss is low when the original is clearly odd
    far = torch.tensor([[1.0, 0.0]])
    near = torch.tensor([[0.0, 1.0]])
    assert float(odd_one_out_loss(far, near, near, 0.1)) < 1e-3 < 1.0 < float(odd_one_out_loss(near, far, near, 0.1))


def test_distinguish_objective_is_ce_plus_aux_and_trains_the_head() -> None:
    torch.manual_seed(0)
    net, x, y = TinyNet(), images(8), torch.randint(0, 3, (8,))
    loss = DiSTinguishLoss(8, weight=0.5)
    obj = DiSTinguishObjective(loss, [FramedTileShuffle(grid=4), FramedTileShuffle(grid=2)], fraction=0.5, seed=3)
    total = obj(net, (x, y))
    total.backward()
    assert loss.head is not None and loss.head.weight.grad is not None and net.conv.weight.grad is not None
    assert float(total.detach()) == pytest.approx(obj.last_terms["ce"] + obj.last_terms["aux"], rel=1e-5)
    ooo = DiSTinguishObjective(DiSTinguishLoss(mode="odd_one_out"), [FramedTileShuffle()], seed=0)
    assert torch.isfinite(ooo(net, (x, y)))
    with pytest.raises(ValueError, match="feature_dim"):
        DiSTinguishLoss(mode="binary")
    with pytest.raises(ValueError, match="mode must be"):
        DiSTinguishLoss(4, mode="triplet")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- cue conflict
def test_phase_amplitude_swap_and_shape_bias() -> None:
    x = images(6, seed=2)
    assert torch.allclose(phase_amplitude_swap(x, x), x, atol=1e-5)
    other = images(6, seed=3)
    out = phase_amplitude_swap(x, other, clip=False)
    assert torch.allclose(torch.fft.fft2(out).abs(), torch.fft.fft2(other).abs(), atol=1e-3)
    pred, s, t = torch.tensor([0, 1, 2, 2, 5]), torch.tensor([0, 1, 1, 3, 5]), torch.tensor([1, 2, 2, 4, 5])
    sb = shape_bias(pred, s, t)  # conflicts: rows 0-3; shape 2, texture 1, neither 1 (row 4 has no conflict)
    assert sb["shape_bias"] == pytest.approx(2 / 3) and sb["n"] == 4 and sb["texture_fraction"] == 0.25


# --------------------------------------------------------------------------- bad inputs
def test_bad_inputs() -> None:
    x = images(4)
    with pytest.raises(ValueError, match="grid must be"):
        FramedTileShuffle(grid=1)
    with pytest.raises(ValueError, match="frame must be"):
        FramedTileShuffle(frame=-1)
    with pytest.raises(ValueError, match="not divisible"):
        FramedTileShuffle(grid=5).triplet(x)
    with pytest.raises(ValueError, match="no interior"):
        FramedTileShuffle(grid=7, frame=2).triplet(x)
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        FramedTileShuffle().triplet(x[0])
    with pytest.raises(ValueError, match="NaN"):
        FramedTileShuffle().triplet(torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="empty"):
        FramedTileShuffle().triplet(x[:0])
    with pytest.raises(TypeError, match="floating"):
        FramedTileShuffle().triplet(x.long())
    with pytest.raises(ValueError, match="admit no"):
        mutual_derangements(3, 2)
    with pytest.raises(ValueError, match="permutation"):
        shuffle_tiles(x, torch.zeros(16, dtype=torch.long), 4)
    f = torch.randn(5, 3)
    with pytest.raises(ValueError, match="same shape"):
        odd_one_out(f, f, torch.randn(5, 4))
    with pytest.raises(ValueError, match="similarity must be"):
        odd_one_out(f, f, f, similarity="dot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty batch"):
        odd_one_out(f[:0], f[:0], f[:0])
    with pytest.raises(ValueError, match="NaN"):
        dist_scores(f, f, torch.full_like(f, float("nan")))
    with pytest.raises(ValueError, match="triplets must be"):
        dist_accuracy(lambda im: im.flatten(1), (x, x))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temperature must be"):
        odd_one_out_loss(f, f, f, temperature=0.0)
    with pytest.raises(ValueError, match="no cue-conflict"):
        shape_bias(torch.tensor([1]), torch.tensor([1]), torch.tensor([1]))
    with pytest.raises(ValueError, match="same shape"):
        phase_amplitude_swap(x, x[:2])


# --------------------------------------------------------------------------- naive references (the card's speed ratio)
def naive_credit(fx: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, tol: float = 1e-6) -> list[float]:
    """The odd-one-out rule written out one triplet at a time (the reference of the speed comparison)."""

    def cos(u: list[float], v: list[float]) -> float:
        return sum(p * q for p, q in zip(u, v)) / (math.sqrt(sum(p * p for p in u)) * math.sqrt(sum(q * q for q in v)))

    out = []
    for a, b, c in zip(fx.tolist(), f1.tolist(), f2.tolist()):
        sums = [cos(a, b) + cos(a, c), cos(a, b) + cos(b, c), cos(a, c) + cos(b, c)]
        low, scale = min(sums), max(1.0, max(abs(v) for v in sums))
        tied = [v - low <= tol * scale for v in sums]
        out.append(tied[0] / sum(tied))
    return out


def naive_tile_shuffle(x: np.ndarray, perm: np.ndarray, grid: int) -> np.ndarray:
    """Tile shuffling with loops over images and tiles (the reference of the speed comparison)."""
    out = np.empty_like(x)
    th, tw = x.shape[2] // grid, x.shape[3] // grid
    for n in range(x.shape[0]):
        for i, j in enumerate(perm[n]):
            r, c, rs, cs = divmod(i, grid) + divmod(int(j), grid)
            out[n, :, r * th : (r + 1) * th, c * tw : (c + 1) * tw] = x[
                n, :, rs * th : (rs + 1) * th, cs * tw : (cs + 1) * tw
            ]
    return out


def test_vectorised_versions_agree_with_the_naive_references() -> None:
    gen = torch.Generator().manual_seed(4)
    fx, f1, f2 = (torch.randn(300, 8, dtype=F64, generator=gen) for _ in range(3))
    fx[:20] = f1[:20] = f2[:20]  # some ties
    assert odd_one_out(fx, f1, f2)[:, 0].tolist() == pytest.approx(naive_credit(fx, f1, f2), abs=1e-12)
    x = images(20)
    perm = mutual_derangements(20, 16, gen)[0]
    assert np.array_equal(shuffle_tiles(x, perm, 4).numpy(), naive_tile_shuffle(x.numpy(), perm.numpy(), 4))


# --------------------------------------------------------------------------- a user's own classifier and loader
def _bag_classifier() -> nn.Module:
    return nn.Sequential(local_bag_control(3, channels=16, seed=1), nn.Linear(16, 10))


def test_dist_accuracy_loader_local_control_is_chance_and_matches_the_tensor_tool() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from paperzoo.analysis.shape_bias import dist_accuracy_loader, penultimate_features

    x = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(x, torch.zeros(20, dtype=torch.long)), batch_size=8)
    model = _bag_classifier()
    res = dist_accuracy_loader(model, loader, seed=3, bootstrap=0, progress=False)
    assert res.n == 20 and res.accuracy == pytest.approx(1 / 3) and res.margins is not None
    # the first batch's triplets are make_dist_triplets(first batch, disruptor, seed)
    trip = make_dist_triplets(x[:8], FramedTileShuffle(), seed=3)
    ref = dist_accuracy(penultimate_features(model), trip, return_margins=True, bootstrap=0)
    np.testing.assert_allclose(res.margins[:8], ref.margins, atol=1e-6)
    # an unframed shuffle leaks seams: the same control is far above chance there
    res_u = dist_accuracy_loader(model, loader, TileShuffle(4), bootstrap=0, progress=False, max_batches=1)
    assert res_u.n == 8 and res_u.accuracy > 0.5


def test_dist_accuracy_loader_and_plot_reject_bad_input_and_plot() -> None:
    from paperzoo.analysis.shape_bias import dist_accuracy_loader, plot_dist

    with pytest.raises(TypeError, match="nn.Module"):
        dist_accuracy_loader(lambda t: t, [torch.rand(2, 1, 8, 8)], progress=False)
    with pytest.raises(ValueError, match="no batches"):
        dist_accuracy_loader(_bag_classifier(), [], progress=False)
    with pytest.raises(ValueError):
        dist_accuracy_loader(_bag_classifier(), [torch.rand(2, 8, 8)], progress=False)
    x = torch.rand(4, 1, 28, 28)
    trip = make_dist_triplets(x, FramedTileShuffle(), seed=0)
    res = dist_scores(torch.rand(4, 5), torch.rand(4, 5), torch.rand(4, 5), return_margins=True, bootstrap=50)
    fig = plot_dist(res, trip, n_examples=2)
    assert len(fig.axes) == 2 * 3 + 1
    import matplotlib.pyplot as plt

    plt.close(fig)
    plt.close(plot_dist(dist_scores(torch.rand(3, 2), torch.rand(3, 2), torch.rand(3, 2), bootstrap=0)))
