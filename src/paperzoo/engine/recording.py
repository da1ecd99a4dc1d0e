"""Committing a full reproduction's summary and figure as the paper's recorded result."""

from __future__ import annotations

from pathlib import Path

from paperzoo.engine.io import atomic_write_bytes, atomic_write_json
from paperzoo.engine.results import Result
from paperzoo.papers import results_dir


def record_result(result: Result, folder: Path | None = None) -> list[Path]:
    """Write ``result``'s summary and figure as ``NN-slug.json`` / ``NN-slug.png`` into the
    package's results folder (or ``folder``): the data the catalog, the README, the cards,
    ``paperzoo show`` and ``paperzoo report`` are generated from.

    Only a full run is recorded, and only into a source checkout (never into an installed
    package).
    """
    if result.budget is not None:
        raise ValueError(f"only a full run is recorded, not a {result.budget!r} run")
    if folder is None:
        folder = results_dir()
        if not (folder.parents[3] / "pyproject.toml").is_file():
            raise ValueError(f"{folder} is not inside a source checkout; pass a folder")
    target = folder / f"{result.key}.json"
    if result.summary_path is not None:
        written = [atomic_write_bytes(target, Path(result.summary_path).read_bytes())]
    else:
        written = [atomic_write_json(target, result.summary())]
    if result.png_path is not None:
        written.append(atomic_write_bytes(folder / f"{result.key}.png", Path(result.png_path).read_bytes()))
    return written
