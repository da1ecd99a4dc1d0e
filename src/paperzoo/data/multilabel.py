"""Multi-label image sets built from single-label ones: ``grid x grid`` mosaics of tiles, each
tile an image of some class (or blank), labelled with the set of classes present.

The offline sets are single-label; a mosaic of the 30-class union is the multi-label analogue
of a scene with several objects (the image-level labels are the union of the tiles' classes).
Tiles of the training and the evaluation mosaics come from disjoint halves of each class's
images, so no image is seen in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from paperzoo._validation import Interval, validate_params
from paperzoo.data._sampling import check_seed, random_rank_within_class
from paperzoo.data.images import ImageSet, load_union30

__all__ = ["MultiLabelSet", "mosaic_multilabel", "union30_mosaics"]


@dataclass(frozen=True, eq=False)
class MultiLabelSet:
    """Images with multi-hot labels.

    Attributes:
        x: float32 (N, 1, H, W), values in [0, 1].
        y: int64 (N, C) in {0, 1}: ``y[i, c] = 1`` when class ``c`` is in image ``i``.
        class_names: one name per class.
        name: short name of the set.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    name: str

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return (
            f"MultiLabelSet(name={self.name!r}, n={len(self)}, image_shape={self.x.shape[1:]}, "
            f"num_classes={self.num_classes}, mean_labels={self.y.sum(1).mean():.2f})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def flat(self) -> np.ndarray:
        """The images as rows: float32 (N, H*W)."""
        return self.x.reshape(self.x.shape[0], -1)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``: float32 (N, 1, H, W) and int64 (N, C) tensors sharing memory with the arrays."""
        return torch.from_numpy(np.ascontiguousarray(self.x)), torch.from_numpy(np.ascontiguousarray(self.y))


_MOSAIC = {
    "n": [Interval(int, 1, math.inf, closed="left")],
    "grid": [Interval(int, 1, math.inf, closed="left")],
    "blank": [Interval(float, 0.0, 1.0, closed="left")],
}


def mosaic_multilabel(images: ImageSet, n: int, *, grid: int = 2, blank: float = 0.25, seed: int) -> MultiLabelSet:
    """``n`` mosaics of ``grid x grid`` tiles drawn from ``images``.

    Each tile is blank with probability ``blank`` (at least one tile per mosaic is not), else an
    image drawn uniformly from ``images``; the mosaic's labels are the classes of its tiles. With
    the default 2 x 2 grid and 30 classes a mosaic carries about 3.1 labels on average (1 to 4).
    Vectorised over mosaics and tiles.

    Raises:
        ValueError: ``n`` or ``grid`` not a positive int, ``blank`` outside [0, 1), or no images.
    """
    validate_params(_MOSAIC, {"n": n, "grid": grid, "blank": float(blank)}, owner="mosaic_multilabel")
    if len(images) == 0:
        raise ValueError("mosaic_multilabel: images is empty")
    rng = np.random.default_rng(check_seed(seed))
    tiles = grid * grid
    pick = rng.integers(0, len(images), size=(n, tiles))
    empty = rng.random((n, tiles)) < blank
    keep = rng.integers(0, tiles, size=n)  # one tile per mosaic is never blank
    empty[np.arange(n), keep] = False
    _, _, h, w = images.x.shape
    tile_x = np.where(empty[:, :, None, None], np.float32(0.0), images.x[pick, 0])  # (n, tiles, h, w)
    x = tile_x.reshape(n, grid, grid, h, w).transpose(0, 1, 3, 2, 4).reshape(n, 1, grid * h, grid * w)
    y = np.zeros((n, images.num_classes), dtype=np.int64)
    rows = np.repeat(np.arange(n), tiles)[~empty.ravel()]
    y[rows, images.y[pick].ravel()[~empty.ravel()]] = 1
    return MultiLabelSet(
        np.ascontiguousarray(x, dtype=np.float32), y, list(images.class_names), f"{images.name}-mosaic"
    )


def union30_mosaics(
    n_train: int, n_test: int, *, grid: int = 2, blank: float = 0.25, per_class: int = 1000, seed: int = 0
) -> tuple[MultiLabelSet, MultiLabelSet]:
    """Training and evaluation mosaics of the 30-class union (Fashion-MNIST, MNIST and
    Animal-MNIST, ``per_class`` images of each class): the tiles of the two sets come from
    disjoint halves of each class's images (a seeded split), so no image appears in both.

    Raises:
        DatasetNotInstalledError: one of the three image sets is missing.
    """
    images = load_union30(per_class, seed=0)
    rng = np.random.default_rng(check_seed(seed))
    rank = random_rank_within_class(images.y, rng)
    counts = np.bincount(images.y, minlength=images.num_classes)
    first_half = rank < counts[images.y] // 2
    train = mosaic_multilabel(images.subset(first_half), n_train, grid=grid, blank=blank, seed=seed)
    test = mosaic_multilabel(images.subset(~first_half), n_test, grid=grid, blank=blank, seed=seed + 1)
    return train, test
