"""Small backbones, heads, and classical estimators.

Names are imported on first use, so importing one model module (``paperzoo.models.etf``) does not
pull in scikit-learn through the classical estimators.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MLP": "paperzoo.models.backbones",
    "ConvNet": "paperzoo.models.backbones",
    "CosineHead": "paperzoo.models.heads",
    "EmbeddingHead": "paperzoo.models.heads",
    "LinearHead": "paperzoo.models.heads",
    "SharedVarianceGaussianNB": "paperzoo.models.gaussian_nb",
    "TinyViT": "paperzoo.models.vit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'paperzoo.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
