"""The one training loop, seeding, checkpoints, progress bars, distributed helpers and
results writer that every reproduction composes."""

from paperzoo.engine import plots
from paperzoo.engine.checkpoint import load_checkpoint, save_checkpoint
from paperzoo.engine.distributed import (
    gather_for_metric_loss,
    init_distributed,
    is_main_process,
    rank,
    world_size,
)
from paperzoo.engine.io import atomic_write_bytes, atomic_write_json, atomic_write_text, save_figure
from paperzoo.engine.loop import TrainConfig, TrainHistory, fit, make_loader
from paperzoo.engine.parallel import limit_threads, resolve_jobs, run_units, unit_threads
from paperzoo.engine.progress import progress, progress_bar
from paperzoo.engine.reproduce import Reproduction, start
from paperzoo.engine.results import Claim, Result, Table, Timer, format_table, summarize
from paperzoo.engine.seed import check_seeds, seed_everything

__all__ = [
    "Claim",
    "Reproduction",
    "Result",
    "Table",
    "TrainConfig",
    "TrainHistory",
    "Timer",
    "atomic_write_bytes",
    "check_seeds",
    "atomic_write_json",
    "atomic_write_text",
    "fit",
    "format_table",
    "gather_for_metric_loss",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "make_loader",
    "plots",
    "limit_threads",
    "progress",
    "progress_bar",
    "resolve_jobs",
    "run_units",
    "rank",
    "save_checkpoint",
    "save_figure",
    "seed_everything",
    "start",
    "summarize",
    "unit_threads",
    "world_size",
]
