"""Frozen pretrained features of the offline image sets, computed once and cached.

:func:`union30_effnet`: EfficientNet-Lite0 (ImageNet) features of the 30-class union
(:func:`paperzoo.data.load_union30`), the stronger setting of the discovery papers (a frozen
backbone with a trainable block on top stands in for their fine-tuned last ViT block). Imports
of torch and the network are lazy, so importing this module stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["FeatureSet", "union30_effnet"]


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Feature vectors with labels.

    Attributes:
        x: float32 (N, D) features.
        y: int64 (N,) labels ``0..C-1``.
        class_names: name of each class.
        name: the set's name.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def union30_effnet(max_per_class: int = 200, size: int = 64, seed: int = 0) -> FeatureSet:
    """Frozen EfficientNet-Lite0 features (N, 1280) of the 30-class union, labels 0..29 (Fashion-MNIST
    0-9, MNIST 10-19, Animal-MNIST 20-29).

    ``load_union30(max_per_class, seed)`` chooses the images; features come from
    :func:`paperzoo.models.pretrained.efficientnet_lite0_features` at ``size`` px with cache key
    ``union30-<max_per_class>`` (the cache file also carries a fingerprint of the images, so the
    features are computed once per choice of images and read back afterwards).

    Raises:
        paperzoo.data.DatasetNotInstalledError: one of the three image sets is missing.
        ImportError: the ``vision`` extra is missing.
    """
    from paperzoo._validation import Interval, validate_params

    validate_params(
        {
            "max_per_class": [Interval(int, 1, math.inf, closed="left")],
            "size": [Interval(int, 32, math.inf, closed="left")],
            "seed": [Interval(int, 0, math.inf, closed="left")],
        },
        {"max_per_class": max_per_class, "size": size, "seed": seed},
        owner="union30_effnet",
    )
    from paperzoo.data import load_union30
    from paperzoo.models.pretrained import efficientnet_lite0_features

    images = load_union30(max_per_class=max_per_class, seed=seed)
    feats = efficientnet_lite0_features(images.x, size=size, cache_key=f"union30-{max_per_class}")
    return FeatureSet(
        x=np.asarray(feats, dtype=np.float32),
        y=np.asarray(images.y, dtype=np.int64),
        class_names=list(images.class_names),
        name=f"union30-effnet-{max_per_class}",
    )
