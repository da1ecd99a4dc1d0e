"""An offline stand-in for an identity-labelled face set (MUFAC / MUCAC of Choi & Na, 2023,
"Towards Machine Unlearning Benchmarks: Forgetting the Personal Identities in Facial
Recognition Systems").

No face data set with identity labels ships offline, so each base image plays one *person*
and its ``views`` fixed random views play that person's photos: a shift by (dx, dy) in
{-1, 0, 1}^2 (``np.roll``), a contrast factor ~ U(0.8, 1.2) and additive N(0, noise^2) noise,
all drawn from ``numpy.random.default_rng(seed)`` in identity order. The task label is the
class of the base image (the digit, or the Fashion-MNIST class), which many identities share,
so, as with age groups or facial attributes, it does not depend on any single identity. A
model that memorises its training identities then fits their views better than those of
unseen identities: the signal the benchmark's membership-inference attack measures.

``task="multilabel"`` gives a MUCAC-like variant: three binary attributes derived from the
class (digits: ``y >= 5``, ``y`` even, ``y in {0, 6, 8, 9}``; Fashion-MNIST: upper-body
garment, footwear, ``y`` even).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paperzoo._validation import Interval, Options, validate_params

__all__ = ["IdentityProxy", "make_identity_proxy", "multilabel_attributes"]

_CONSTRAINTS = {
    "base": [Options(("digits", "fashion_mnist"))],
    "views": [Interval(int, 1, math.inf, closed="left")],
    "noise": [Interval(float, 0, math.inf, closed="left")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
    "task": [Options(("class", "multilabel"))],
    "n_identities": [None, Interval(int, 1, math.inf, closed="left")],
}

# attribute rules of the multi-label variant, as sets of base classes with the attribute
_ATTRIBUTES = {
    "digits": ((5, 6, 7, 8, 9), (0, 2, 4, 6, 8), (0, 6, 8, 9)),
    # upper-body garment (T-shirt, pullover, dress, coat, shirt), footwear (sandal, sneaker, boot), even class
    "fashion_mnist": ((0, 2, 3, 4, 6), (5, 7, 9), (0, 2, 4, 6, 8)),
}


@dataclass(frozen=True)
class IdentityProxy:
    """``x`` (N, 1, H, W) float32 views, ``y`` (N,) int64 class labels or (N, 3) {0, 1} float32
    attributes, ``identity`` (N,) int64 (the index of the base image), ``base_label`` (N,) the
    class of the base image. Rows are grouped by identity, identities in increasing order."""

    x: np.ndarray
    y: np.ndarray
    identity: np.ndarray
    base_label: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return len(self.identity)


def multilabel_attributes(labels: np.ndarray, base: str = "digits") -> np.ndarray:
    """The three binary attributes (N, 3) float32 of the multi-label variant for class ``labels``."""
    validate_params({"base": _CONSTRAINTS["base"]}, {"base": base}, owner="multilabel_attributes")
    labels = np.asarray(labels)
    return np.stack([np.isin(labels, group) for group in _ATTRIBUTES[base]], axis=1).astype(np.float32)


def _base_images(base: str) -> tuple[np.ndarray, np.ndarray]:
    if base == "digits":
        from paperzoo.data import load_digits

        images = load_digits()
    else:
        from paperzoo.data import load_fashion_mnist

        images = load_fashion_mnist("all")
    return np.asarray(images.x, dtype=np.float32), np.asarray(images.y, dtype=np.int64)


def make_identity_proxy(
    base: str = "digits",
    views: int = 20,
    noise: float = 0.35,
    seed: int = 0,
    task: str = "class",
    n_identities: int | None = None,
) -> IdentityProxy:
    """Build the identity proxy: every base image is one identity with ``views`` fixed views.

    Args:
        base: ``"digits"`` (scikit-learn's 1,797 8x8 digits, pixels in [0, 1]) or
            ``"fashion_mnist"`` (the 70,000 28x28 Fashion-MNIST images; pass ``n_identities``).
        views: photos per identity.
        noise: standard deviation of the additive Gaussian noise of each view.
        seed: seed of the views (and of the identity subsample).
        task: ``"class"`` (labels = the base class) or ``"multilabel"`` (three derived attributes).
        n_identities: keep this many base images, drawn at random with ``seed`` (kept in source
            order); ``None`` keeps all.

    Raises:
        ValueError: a parameter out of range, or ``n_identities`` above the number of base images.
    """
    params = {"base": base, "views": views, "noise": noise, "seed": seed, "task": task, "n_identities": n_identities}
    validate_params(_CONSTRAINTS, params, owner="make_identity_proxy")
    images, labels = _base_images(base)
    rng = np.random.default_rng(seed)
    if n_identities is not None:
        if n_identities > len(labels):
            raise ValueError(
                f"make_identity_proxy: n_identities must be at most {len(labels)} for base={base!r}, got {n_identities}"
            )
        keep = np.sort(rng.choice(len(labels), size=n_identities, replace=False))
        images, labels = images[keep], labels[keep]
    n, (c, h, w) = len(labels), images.shape[1:]
    shifts = rng.integers(-1, 2, size=(n, views, 2))
    contrast = rng.uniform(0.8, 1.2, size=(n, views)).astype(np.float32)
    eps = rng.normal(0.0, noise, size=(n, views, c, h, w)).astype(np.float32)

    out = np.empty((n, views, c, h, w), dtype=np.float32)
    for dy in (-1, 0, 1):  # nine shift groups, each rolled at once
        for dx in (-1, 0, 1):
            ids, vs = np.nonzero((shifts[..., 0] == dy) & (shifts[..., 1] == dx))
            out[ids, vs] = np.roll(images[ids], shift=(dy, dx), axis=(2, 3))
    out = out * contrast[:, :, None, None, None] + eps

    identity = np.repeat(np.arange(n, dtype=np.int64), views)
    base_label = np.repeat(labels, views)
    y = multilabel_attributes(base_label, base) if task == "multilabel" else base_label
    num_classes = 3 if task == "multilabel" else int(labels.max()) + 1
    return IdentityProxy(out.reshape(n * views, c, h, w), y, identity, base_label, num_classes)
