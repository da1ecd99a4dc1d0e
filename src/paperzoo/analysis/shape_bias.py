"""Global-shape sensitivity of image classifiers: the Disrupted Structure Testbench (DiST) and
DiSTinguish training of Wen, Li, Jing & Lee, "Does resistance to style-transfer equal Global
Shape Bias? Measuring network sensitivity to global shape configuration" (ICLR 2024 Re-Align
workshop, arXiv 2310.07555).

The paper's test pairs each original image with two images that keep its local texture and
features but scramble its global configuration; a model sees the triplet and must single out
the original from its representations (odd one out, chance 1/3). A model that only encodes
local features sees three near-identical images; a model that encodes the global
configuration picks the original. Training with such images ("DiSTinguish") is the paper's
way to make a network sensitive to global structure. The paper's disrupted images come from a
texture-synthesis program whose settings are not given in the abstract; this module offers:

* :class:`FramedTileShuffle` (the default disruptor): blank a ``frame``-pixel border around
  every tile of a ``grid x grid`` partition, apply the same framing to the original, and permute
  the tiles with two *mutual derangements* (no tile stays in place, and the two disrupted images
  never put the same tile at the same position). Every image patch of size ``<= 2 frame + 1``
  then occurs in exactly the same multiset in all three images, so a model whose features are a
  spatial average of features with that receptive field scores exactly chance: a built-in
  control (:func:`local_bag_control`). Vectorised on batches (one permutation pair per image).
* :class:`TileShuffle`: the unframed version (``frame = 0``); its tile seams are a local cue
  the original lacks, so it is not a valid test on its own (kept for comparison).
* :class:`GramTextureDisruptor`: Gatys-style texture synthesis (match the Gram matrices of a
  frozen feature network from a random start with L-BFGS, then histogram-match), the paper's
  kind of disruptor, with a random shallow multi-scale CNN as the feature network by default.
* :func:`odd_one_out`, :func:`dist_scores` and :func:`dist_accuracy`: the odd-one-out rule with
  fractional credit for ties, the DiST accuracy with a bootstrap interval over triplets and the
  continuous margin ``s(d1, d2) - max(s(x, d1), s(x, d2))``; usable on any image classifier
  through a feature function (:func:`penultimate_features` for any ``nn.Module`` classifier);
  :func:`dist_accuracy_loader` measures a user's own classifier on a user's image data loader
  (with a progress bar) and :func:`plot_dist` shows example triplets with their scores and the
  distribution of the margins.
* :class:`DiSTinguishLoss` and :class:`DiSTinguishObjective`: the auxiliary objective
  (``binary``: original vs disrupted from the penultimate features; ``odd_one_out``: the DiST
  criterion itself) and a ``compute_loss`` for :func:`paperzoo.engine.fit` that injects
  disrupted images into every batch.
* The context metric the paper argues against, the cue-conflict shape bias of Geirhos et al.
  (2019): :func:`shape_bias`, with :func:`phase_amplitude_swap` as an offline, vectorised
  style-transfer proxy (Fourier phase of the shape image, amplitude of the texture image).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, check_labels, validate_params

__all__ = [
    "DiSTinguishLoss",
    "DiSTinguishObjective",
    "DistResult",
    "FramedTileShuffle",
    "GramTextureDisruptor",
    "RandomMultiScaleNet",
    "TileShuffle",
    "dist_accuracy",
    "dist_accuracy_loader",
    "dist_scores",
    "frame_tiles",
    "gram_matrices",
    "histogram_match",
    "local_bag_control",
    "make_dist_triplets",
    "mutual_derangements",
    "odd_one_out",
    "odd_one_out_loss",
    "penultimate_features",
    "phase_amplitude_swap",
    "plot_dist",
    "shape_bias",
    "shuffle_tiles",
    "triplet_similarities",
]

Similarity = Literal["cosine", "euclidean"]
FeatureFn = Callable[[torch.Tensor], Any]
Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

_POS_INT: list[Constraint] = [Interval(int, 1, math.inf, closed="left")]
_NONNEG_INT: list[Constraint] = [Interval(int, 0, math.inf, closed="left")]
_BOOL: list[Constraint] = [Options((True, False))]
_SIMILARITY: list[Constraint] = [Options(("cosine", "euclidean"))]
_TOL: list[Constraint] = [Interval(float, 0, math.inf, closed="left")]


# --------------------------------------------------------------------------- input checks
def _check_images(images: Any, name: str = "images") -> torch.Tensor:
    """A floating (N, C, H, W) tensor with N >= 1 and finite values."""
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape (N, C, H, W), got dtype {images.dtype}")
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    check_finite(images, name)
    return images


def _check_features(f: Any, name: str) -> torch.Tensor:
    if not isinstance(f, torch.Tensor):
        f = torch.as_tensor(np.asarray(f))
    if not f.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape (N, D), got dtype {f.dtype}")
    if f.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(f.shape)}")
    if f.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")
    check_finite(f, name)
    return f


def _check_feature_triplet(fa: Any, fb: Any, fc: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b, c = _check_features(fa, "fa"), _check_features(fb, "fb"), _check_features(fc, "fc")
    if not a.shape == b.shape == c.shape:
        raise ValueError(
            f"fa, fb and fc must have the same shape (N, D), got {tuple(a.shape)}, {tuple(b.shape)}, {tuple(c.shape)}"
        )
    return a, b, c


# --------------------------------------------------------------------------- tiles
def frame_tiles(images: torch.Tensor, grid: int, frame: int, fill: float = 0.0) -> torch.Tensor:
    """Set a ``frame``-pixel border of every tile of a ``grid x grid`` partition to ``fill``.

    The image border is a tile border too. ``H`` and ``W`` must be divisible by ``grid`` and
    each tile must keep a non-empty interior (``2 frame < H / grid`` and ``W / grid``).
    """
    validate_params({"grid": _POS_INT, "frame": _NONNEG_INT}, {"grid": grid, "frame": frame}, owner="frame_tiles")
    images = _check_images(images)
    th, tw = _tile_size(images, grid)
    if 2 * frame >= min(th, tw):
        raise ValueError(f"frame={frame} leaves no interior in {th}x{tw} tiles (need 2 * frame < tile size)")
    if frame == 0:
        return images
    H, W = images.shape[-2:]
    rows = torch.arange(H, device=images.device) % th
    cols = torch.arange(W, device=images.device) % tw
    border = ((rows < frame) | (rows >= th - frame))[:, None] | ((cols < frame) | (cols >= tw - frame))[None, :]
    return images.masked_fill(border, fill)


def _tile_size(images: torch.Tensor, grid: int) -> tuple[int, int]:
    H, W = images.shape[-2:]
    if H % grid or W % grid:
        raise ValueError(f"image size {H}x{W} is not divisible by grid={grid}")
    return H // grid, W // grid


def shuffle_tiles(images: torch.Tensor, perm: torch.Tensor, grid: int) -> torch.Tensor:
    """Rearrange the ``grid x grid`` tiles of each image: output tile ``i`` (row-major) is input
    tile ``perm[i]``.

    Args:
        images: (N, C, H, W), ``H`` and ``W`` divisible by ``grid``.
        perm: (T,) one permutation for all images or (N, T) one per image, ``T = grid**2``.
        grid: tiles per side.
    """
    validate_params({"grid": _POS_INT}, {"grid": grid}, owner="shuffle_tiles")
    images = _check_images(images)
    th, tw = _tile_size(images, grid)
    N, C, H, W = images.shape
    T = grid * grid
    perm = torch.as_tensor(perm, device=images.device)
    if perm.dim() == 1:
        perm = perm.expand(N, -1)
    if perm.shape != (N, T) or perm.dtype.is_floating_point:
        raise ValueError(f"perm must be an integer tensor of shape ({T},) or ({N}, {T}), got {tuple(perm.shape)}")
    if not bool((perm.sort(dim=1).values == torch.arange(T, device=perm.device)).all()):
        raise ValueError("perm must hold a permutation of 0..T-1 in every row")
    tiles = images.reshape(N, C, grid, th, grid, tw).permute(0, 2, 4, 1, 3, 5).reshape(N, T, C, th, tw)
    tiles = tiles.gather(1, perm.long()[:, :, None, None, None].expand(-1, -1, C, th, tw))
    return tiles.reshape(N, grid, grid, C, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(N, C, H, W)


def _random_permutations(n: int, T: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, T, generator=generator).argsort(dim=1)


def mutual_derangements(
    n: int, T: int, generator: torch.Generator | None = None, mutual: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (n, T) permutations per row with no fixed points; with ``mutual`` also
    ``p1[i] != p2[i]`` at every position (the two disrupted images never share a tile position).

    Drawn uniformly among the valid pairs by batched rejection: the rows that fail are redrawn
    together (a few dozen rounds for thousands of rows). Needs ``T >= 2`` (``T >= 3`` with
    ``mutual``).
    """
    validate_params(
        {"n": _POS_INT, "T": _POS_INT, "mutual": _BOOL}, {"n": n, "T": T, "mutual": mutual}, owner="mutual_derangements"
    )
    if T < (3 if mutual else 2):
        raise ValueError(f"mutual_derangements: T={T} tiles admit no {'mutual ' if mutual else ''}derangement pair")
    ident = torch.arange(T)

    def draw(bad_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ref: torch.Tensor) -> torch.Tensor:
        out = _random_permutations(n, T, generator)
        bad = bad_rows(out, ref)
        while bool(bad.any()):
            idx = bad.nonzero().squeeze(1)
            out[idx] = _random_permutations(len(idx), T, generator)
            bad = bad_rows(out, ref)
        return out

    p1 = draw(lambda p, _: (p == ident).any(dim=1), ident)
    if mutual:
        p2 = draw(lambda p, r: ((p == ident) | (p == r)).any(dim=1), p1)
    else:
        p2 = draw(lambda p, _: (p == ident).any(dim=1), ident)
    return p1, p2


