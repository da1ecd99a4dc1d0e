"""Fixtures of the data tests: a cache folder per test module, and skips for missing sets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``PAPERZOO_CACHE`` at a fresh folder shared by the tests of one module, so each
    real set is decoded once per module and nothing is written to the user's cache."""
    folder = tmp_path_factory.mktemp("paperzoo-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAPERZOO_CACHE", str(folder))
        yield folder


@pytest.fixture
def require_set() -> Callable[[str], None]:
    """``require_set(name)`` skips the test when the image set ``name`` is not installed."""
    from paperzoo.data import dataset_status

    def require(name: str) -> None:
        if not dataset_status()[name]:
            pytest.skip(f"data set {name!r} is not installed (run: python -m paperzoo data install)")

    return require
