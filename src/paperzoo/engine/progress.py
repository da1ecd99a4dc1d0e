"""The one progress bar (tqdm, on stderr), silenced with ``enabled=False`` or
``PAPERZOO_PROGRESS=0``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def _on(enabled: bool) -> bool:
    from paperzoo.engine.distributed import is_main_process

    return enabled and os.environ.get("PAPERZOO_PROGRESS", "1") != "0" and is_main_process()


def progress(
    iterable: Iterable[T],
    *,
    desc: str = "",
    total: int | None = None,
    enabled: bool = True,
    leave: bool = False,
) -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar unless disabled (also off on non-main ranks)."""
    if not _on(enabled):
        yield from iterable
        return
    yield from tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        """Nothing to show."""


@contextmanager
def progress_bar(*, total: int, desc: str = "", enabled: bool = True, leave: bool = True) -> Iterator[Any]:
    """A bar advanced by hand with ``bar.update(n)`` (a no-op object when disabled)."""
    if not _on(enabled):
        yield _NoBar()
        return
    with tqdm(total=total, desc=desc, leave=leave, dynamic_ncols=True) as bar:
        yield bar
