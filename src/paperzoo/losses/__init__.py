"""Classification losses (``forward(logits, target, weight=None)``, on the base class
:class:`ClassificationLoss`) and metric losses (pytorch-metric-learning's call signature), one
file per loss.

Every name a loss module lists in its ``__all__`` is exported here, found by reading the
modules' source (no list to edit when a loss is added) and imported on first use, so
``import paperzoo.losses`` stays light.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path
from typing import Any


@cache
def _exports() -> dict[str, str]:
    """Exported name -> module, from the ``__all__`` of every module of this package."""
    out: dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = f"{__name__}.{path.stem}"
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
                for name in ast.literal_eval(node.value):
                    if name in out:
                        raise ImportError(f"{name} is exported by both {out[name]} and {module}")
                    out[name] = module
    return out


def __getattr__(name: str) -> Any:
    exports = _exports()
    if name in exports:
        return getattr(importlib.import_module(exports[name]), name)
    raise AttributeError(f"module 'paperzoo.losses' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_exports())


__all__ = sorted(_exports())
