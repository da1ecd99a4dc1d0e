"""The one training loop, seeding, checkpoints, progress bars, distributed helpers, unit
runner and results writer that every reproduction composes.

Names are imported on first use, so a torch-free part (``paperzoo.engine.io``, the atomic
writes) can be used without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "plots": "paperzoo.engine.plots",
    **dict.fromkeys(["load_checkpoint", "save_checkpoint"], "paperzoo.engine.checkpoint"),
    **dict.fromkeys(
        ["gather_for_metric_loss", "init_distributed", "is_main_process", "rank", "world_size"],
        "paperzoo.engine.distributed",
    ),
    **dict.fromkeys(
        ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "save_figure"], "paperzoo.engine.io"
    ),
    **dict.fromkeys(["TrainConfig", "TrainHistory", "fit", "make_loader"], "paperzoo.engine.loop"),
    **dict.fromkeys(["limit_threads", "resolve_jobs", "run_units", "unit_threads"], "paperzoo.engine.parallel"),
    **dict.fromkeys(["progress", "progress_bar"], "paperzoo.engine.progress"),
    **dict.fromkeys(["Reproduction", "start"], "paperzoo.engine.reproduce"),
    **dict.fromkeys(["Claim", "Result", "Table", "Timer", "format_table", "summarize"], "paperzoo.engine.results"),
    **dict.fromkeys(["check_seeds", "seed_everything"], "paperzoo.engine.seed"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        return module if name == "plots" else getattr(module, name)
    raise AttributeError(f"module 'paperzoo.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
