"""Classification losses (``forward(logits, target, weight=None)``, on the base class
:class:`ClassificationLoss`) and metric losses (pytorch-metric-learning's call signature), one
file per loss.

Names are imported on first use, so ``import paperzoo.losses`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ClassificationLoss": "paperzoo.losses.base",
    "OneHotMSELoss": "paperzoo.losses.one_hot_mse",
    "ZLoss": "paperzoo.losses.zloss",
    "z_loss": "paperzoo.losses.zloss",
    "z_loss_from_stats": "paperzoo.losses.zloss",
    "spherical_stats": "paperzoo.losses.zloss",
    "SphericalLinear": "paperzoo.losses.spherical_linear",
    "MultiSimilarityLoss": "paperzoo.losses.multi_similarity",
    "multi_similarity_loss": "paperzoo.losses.multi_similarity",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'paperzoo.losses' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
