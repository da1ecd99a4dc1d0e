"""Shared fixtures of the reproduction tests: data needs declared once per reproduction
(its module's ``DATA``), skipped with the install command when missing."""

from __future__ import annotations

from types import ModuleType

import pytest


def skip_unless_data(module: ModuleType) -> None:
    """Skip the calling test when a data set the reproduction declares in ``DATA`` is missing."""
    from paperzoo.data import dataset_status

    status = dataset_status()
    missing = [name for name in getattr(module, "DATA", ()) if not status.get(name, False)]
    if missing:
        pytest.skip(f"data sets {missing} are not installed (run: python -m paperzoo data install)")


@pytest.fixture
def require_data() -> object:
    """``require_data(module)``: skip unless the reproduction's declared data are installed."""
    return skip_unless_data
