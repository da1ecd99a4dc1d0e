"""``paperzoo compare``: one protocol per task, many methods.

A task (:mod:`paperzoo.compare.tasks`) fixes the split, the model, the budget and the metrics;
its methods are its built-in baselines plus every :class:`paperzoo.papers.Method` that a paper's
record adds to it. :func:`compare` runs each method on the same seeds, so methods differ only in
the component they bring::

    from paperzoo.compare import compare
    result = compare("classification", "digits", ["ce", "mse", "zloss"], seeds=(0, 1, 2))
    result.write("results")  # results/compare/classification-digits/result.json + plot.png

Names are imported on first use, so importing this package (and its CLI) stays light. The
tasks are listed by :func:`paperzoo.compare.registry.tasks` (not re-exported here, where
``tasks`` is the subpackage of task modules).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Default cap on the training samples of a comparison (a seeded subsample).
DEFAULT_MAX_TRAIN = 10_000

_EXPORTS: dict[str, str] = {
    "Comparison": "paperzoo.compare.runner",
    "compare": "paperzoo.compare.runner",
    "Data": "paperzoo.compare.data",
    "DataError": "paperzoo.compare.data",
    "load_data": "paperzoo.compare.data",
    "Task": "paperzoo.compare.task",
    "get_task": "paperzoo.compare.registry",
    "methods_of": "paperzoo.compare.registry",
}

__all__ = ["DEFAULT_MAX_TRAIN", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'paperzoo.compare' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