class FramedTileShuffle:
    """Texture-preserving, configuration-destroying disruptor: framed tiles, mutually deranged.

    ``reference(x)`` frames the tiles of the original (so the frame carries no label
    information); ``triplet(x, generator)`` returns ``(x_framed, d1, d2)``; calling the
    disruptor returns one disrupted image per input (a derangement, framed). With ``frame >= 1``
    every patch of size ``<= 2 frame + 1`` has the same multiset in all three images.

    Args:
        grid: tiles per side (``>= 2``; ``H`` and ``W`` must be divisible by it).
        frame: width of the blank border of every tile (0: :class:`TileShuffle`).
        mutual_derangement: ``p1[i] != p2[i]`` at every tile position (otherwise the two
            disrupted images share tiles at identical positions, which raw pixels detect).
        fill: value of the frame.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "grid": [Interval(int, 2, math.inf, closed="left")],
        "frame": _NONNEG_INT,
        "mutual_derangement": _BOOL,
        "fill": [Interval(float, -math.inf, math.inf, closed="neither")],
    }

    def __init__(self, grid: int = 4, frame: int = 1, mutual_derangement: bool = True, fill: float = 0.0) -> None:
        validate_params(
            self._parameter_constraints,
            {"grid": grid, "frame": frame, "mutual_derangement": mutual_derangement, "fill": fill},
            owner=type(self).__name__,
        )
        self.grid, self.frame, self.mutual_derangement, self.fill = (
            int(grid),
            int(frame),
            bool(mutual_derangement),
            float(fill),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(grid={self.grid}, frame={self.frame}, mutual_derangement={self.mutual_derangement})"
        )

    def reference(self, images: torch.Tensor) -> torch.Tensor:
        """The original with the same tile frames as the disrupted images."""
        return frame_tiles(images, self.grid, self.frame, self.fill)

    def permutations(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The two (n, T) tile permutations of a batch of triplets."""
        return mutual_derangements(n, self.grid**2, generator, self.mutual_derangement)

    def triplet(self, images: torch.Tensor, generator: torch.Generator | None = None) -> Triplets:
        """``(x_framed, d1, d2)`` for a batch (N, C, H, W)."""
        ref = self.reference(images)
        p1, p2 = self.permutations(ref.shape[0], generator)
        return ref, shuffle_tiles(ref, p1.to(ref.device), self.grid), shuffle_tiles(ref, p2.to(ref.device), self.grid)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One disrupted image per input (framed, tiles deranged)."""
        ref = self.reference(images)
        perm = mutual_derangements(ref.shape[0], self.grid**2, generator, mutual=False)[0]
        return shuffle_tiles(ref, perm.to(ref.device), self.grid)

    def cache_tag(self) -> str:
        return f"tiles-g{self.grid}-f{self.frame}-m{int(self.mutual_derangement)}-v{self.fill:g}"


class TileShuffle(FramedTileShuffle):
    """Unframed tile shuffling (``FramedTileShuffle(grid, frame=0)``). Not a valid test on its
    own: the disrupted images have tile seams the original lacks, a purely local cue."""

    def __init__(self, grid: int = 4, mutual_derangement: bool = True) -> None:
        super().__init__(grid=grid, frame=0, mutual_derangement=mutual_derangement)


# --------------------------------------------------------------------------- Gram texture synthesis
class RandomMultiScaleNet(nn.Module):
    """A frozen random single-layer multi-scale CNN for texture synthesis (random shallow
    networks suffice, Ustyuzhaninov et al. 2016): ``Conv2d(C -> channels, k) + ReLU`` for each
    ``k`` in ``kernel_sizes`` (no padding), weights ``N(0, 1 / (k^2 C))``, biases
    ``U(-0.1, 0.1)``, drawn from ``seed``. ``forward`` returns the list of feature maps."""

    def __init__(
        self, in_channels: int = 1, channels: int = 32, kernel_sizes: Sequence[int] = (3, 5, 7), seed: int = 0
    ) -> None:
        super().__init__()
        validate_params(
            {"in_channels": _POS_INT, "channels": _POS_INT, "seed": _NONNEG_INT},
            {"in_channels": in_channels, "channels": channels, "seed": seed},
            owner=type(self).__name__,
        )
        gen = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList()
        for k in kernel_sizes:
            conv = nn.Conv2d(in_channels, channels, int(k))
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / (k * math.sqrt(in_channels)))
                conv.bias.copy_(torch.rand(channels, generator=gen) * 0.2 - 0.1)
            self.convs.append(conv)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.relu(conv(x)) for conv in self.convs]


def gram_matrices(feature_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``G_l = F_l F_l^T / (H_l W_l)`` per layer, each (N, C_l, C_l), from maps (N, C_l, H_l, W_l)."""
    out = []
    for fmap in feature_maps:
        flat = fmap.flatten(2)
        out.append(flat @ flat.transpose(1, 2) / flat.shape[-1])
    return out


