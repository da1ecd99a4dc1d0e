"""Mosaic multi-label sets: labels are exactly the classes of the tiles, blanks are zero, the
train and test halves share no image, errors name the argument."""

import numpy as np
import pytest

from paperzoo.data import ImageSet
from paperzoo.data.multilabel import mosaic_multilabel, union30_mosaics


def _images(n_classes: int = 5, per_class: int = 4) -> ImageSet:
    y = np.repeat(np.arange(n_classes), per_class).astype(np.int64)
    # every image is constant, equal to (its index + 1) / 100: a tile identifies its source image
    x = ((np.arange(len(y)) + 1) / 100).astype(np.float32)[:, None, None, None] * np.ones((1, 1, 3, 3), np.float32)
    return ImageSet(x, y, [f"c{i}" for i in range(n_classes)], "toy")


def test_labels_are_the_tiles_classes() -> None:
    images = _images()
    ml = mosaic_multilabel(images, 50, grid=2, blank=0.3, seed=0)
    assert ml.x.shape == (50, 1, 6, 6) and ml.y.shape == (50, 5)
    assert ml.x.dtype == np.float32 and ml.y.dtype == np.int64
    for i in range(50):
        tiles = [ml.x[i, 0, r * 3, c * 3] for r in range(2) for c in range(2)]
        source = [int(round(v * 100)) - 1 for v in tiles if v > 0]
        assert source, "at least one tile is never blank"
        np.testing.assert_array_equal(np.flatnonzero(ml.y[i]), np.unique(images.y[source]))


def test_no_blank_and_determinism() -> None:
    a = mosaic_multilabel(_images(), 20, grid=3, blank=0.0, seed=3)
    b = mosaic_multilabel(_images(), 20, grid=3, blank=0.0, seed=3)
    assert (a.x > 0).all()
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)


@pytest.mark.parametrize(("kw", "name"), [({"n": 0}, "n"), ({"grid": 0}, "grid"), ({"blank": 1.0}, "blank")])
def test_bad_arguments(kw: dict, name: str) -> None:
    args = {"n": 4, "grid": 2, "blank": 0.25} | kw
    with pytest.raises(ValueError, match=name):
        mosaic_multilabel(_images(), args.pop("n"), seed=0, **args)


def test_union30_halves_are_disjoint(require_set, module_cache) -> None:
    for name in ("fashion-mnist", "mnist", "animal-mnist"):
        require_set(name)
    train, test = union30_mosaics(200, 100, per_class=20, seed=0)
    assert train.num_classes == test.num_classes == 30

    def tiles(s):
        return {
            t.tobytes()
            for t in s.x[:, 0].reshape(len(s), 2, 28, 2, 28).transpose(0, 1, 3, 2, 4).reshape(-1, 28, 28)
            if t.any()
        }

    assert not tiles(train) & tiles(test)
