"""One light, torch-free record per implemented paper, beside its recorded results.

A paper's record is the module ``paperzoo.papers.pNN_slug`` holding ``RECORD = Record(...)``:
what grows with the paper (summary, components, usage, the paper's headline result, the
methods it adds to ``paperzoo compare``). Records are discovered: adding a paper means adding
its module, never editing a list. The fixed identity of all 53 papers (number, slug, title,
year, family) is :mod:`paperzoo.catalog`'s table.

What a full reproduction measured is committed as data in ``results/NN-slug.json`` (the
summary written by ``paperzoo reproduce NN --record``) with its figure ``results/NN-slug.png``;
the catalog's ``measured`` column, the README table, the paper card's results block,
``paperzoo show`` and ``paperzoo report`` are generated from it.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["LossBench", "Method", "Record", "records", "recorded_result", "recorded_plot", "results_dir"]


@dataclass(frozen=True)
class Method:
    """A method a paper adds to ``paperzoo compare``.

    ``factory`` is ``"module:attribute"``, called with ``kwargs`` to build the component the
    task expects (a classification loss for ``classification``, a metric loss for
    ``retrieval``).
    """

    name: str
    task: str
    factory: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class LossBench:
    """A loss ``paperzoo bench losses`` times against its floor and, if any, its reference.

    ``ours`` and ``reference`` are ``"module:factory"`` paths of zero-argument callables
    returning a ``loss(x, y) -> scalar`` (a loss class with its defaults qualifies);
    ``kind`` is ``"classification"`` (logits (B, 1000), floor ``F.cross_entropy``),
    ``"multilabel"`` (logits (B, 1000) and multi-hot targets with 5 positives per row on average,
    floor ``F.binary_cross_entropy_with_logits``), ``"distillation"`` (student and teacher logits
    (B, 1000), floor ``F.cross_entropy`` to the teacher's softmax) or ``"metric"`` (embeddings (B, 128), 4 per
    class, floor: normalised B x B matmul + logsumexp). ``target_ratio``: our time must be at
    most this fraction of the reference's from batch ``target_min_batch`` on; ``floor_target``:
    at most this multiple of the floor's at B >= 4096 (e.g. 2 for a per-sample classification
    loss, 3 for a batch-level metric surrogate).
    """

    name: str
    kind: str
    ours: str
    reference: str | None = None
    reference_name: str | None = None
    target_ratio: float | None = None
    target_min_batch: int = 0
    floor_target: float | None = None
    notes: str = ""


@dataclass(frozen=True)
class Record:
    """What paperzoo offers for one paper (identity lives in the catalog)."""

    number: int
    summary: str
    components: tuple[str, ...]
    usage: str
    paper_result: str
    methods: tuple[Method, ...] = ()
    bench: tuple[LossBench, ...] = ()


def _module_number(name: str) -> int | None:
    if name.startswith("p") and name[1:3].isdigit() and name[3:4] == "_":
        return int(name[1:3])
    return None


@cache
def records() -> dict[int, Record]:
    """Paper number -> record, for every record module in this package."""
    out: dict[int, Record] = {}
    for info in pkgutil.iter_modules(__path__):
        number = _module_number(info.name)
        if number is None:
            continue
        record = getattr(importlib.import_module(f"{__name__}.{info.name}"), "RECORD", None)
        if not isinstance(record, Record):
            raise TypeError(f"{__name__}.{info.name} must define RECORD = Record(...)")
        if record.number != number:
            raise ValueError(f"{__name__}.{info.name} holds the record of paper {record.number}")
        out[number] = record
    return dict(sorted(out.items()))


def results_dir() -> Path:
    """The folder of the committed result summaries and figures (inside the package)."""
    return Path(str(resources.files(__name__) / "results"))


def recorded_result(key: str) -> dict[str, Any] | None:
    """The committed summary of paper ``key`` (``NN-slug``), or None."""
    path = results_dir() / f"{key}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def recorded_plot(key: str) -> Path | None:
    """The committed figure of paper ``key``, or None."""
    path = results_dir() / f"{key}.png"
    return path if path.is_file() else None
