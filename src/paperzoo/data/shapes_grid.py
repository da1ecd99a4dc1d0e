"""ShapesGridConcepts: a generated image set with known global and per-cell concepts.

A test bed for concept explanations in the setting of the Concept-Centric Transformers paper
(Hong, Park & Pavlic, WACV 2024): the structure of CUB-200-2011's part-localised attributes
(which concept is where) in images that take milliseconds to make. Each grey image is a grid of
square cells; a few objects sit in distinct random cells, each one of four shapes (filled
square, hollow square, plus, X) with a random intensity and a one-pixel jitter, plus Gaussian
noise. The class is the shape that occurs most often (draws with a tie are redrawn).

Concept annotations:

* global (``C = 4``): multi-hot of the shapes present in the image;
* spatial (``C_s = 4`` per cell, cells in row-major order, matching the patch tokens of a ViT
  whose patch is one cell): the one-hot shape of an occupied cell, a NaN row for an empty cell
  (no annotation there, as for CUB patches without a part).

Generation is vectorised (NumPy) and deterministic in ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from paperzoo._validation import Interval, validate_params

__all__ = ["SHAPES", "ShapesGridConcepts", "make_shapes_grid", "shape_templates"]

SHAPES: tuple[str, ...] = ("filled square", "hollow square", "plus", "X")


@dataclass
class ShapesGridConcepts:
    """A generated ShapesGrid set (tensors, ready for a ``TensorDataset``).

    Attributes:
        x: ``(N, 1, S, S)`` float32 images.
        y: ``(N,)`` int64 class = the most frequent shape.
        concepts: ``(N, 4)`` float32 multi-hot of the shapes present.
        spatial: ``(N, G*G, 4)`` float32 one-hot shape per occupied cell, NaN rows for empty cells.
        cells: ``(N, n_objects)`` int64 occupied cells (row-major).
        shapes: ``(N, n_objects)`` int64 shape of each object.
        grid: cells per side ``G``; ``cell``: pixels per cell side.
    """

    x: torch.Tensor
    y: torch.Tensor
    concepts: torch.Tensor
    spatial: torch.Tensor
    cells: torch.Tensor
    shapes: torch.Tensor
    grid: int
    cell: int

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_classes(self) -> int:
        return len(SHAPES)


def shape_templates(size: int) -> np.ndarray:
    """The four ``size x size`` binary shape masks ``(4, size, size)``: filled square, hollow
    square, plus (the middle rows / columns) and X (both diagonals)."""
    t = np.zeros((4, size, size), dtype=np.float32)
    t[0] = 1.0
    t[1] = 1.0
    t[1, 1:-1, 1:-1] = 0.0
    mid = slice((size - 1) // 2, size // 2 + 1)
    t[2, mid, :] = 1.0
    t[2, :, mid] = 1.0
    idx = np.arange(size)
    t[3, idx, idx] = 1.0
    t[3, idx, size - 1 - idx] = 1.0
    return t


def make_shapes_grid(
    n: int,
    seed: int = 0,
    *,
    grid: int = 4,
    cell: int = 8,
    n_objects: int = 3,
    noise: float = 0.05,
    jitter: int = 1,
) -> ShapesGridConcepts:
    """Generate ``n`` ShapesGrid images.

    Args:
        n: number of images.
        seed: NumPy seed of the generation.
        grid: cells per side (``grid**2`` cells, the spatial concept rows).
        cell: pixels per cell side (images are ``grid * cell`` pixels square); shapes are
            ``cell - 2 * jitter`` pixels, so a jittered shape stays inside its cell.
        n_objects: objects per image, in distinct cells (at least 1, at most ``grid**2``).
        noise: standard deviation of the additive Gaussian pixel noise.
        jitter: largest shift of a shape inside its cell, in pixels.
    """
    validate_params(
        {
            "n": [Interval(int, 1, math.inf, closed="left")],
            "seed": [Interval(int, 0, math.inf, closed="left")],
            "grid": [Interval(int, 1, math.inf, closed="left")],
            "cell": [Interval(int, 3, math.inf, closed="left")],
            "n_objects": [Interval(int, 1, math.inf, closed="left")],
            "noise": [Interval(float, 0, math.inf, closed="left")],
            "jitter": [Interval(int, 0, math.inf, closed="left")],
        },
        {"n": n, "seed": seed, "grid": grid, "cell": cell, "n_objects": n_objects, "noise": noise, "jitter": jitter},
        owner="make_shapes_grid",
    )
    if n_objects > grid * grid:
        raise ValueError(f"n_objects ({n_objects}) must be at most grid**2 ({grid * grid})")
    size = cell - 2 * jitter
    if size < 3:
        raise ValueError(f"cell - 2 * jitter must be at least 3 pixels, got {size}")
    rng = np.random.default_rng(seed)
    n_shapes = len(SHAPES)
    shapes_parts: list[np.ndarray] = []
    have = 0
    while have < n:  # draws with a tie for the most frequent shape are redrawn
        m = 2 * (n - have) + 16
        draw = rng.integers(0, n_shapes, size=(m, n_objects))
        counts = (draw[:, :, None] == np.arange(n_shapes)).sum(1)
        top = counts.max(1, keepdims=True)
        ok = (counts == top).sum(1) == 1
        shapes_parts.append(draw[ok])
        have += int(ok.sum())
    shapes = np.concatenate(shapes_parts)[:n]
    counts = (shapes[:, :, None] == np.arange(n_shapes)).sum(1)
    y = counts.argmax(1)
    cells = np.argsort(rng.random((n, grid * grid)), axis=1)[:, :n_objects]
    intensity = rng.uniform(0.5, 1.0, size=(n, n_objects)).astype(np.float32)
    shift = rng.integers(-jitter, jitter + 1, size=(n, n_objects, 2))

    side = grid * cell
    canvas = np.zeros((n, side, side), dtype=np.float32)
    templates = shape_templates(size)
    off = np.arange(size)
    top_left_r = (cells // grid) * cell + jitter + shift[..., 0]  # (n, k)
    top_left_c = (cells % grid) * cell + jitter + shift[..., 1]
    rows = top_left_r[:, :, None, None] + off[None, None, :, None]  # (n, k, size, 1)
    cols = top_left_c[:, :, None, None] + off[None, None, None, :]  # (n, k, 1, size)
    img = np.broadcast_to(np.arange(n)[:, None, None, None], (n, n_objects, size, size))
    rows, cols = np.broadcast_to(rows, img.shape), np.broadcast_to(cols, img.shape)
    canvas[img, rows, cols] = templates[shapes] * intensity[:, :, None, None]  # objects never overlap
    canvas += rng.normal(0.0, noise, size=canvas.shape).astype(np.float32)

    concepts = (counts > 0).astype(np.float32)
    spatial = np.full((n, grid * grid, n_shapes), np.nan, dtype=np.float32)
    spatial[np.arange(n)[:, None], cells] = np.eye(n_shapes, dtype=np.float32)[shapes]
    return ShapesGridConcepts(
        x=torch.from_numpy(canvas[:, None]),
        y=torch.from_numpy(y.astype(np.int64)),
        concepts=torch.from_numpy(concepts),
        spatial=torch.from_numpy(spatial),
        cells=torch.from_numpy(cells.astype(np.int64)),
        shapes=torch.from_numpy(shapes.astype(np.int64)),
        grid=grid,
        cell=cell,
    )
