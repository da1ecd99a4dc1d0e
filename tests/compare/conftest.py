"""Tiny ``.npz`` data sets for the comparison tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _blobs(n: int, seed: int, labels: tuple[int, ...] = (3, 7, 11, 20)) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, 2, 3) in Gaussian clusters, one per label (non-contiguous label ids)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)[np.arange(n) % len(labels)]
    centres = rng.normal(0.0, 3.0, size=(len(labels), 6))
    x = centres[np.arange(n) % len(labels)] + rng.normal(0.0, 1.0, size=(n, 6))
    return x.reshape(n, 2, 3).astype(np.float64), y.astype(np.int32)


@pytest.fixture
def blobs() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """``blobs(n, seed, labels=...)``: images (n, 2, 3) and int32 labels."""
    return _blobs


@pytest.fixture
def make_npz(tmp_path: Path) -> Callable[..., Path]:
    """``make_npz(name, **arrays)`` writes ``tmp_path/name.npz`` and returns its path."""

    def make(name: str = "blobs", **arrays: Any) -> Path:
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        return path

    return make
