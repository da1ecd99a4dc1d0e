"""The one progress bar (tqdm, on stderr), silenced with ``enabled=False`` or
``PAPERZOO_PROGRESS=0``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    iterable: Iterable[T],
    *,
    desc: str = "",
    total: int | None = None,
    enabled: bool = True,
    leave: bool = False,
) -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar unless disabled (also off on non-main ranks)."""
    from paperzoo.engine.distributed import is_main_process

    on = enabled and os.environ.get("PAPERZOO_PROGRESS", "1") != "0" and is_main_process()
    if not on:
        yield from iterable
        return
    yield from tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)