def histogram_match(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give each image the sorted pixel values of its reference (per image and channel), keeping
    the image's rank order: the first-order statistics become exactly the reference's."""
    images, reference = _check_images(images), _check_images(reference, "reference")
    if images.shape != reference.shape:
        raise ValueError(
            f"images and reference must have the same shape, got {tuple(images.shape)} and {tuple(reference.shape)}"
        )
    flat = images.flatten(2)
    order = flat.argsort(dim=-1)
    out = torch.empty_like(flat)
    out.scatter_(-1, order, reference.flatten(2).sort(dim=-1).values.to(out.dtype))
    return out.view_as(images)


class GramTextureDisruptor:
    """Disrupted images by Gram-matrix texture synthesis (Gatys et al. style).

    From ``u ~ U(0, 1)`` pixels, parametrised as ``sigmoid(z)``, minimise
    ``sum_l ||G_l(sigmoid(z)) - G_l(x)||_F^2 / ||G_l(x)||_F^2`` with L-BFGS (strong-Wolfe line
    search, history 20, ``iters`` iterations, at most ``max_eval`` evaluations), all images of a
    batch jointly, then (``hist_match``) give the result ``x``'s sorted pixel values. The result
    keeps ``x``'s texture statistics and loses its arrangement; on object-on-background images the
    synthesis also fragments the background, so its local control is not at chance.

    Args:
        feature_net: a module mapping (N, C, H, W) to a feature map or a list of maps;
            default :class:`RandomMultiScaleNet` (built for the input's channels).
        layers: names of submodules of ``feature_net`` whose outputs are matched (forward
            hooks) instead of its return value.
        iters, max_eval: L-BFGS iterations and function evaluations.
        hist_match: histogram-match the synthesis to ``x``.
        seed: seed of the default feature network.
        batch_size: images synthesised jointly.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "iters": _POS_INT,
        "max_eval": [*_POS_INT, None],
        "hist_match": _BOOL,
        "seed": _NONNEG_INT,
        "batch_size": _POS_INT,
    }

    def __init__(
        self,
        feature_net: nn.Module | None = None,
        layers: Sequence[str] | None = None,
        iters: int = 100,
        hist_match: bool = True,
        seed: int = 0,
        max_eval: int | None = 120,
        batch_size: int = 64,
    ) -> None:
        validate_params(
            self._parameter_constraints,
            {"iters": iters, "max_eval": max_eval, "hist_match": hist_match, "seed": seed, "batch_size": batch_size},
            owner=type(self).__name__,
        )
        self.feature_net, self.layers = feature_net, tuple(layers) if layers is not None else None
        self.iters, self.max_eval, self.hist_match = int(iters), max_eval, bool(hist_match)
        self.seed, self.batch_size = int(seed), int(batch_size)
        self._nets: dict[int, nn.Module] = {}

    def __repr__(self) -> str:
        return f"GramTextureDisruptor(iters={self.iters}, hist_match={self.hist_match}, seed={self.seed})"

    def cache_tag(self) -> str:
        net = "random" if self.feature_net is None else type(self.feature_net).__name__
        return f"gram-{net}-i{self.iters}-e{self.max_eval}-h{int(self.hist_match)}-s{self.seed}-b{self.batch_size}"

    def _net(self, channels: int) -> nn.Module:
        if self.feature_net is not None:
            return self.feature_net
        if channels not in self._nets:
            self._nets[channels] = RandomMultiScaleNet(channels, seed=self.seed)
        return self._nets[channels]

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The matched feature maps of ``images``."""
        net = self._net(images.shape[1])
        if self.layers is None:
            out = net(images)
            return [out] if isinstance(out, torch.Tensor) else list(out)
        captured: list[torch.Tensor] = []
        modules = dict(net.named_modules())
        missing = [name for name in self.layers if name not in modules]
        if missing:
            raise ValueError(f"feature_net has no submodules {missing}")
        hooks = [modules[name].register_forward_hook(lambda _m, _i, o: captured.append(o)) for name in self.layers]
        try:
            net(images)
        finally:
            for h in hooks:
                h.remove()
        return captured

    def gram_error(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-image ``sum_l ||G_l(images) - G_l(targets)||^2 / ||G_l(targets)||^2``, (N,)."""
        with torch.no_grad():
            return self._loss_terms(gram_matrices(self.features(images)), gram_matrices(self.features(targets)))

    @staticmethod
    def _loss_terms(grams: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
        total = torch.zeros(grams[0].shape[0], dtype=grams[0].dtype)
        for g, t in zip(grams, targets):
            norm = t.pow(2).sum(dim=(1, 2)).clamp_min(1e-12)
            total = total + (g - t).pow(2).sum(dim=(1, 2)) / norm
        return total

    def synthesize(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One texture synthesis per image, in batches of ``batch_size``."""
        images = _check_images(images).detach().float()
        out = [
            self._synthesize_batch(images[s : s + self.batch_size], generator)
            for s in range(0, len(images), self.batch_size)
        ]
        return torch.cat(out)

    def _synthesize_batch(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        with torch.no_grad():
            targets = [g.detach() for g in gram_matrices(self.features(x))]
        u = torch.rand(x.shape, generator=generator).clamp(1e-3, 1 - 1e-3)
        z = torch.logit(u).requires_grad_(True)
        opt = torch.optim.LBFGS(
            [z], lr=1.0, max_iter=self.iters, max_eval=self.max_eval, history_size=20,
            tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = self._loss_terms(gram_matrices(self.features(torch.sigmoid(z))), targets).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        out = torch.sigmoid(z.detach())
        return histogram_match(out, x) if self.hist_match else out

    def triplet(self, images: torch.Tensor, generator: torch.Generator | None = None) -> Triplets:
        """``(x, d1, d2)``: two independent syntheses per image (synthesised in one batch)."""
        images = _check_images(images).detach().float()
        both = self.synthesize(torch.cat([images, images]), generator)
        return images, both[: len(images)], both[len(images) :]

    def reference(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.synthesize(images, generator)


def make_dist_triplets(images: Any, disruptor: Any, seed: int = 0, cache_key: str | None = None) -> Triplets:
    """DiST triplets ``(x, d1, d2)`` (float32 tensors (N, C, H, W)) of ``images`` with any
    disruptor that has a ``triplet(images, generator)`` method, drawn from ``seed``.

    With ``cache_key``, the triplets are cached as ``.npy`` in :func:`paperzoo.data.cache_dir`
    (written atomically; the name holds the disruptor's settings, the seed and a hash of the
    image bytes), which pays off for :class:`GramTextureDisruptor`.
    """
    validate_params({"seed": _NONNEG_INT}, {"seed": seed}, owner="make_dist_triplets")
    x = _check_images(images).detach().to("cpu", torch.float32)
    gen = torch.Generator().manual_seed(int(seed))
    if cache_key is None:
        return disruptor.triplet(x, gen)
    from paperzoo.data.cache import cache_dir, save_npy_atomic

    if not cache_key or any(c in cache_key for c in "/\\\0"):
        raise ValueError(f"cache_key must be a non-empty file-name-safe string, got {cache_key!r}")
    tag = disruptor.cache_tag() if hasattr(disruptor, "cache_tag") else type(disruptor).__name__
    digest = hashlib.sha256(repr(tuple(x.shape)).encode() + x.contiguous().numpy().tobytes()).hexdigest()[:16]
    path = cache_dir() / f"dist-{cache_key}-{tag}-seed{seed}-{digest}.npy"
    if path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == (3, *x.shape):
                t = torch.from_numpy(arr)
                return t[0], t[1], t[2]
        except (OSError, ValueError):
            pass  # a damaged entry: recompute
    trip = disruptor.triplet(x, gen)
    save_npy_atomic(path, torch.stack([t.float() for t in trip]).numpy())
    return trip


# --------------------------------------------------------------------------- the DiST score
def triplet_similarities(
    fa: torch.Tensor, fb: torch.Tensor, fc: torch.Tensor, similarity: Similarity = "cosine"
) -> torch.Tensor:
    """``(s(a, b), s(a, c), s(b, c))`` as an (N, 3) tensor; ``cosine`` similarity or
    ``euclidean`` (the negative Euclidean distance). Differentiable."""
    validate_params({"similarity": _SIMILARITY}, {"similarity": similarity}, owner="triplet_similarities")
    pairs = ((fa, fb), (fa, fc), (fb, fc))
    if similarity == "cosine":
        sims = [F.cosine_similarity(u, v, dim=1, eps=1e-12) for u, v in pairs]
    else:
        sims = [-(u - v).pow(2).sum(dim=1).clamp_min(1e-30).sqrt() for u, v in pairs]
    return torch.stack(sims, dim=1)


def odd_one_out(
    fa: torch.Tensor, fb: torch.Tensor, fc: torch.Tensor, similarity: Similarity = "cosine", tol: float = 1e-6
) -> torch.Tensor:
    """Odd-one-out credits of a batch of triplets, (N, 3): each row gives (a, b, c) credit.

    The odd one is the image whose similarities to the other two sum lowest. Sums within
    ``tol * max(1, |sum|)`` of the lowest are tied and share the credit (``1 / number tied``), so
    a model that cannot tell the images apart scores chance (1/3), never a perfect score.
    Computed in float64. ``a`` gets full credit iff ``s(b, c) > max(s(a, b), s(a, c))``.
    """
    validate_params(
        {"similarity": _SIMILARITY, "tol": _TOL}, {"similarity": similarity, "tol": tol}, owner="odd_one_out"
    )
    a, b, c = (t.detach().double() for t in _check_feature_triplet(fa, fb, fc))
    s = triplet_similarities(a, b, c, similarity)  # s_ab, s_ac, s_bc
    sums = torch.stack([s[:, 0] + s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 2]], dim=1)
    low = sums.min(dim=1, keepdim=True).values
    scale = sums.abs().amax(dim=1, keepdim=True).clamp_min(1.0)
    tied = (sums - low) <= tol * scale
    return tied.double() / tied.sum(dim=1, keepdim=True)


@dataclass
class DistResult:
    """DiST accuracy of one model on one set of triplets.

    Attributes:
        accuracy: mean credit of the original (chance 1/3).
        ci: bootstrap 95% interval over triplets (``(nan, nan)`` without bootstrap).
        margin: mean of ``s(d1, d2) - max(s(x, d1), s(x, d2))`` (> 0: the original is odd).
        n: number of triplets.
        credits: (N,) credit of the original per triplet.
        margins: (N,) margins, when asked for.
    """

    accuracy: float
    ci: tuple[float, float]
    margin: float
    n: int
    credits: np.ndarray = field(repr=False)
    margins: np.ndarray | None = field(default=None, repr=False)


def dist_scores(
    fx: Any,
    fd1: Any,
    fd2: Any,
    similarity: Similarity = "cosine",
    return_margins: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
    tol: float = 1e-6,
) -> DistResult:
    """DiST accuracy from features of originals ``fx`` and disrupted images ``fd1``, ``fd2``
    (each (N, D)): the original's odd-one-out credit (:func:`odd_one_out`), its mean, a
    percentile bootstrap 95% interval over triplets (``bootstrap`` resamples, 0 for none) and
    the mean margin ``s(d1, d2) - max(s(x, d1), s(x, d2))``."""
    validate_params(
        {"bootstrap": _NONNEG_INT, "seed": _NONNEG_INT, "return_margins": _BOOL},
        {"bootstrap": bootstrap, "seed": seed, "return_margins": return_margins},
        owner="dist_scores",
    )
    a, b, c = _check_feature_triplet(fx, fd1, fd2)
    credits = odd_one_out(a, b, c, similarity, tol)[:, 0].numpy()
    s = triplet_similarities(a.detach().double(), b.detach().double(), c.detach().double(), similarity)
    margins = (s[:, 2] - s[:, :2].max(dim=1).values).numpy()
    ci = (math.nan, math.nan)
    if bootstrap:
        idx = np.random.default_rng(seed).integers(0, len(credits), size=(bootstrap, len(credits)))
        lo, hi = np.percentile(credits[idx].mean(axis=1), [2.5, 97.5])
        ci = (float(lo), float(hi))
    return DistResult(
        accuracy=float(credits.mean()),
        ci=ci,
        margin=float(margins.mean()),
        n=len(credits),
        credits=credits,
        margins=margins if return_margins else None,
    )


def _features(feature_fn: FeatureFn, images: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """``feature_fn`` over ``images`` in batches of ``batch_size`` (all at once if None), as (N, D)."""
    step = batch_size or len(images)
    parts = []
    with torch.no_grad():
        for s in range(0, len(images), step):
            f = feature_fn(images[s : s + step])
            parts.append(f if isinstance(f, torch.Tensor) else torch.as_tensor(np.asarray(f)))
    out = torch.cat(parts).reshape(len(images), -1)
    return out.float() if not out.is_floating_point() else out


def dist_accuracy(
    feature_fn: FeatureFn,
    triplets: Triplets,
    similarity: Similarity = "cosine",
    return_margins: bool = False,
    bootstrap: int = 1000,
    seed: int = 0,
    batch_size: int | None = None,
) -> DistResult:
    """DiST accuracy of any model given as ``feature_fn(images) -> (N, D)`` features (tensor or
    array; e.g. :func:`penultimate_features` of a classifier, a frozen extractor, or flattened
    pixels) on ``triplets = (x, d1, d2)``; see :func:`dist_scores`."""
    if not isinstance(triplets, (tuple, list)) or len(triplets) != 3:
        raise ValueError("triplets must be a tuple (x, d1, d2) of image batches")
    x, d1, d2 = (_check_images(t, n) for t, n in zip(triplets, ("x", "d1", "d2")))
    if not x.shape == d1.shape == d2.shape:
        raise ValueError(
            f"x, d1 and d2 must have the same shape, got {tuple(x.shape)}, {tuple(d1.shape)}, {tuple(d2.shape)}"
        )
    feats = _features(feature_fn, torch.cat([x, d1, d2]), batch_size)
    n = len(x)
    return dist_scores(feats[:n], feats[n : 2 * n], feats[2 * n :], similarity, return_margins, bootstrap, seed)


def dist_accuracy_loader(
    model: nn.Module,
    loader: Any,
    disruptor: Any = None,
    layer: nn.Module | str | None = None,
    similarity: Similarity = "cosine",
    seed: int = 0,
    max_batches: int | None = None,
    bootstrap: int = 1000,
    device: Any = None,
    progress: bool = True,
) -> DistResult:
    """DiST accuracy of a user's own classifier on a user's own images.

    For every batch of ``loader`` (an iterable of ``(x, y)`` batches or bare image tensors, e.g.
    a torch ``DataLoader``; labels are ignored) the disruptor (default: the framed 4x4 tile
    shuffle, :class:`FramedTileShuffle`) makes the triplets ``(x, d1, d2)`` with one generator
    seeded by ``seed``, the model's penultimate features (the input of ``layer``, default its last
    ``nn.Linear``; see :func:`penultimate_features`) are taken on ``device``, and
    :func:`dist_scores` scores all triplets together (margins included). ``max_batches`` stops
    early; a progress bar shows the batches (``progress=False``: none). The first batch's
    triplets are ``make_dist_triplets(first_batch, disruptor, seed)``, e.g. for :func:`plot_dist`.
    """
    from paperzoo.engine.progress import progress as bar

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    validate_params(
        {"seed": _NONNEG_INT, "max_batches": [None, *_POS_INT]},
        {"seed": seed, "max_batches": max_batches},
        owner="dist_accuracy_loader",
    )
    disruptor = FramedTileShuffle() if disruptor is None else disruptor
    feature_fn = penultimate_features(model, layer)
    gen = torch.Generator().manual_seed(int(seed))
    total = len(loader) if hasattr(loader, "__len__") else None
    if total is not None and max_batches is not None:
        total = min(total, max_batches)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for i, batch in enumerate(bar(loader, desc="DiST", total=total, enabled=progress)):
        if max_batches is not None and i >= max_batches:
            break
        x = _check_images(batch[0] if isinstance(batch, (tuple, list)) else batch).detach().to("cpu", torch.float32)
        trip = disruptor.triplet(x, gen)
        n = len(x)
        stacked = torch.cat(trip)
        feats = feature_fn(stacked if device is None else stacked.to(device)).detach().to("cpu")
        feats = feats.reshape(3 * n, -1).float()
        for part, k in zip(parts, range(3)):
            part.append(feats[k * n : (k + 1) * n])
    if not parts[0]:
        raise ValueError("loader yielded no batches")
    fx, fd1, fd2 = (torch.cat(p) for p in parts)
    return dist_scores(fx, fd1, fd2, similarity, return_margins=True, bootstrap=bootstrap, seed=seed)


def plot_dist(result: DistResult, triplets: Triplets | None = None, n_examples: int = 4, title: str = "") -> Any:
    """A figure of a DiST measurement: the first ``n_examples`` triplets (original, d1, d2) with
    the original's odd-one-out credit and margin (when ``triplets`` are given, in the order the
    result scored them), and the histogram of the margins (when the result holds them) or of
    the credits, with the accuracy, its interval and chance 1/3. Returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    validate_params({"n_examples": _POS_INT}, {"n_examples": n_examples}, owner="plot_dist")
    rows = 0
    if triplets is not None:
        x, d1, d2 = (_check_images(t, nm) for t, nm in zip(triplets, ("x", "d1", "d2")))
        rows = min(n_examples, len(x), result.n)
    fig = plt.figure(figsize=(4.0 + 5.0 * (rows > 0), max(3.2, 1.5 * rows)))
    grid = fig.add_gridspec(max(rows, 1), 4 if rows else 1, width_ratios=[1, 1, 1, 2.2] if rows else [1])
    for r in range(rows):
        margin = "" if result.margins is None else f"\nmargin {result.margins[r]:+.3f}"
        for c, (img, name) in enumerate(zip((x[r], d1[r], d2[r]), ("original", "disrupted 1", "disrupted 2"))):
            ax = fig.add_subplot(grid[r, c])
            arr = img.detach().float().cpu()
            arr = arr[0] if arr.shape[0] == 1 else arr.permute(1, 2, 0).clamp(0, 1)
            ax.imshow(arr.numpy(), cmap="gray" if arr.dim() == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"credit {result.credits[r]:.2f}{margin}", fontsize=7)
    ax = fig.add_subplot(grid[:, -1])
    if result.margins is not None:
        ax.hist(result.margins, bins=30, color="C0", alpha=0.8)
        ax.axvline(0.0, color="grey", ls="--", lw=1)
        ax.set_xlabel("margin s(d1, d2) - max(s(x, d1), s(x, d2))\n(> 0: the original is odd)")
    else:
        ax.hist(result.credits, bins=[-0.05, 0.2, 0.4, 0.6, 0.8, 1.05], color="C0", alpha=0.8)
        ax.set_xlabel("credit of the original")
    ax.set_ylabel("triplets")
    lo, hi = result.ci
    ci = "" if math.isnan(lo) else f" [{lo:.3f}, {hi:.3f}]"
    ax.set_title(f"DiST accuracy {result.accuracy:.3f}{ci}\n(chance 1/3), n = {result.n}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.suptitle(title or "DiST: odd-one-out on (original, two disruptions)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- model adapters
def _last_linear(model: nn.Module) -> nn.Module:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear layer; pass layer= (the module whose input is the feature)")
    return linears[-1]


class _InputCapture:
    """Forward pre-hook that keeps the (first) input of a module."""

    def __init__(self, module: nn.Module) -> None:
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self.value = inputs[0]

    def remove(self) -> None:
        self.handle.remove()


def _resolve_layer(model: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    if layer is None:
        return _last_linear(model)
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"model has no submodule {layer!r}")
        return modules[layer]
    return layer


def penultimate_features(
    model: nn.Module, layer: nn.Module | str | None = None, batch_size: int = 1024
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A feature function for any classifier: the input of ``layer`` (default: the model's last
    ``nn.Linear``, i.e. the penultimate representation), flattened to (N, D), computed in eval
    mode under ``torch.no_grad`` in batches of ``batch_size``."""
    validate_params({"batch_size": _POS_INT}, {"batch_size": batch_size}, owner="penultimate_features")
    target = _resolve_layer(model, layer)

    def feature_fn(images: torch.Tensor) -> torch.Tensor:
        was_training = model.training
        model.eval()
        cap = _InputCapture(target)
        out = []
        try:
            with torch.no_grad():
                for s in range(0, len(images), batch_size):
                    model(images[s : s + batch_size])
                    assert cap.value is not None
                    out.append(cap.value.reshape(cap.value.shape[0], -1))
        finally:
            cap.remove()
            model.train(was_training)
        return torch.cat(out)

    return feature_fn


def local_bag_control(k: int, channels: int = 64, in_channels: int = 1, seed: int = 0) -> nn.Module:
    """A bag-of-local-features model: frozen random ``k x k`` convolution (``channels`` filters,
    zero padding ``k // 2``, weights ``N(0, 1 / (k^2 C))``, biases ``U(-0.1, 0.1)`` from
    ``seed``), ReLU, global average pool -> (N, channels). Its receptive field is ``k``: on
    :class:`FramedTileShuffle` triplets with ``k <= 2 frame + 1`` (and ``fill = 0``, the padding
    value) it scores exactly chance, the built-in control; larger ``k`` shows how far purely
    local relational cues already go."""
    validate_params(
        {"k": _POS_INT, "channels": _POS_INT, "in_channels": _POS_INT, "seed": _NONNEG_INT},
        {"k": k, "channels": channels, "in_channels": in_channels, "seed": seed},
        owner="local_bag_control",
    )
    gen = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(in_channels, channels, k, padding=k // 2)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / (k * math.sqrt(in_channels)))
        conv.bias.copy_(torch.rand(channels, generator=gen) * 0.2 - 0.1)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.requires_grad_(False)
    return model.eval()


# --------------------------------------------------------------------------- DiSTinguish
def odd_one_out_loss(fx: torch.Tensor, fd1: torch.Tensor, fd2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Per-triplet cross-entropy of the soft odd-one-out choice, (N,): softmax over the negated
    similarity sums of ``(x, d1, d2)`` (cosine, divided by ``temperature``) with the original as
    the target; it optimises the DiST criterion directly. Differentiable."""
    validate_params(
        {"temperature": [Interval(float, 0, math.inf, closed="neither")]},
        {"temperature": temperature},
        owner="odd_one_out_loss",
    )
    a, b, c = _check_feature_triplet(fx, fd1, fd2)
    s = triplet_similarities(a, b, c, "cosine")
    sums = torch.stack([s[:, 0] + s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 2]], dim=1)
    return -F.log_softmax(-sums / temperature, dim=1)[:, 0]


class DiSTinguishLoss(nn.Module):
    """The auxiliary DiSTinguish objective on penultimate features (added to the classification
    loss by :class:`DiSTinguishObjective`), ``weight`` times:

    * ``binary``: a 2-way head (``nn.Linear(feature_dim, 2)``, owned by this module: give its
      parameters to the optimiser) classifies references (label 0) vs disrupted images
      (label 1); ``forward(f_ref, f_dis)`` averages the cross-entropy over both.
    * ``odd_one_out``: ``forward(f_ref, f_d1, f_d2)`` averages :func:`odd_one_out_loss`.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "feature_dim": [*_POS_INT, None],
        "mode": [Options(("binary", "odd_one_out"))],
        "weight": [Interval(float, 0, math.inf, closed="left")],
        "temperature": [Interval(float, 0, math.inf, closed="neither")],
    }

    def __init__(
        self,
        feature_dim: int | None = None,
        mode: Literal["binary", "odd_one_out"] = "binary",
        weight: float = 1.0,
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"feature_dim": feature_dim, "mode": mode, "weight": weight, "temperature": temperature},
            owner=type(self).__name__,
        )
        if mode == "binary" and feature_dim is None:
            raise ValueError("DiSTinguishLoss: mode='binary' needs feature_dim (the size of its 2-way head's input)")
        self.mode, self.weight, self.temperature = mode, float(weight), float(temperature)
        self.head = nn.Linear(feature_dim, 2) if mode == "binary" and feature_dim is not None else None

    @property
    def needs(self) -> int:
        """How many disrupted views per reference the mode uses."""
        return 1 if self.mode == "binary" else 2

    def forward(self, f_ref: torch.Tensor, f_d1: torch.Tensor, f_d2: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "binary":
            if f_d2 is not None:
                raise ValueError("mode='binary' takes (f_ref, f_dis), not a third tensor")
            a, b = _check_features(f_ref, "f_ref"), _check_features(f_d1, "f_dis")
            if a.shape[1] != b.shape[1]:
                raise ValueError(f"f_ref and f_dis must have the same width, got {a.shape[1]} and {b.shape[1]}")
            assert self.head is not None
            logits = self.head(torch.cat([a, b]))
            target = torch.cat([torch.zeros(len(a), dtype=torch.long), torch.ones(len(b), dtype=torch.long)])
            return self.weight * F.cross_entropy(logits, target.to(logits.device))
        if f_d2 is None:
            raise ValueError("mode='odd_one_out' takes (f_ref, f_d1, f_d2)")
        return self.weight * odd_one_out_loss(f_ref, f_d1, f_d2, self.temperature).mean()


class DiSTinguishObjective(nn.Module):
    """``compute_loss(model, batch)`` for :func:`paperzoo.engine.fit`: cross-entropy on the
    batch plus :class:`DiSTinguishLoss` on disrupted versions of a fraction of it, generated on
    the fly (one disruptor per step, drawn uniformly from ``disruptors``; fresh permutations
    every step from the objective's own generator).

    The features are the input of ``layer`` of the model (default: its last ``nn.Linear``); the
    batch, the references and the disrupted images go through the model in one forward pass.
    Give ``objective.parameters()`` (the binary head) to the optimiser with the model's.

    Args:
        loss: the auxiliary loss.
        disruptors: objects with ``reference(x)``, ``__call__(x, generator)`` and
            ``triplet(x, generator)`` (e.g. :class:`FramedTileShuffle` with several grids).
        fraction: share of each batch that gets disrupted views.
        seed: seed of the disruption generator.
        layer: the module whose input is the feature.
    """

    def __init__(
        self,
        loss: DiSTinguishLoss,
        disruptors: Sequence[Any],
        fraction: float = 0.5,
        seed: int = 0,
        layer: nn.Module | str | None = None,
    ) -> None:
        super().__init__()
        validate_params(
            {"fraction": [Interval(float, 0, 1, closed="right")], "seed": _NONNEG_INT},
            {"fraction": fraction, "seed": seed},
            owner=type(self).__name__,
        )
        if not disruptors:
            raise ValueError("DiSTinguishObjective needs at least one disruptor")
        self.loss, self.disruptors, self.fraction, self.layer = loss, list(disruptors), float(fraction), layer
        self.generator = torch.Generator().manual_seed(int(seed))
        self.last_terms: dict[str, float] = {}

    def forward(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch[0], batch[1]
        n = len(x)
        m = max(1, int(round(self.fraction * n)))
        pick = int(torch.randint(len(self.disruptors), (1,), generator=self.generator))
        disruptor = self.disruptors[pick]
        sub = x[:m]
        ref = disruptor.reference(sub)
        if self.loss.needs == 1:
            views = [disruptor(sub, self.generator)]
        else:
            views = list(disruptor.triplet(sub, self.generator)[1:])
        target = _resolve_layer(model.module if hasattr(model, "module") else model, self.layer)
        cap = _InputCapture(target)
        try:
            logits = model(torch.cat([x, ref, *views]))
        finally:
            cap.remove()
        assert cap.value is not None
        feats = cap.value.reshape(cap.value.shape[0], -1)
        ce = F.cross_entropy(logits[:n], y)
        chunks = [feats[n + i * m : n + (i + 1) * m] for i in range(1 + len(views))]
        aux = self.loss(*chunks)
        self.last_terms = {"ce": float(ce.detach()), "aux": float(aux.detach())}
        return ce + aux


# --------------------------------------------------------------------------- cue-conflict shape bias
def phase_amplitude_swap(shape_images: torch.Tensor, texture_images: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Offline style-transfer proxy: the Fourier phase of ``shape_images`` with the Fourier
    amplitude of ``texture_images`` (per image and channel; the amplitude carries the second-order
    statistics, i.e. the texture and contrast, the phase carries the arrangement), real part,
    clipped to [0, 1]. Vectorised over the batch."""
    a = _check_images(shape_images, "shape_images")
    b = _check_images(texture_images, "texture_images")
    if a.shape != b.shape:
        raise ValueError(
            f"shape_images and texture_images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    # real input: the half spectrum (rfft2) holds everything and irfft2 returns the real part
    fa, fb = torch.fft.rfft2(a), torch.fft.rfft2(b)
    # unit phasor of the shape image (1 where its coefficient is 0, the phase being undefined)
    mag = fa.abs()
    phase = torch.where(mag == 0, torch.ones_like(fa), fa / mag.clamp_min(torch.finfo(a.dtype).tiny))
    out = torch.fft.irfft2(fb.abs() * phase, s=a.shape[-2:]).to(a.dtype)
    return out.clamp(0.0, 1.0) if clip else out


def shape_bias(predictions: Any, shape_labels: Any, texture_labels: Any) -> dict[str, float]:
    """Cue-conflict shape bias (Geirhos et al. 2019): among cue-conflict images whose shape and
    texture classes differ, ``shape decisions / (shape + texture decisions)``.

    Returns ``{"shape_bias", "shape_fraction", "texture_fraction", "n"}`` (fractions of all
    conflicting images; ``shape_bias`` is NaN when no decision matches either cue).
    """
    pred, s, t = (
        torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v)
        for v in (predictions, shape_labels, texture_labels)
    )
    check_labels(pred, len(pred), "predictions")
    if len(pred) == 0:
        raise ValueError("predictions is empty: it has 0 rows")
    check_labels(s, len(pred), "shape_labels")
    check_labels(t, len(pred), "texture_labels")
    conflict = s != t
    if not bool(conflict.any()):
        raise ValueError("no cue-conflict image: every shape label equals its texture label")
    p, s, t = pred[conflict], s[conflict], t[conflict]
    n_shape, n_tex = int((p == s).sum()), int((p == t).sum())
    n = int(conflict.sum())
    bias = n_shape / (n_shape + n_tex) if n_shape + n_tex else math.nan
    return {"shape_bias": bias, "shape_fraction": n_shape / n, "texture_fraction": n_tex / n, "n": float(n)}
