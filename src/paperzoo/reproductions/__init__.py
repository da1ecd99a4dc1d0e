"""Scaled-down reproductions, one module per paper: ``pNN_slug.py`` exposing ``PAPER`` (the
paper's number), ``DATA`` (the offline image sets it needs), ``BUDGETS`` (its reduced budgets
besides ``"smoke"``) and ``run(smoke=False, seeds=(0, 1, 2), out_dir="results", progress=True,
jobs=None, budget=None) -> paperzoo.engine.Result``, built on :func:`paperzoo.engine.start`.
Nothing else lives here; modules are discovered, no list to edit."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType


@cache
def available() -> dict[int, str]:
    """Paper number -> module path of every reproduction in this package (scanned once)."""
    out: dict[int, str] = {}
    for info in pkgutil.iter_modules(__path__):
        name = info.name
        if name.startswith("p") and name[1:3].isdigit() and name[3:4] == "_":
            out[int(name[1:3])] = f"{__name__}.{name}"
    return dict(sorted(out.items()))


def load(number: int) -> ModuleType:
    """The reproduction module of paper ``number``."""
    mods = available()
    if number not in mods:
        have = ", ".join(str(n) for n in mods) or "none"
        raise KeyError(f"paper {number} has no reproduction yet (available: {have})")
    return importlib.import_module(mods[number])
