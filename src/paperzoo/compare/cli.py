"""``paperzoo compare``: run methods of one task under one protocol, print the table, write
``result.json`` and ``plot.png``.

Registered by the main CLI as ``app.command("compare")(compare_command)``; heavy imports
happen inside the command, so registering it keeps ``paperzoo --help`` fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from paperzoo.compare import DEFAULT_MAX_TRAIN

__all__ = ["compare_command"]


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)  # logs and pipes: wide tables


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit status 2."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def _listing(task_names: list[str]) -> Any:
    """Tasks with their methods, then the built-in data and the .npz format."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from paperzoo.compare.data import BUILTIN_DATA
    from paperzoo.compare.registry import get_task, methods_of

    parts: list[Any] = []
    for name in task_names:
        task = get_task(name)
        table = Table(title=f"task {name}: {task.description}", title_justify="left")
        for col in ("method", "from", "description"):
            table.add_column(col)
        for m in methods_of(name).values():
            table.add_row(m.name, m.source, m.method.description)
        parts += [
            table,
            Text(
                f"budget: {task.default_budget} {task.budget_unit} (--{task.budget_unit}); a method builds {task.component}"
            ),
            Text(f"--noise r: {task.noise}"),
        ]
    data = Table(title="data (--data)", title_justify="left")
    data.add_column("name")
    data.add_column("description")
    for name, (_, description) in BUILTIN_DATA.items():
        data.add_row(name, description)
    data.add_row(
        "PATH.npz",
        "your data: x (N, ...) features, y (N,) integer labels or (N, C) multi-hot; optional x_test, y_test (else a "
        "seeded 80/20 split)",
    )
    return Group(*parts, data)


def compare_command(
    task: str | None = typer.Option(None, "--task", help="The task (see --list)."),
    methods: str | None = typer.Option(None, "--methods", help="comma-separated; default: all of the task"),
    data: str | None = typer.Option(None, "--data", help="A built-in data name or the path of a .npz."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Number of seeds (0..N-1)."),
    jobs: int | None = typer.Option(None, "--jobs", min=1, help="Worker processes (default: the usable cores)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Training epochs (tasks budgeted in epochs)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Training steps (tasks budgeted in steps)."),
    noise: float = typer.Option(
        0.0, "--noise", min=0.0, max=0.99, help="Label noise rate of the training labels (see --list per task)."
    ),
    max_train: int = typer.Option(
        DEFAULT_MAX_TRAIN, "--max-train", min=0, help="At most this many training samples; 0: all."
    ),
    out: Path = typer.Option(Path("results"), "--out", help="Results folder (writes compare/<task>-<data>/)."),
    list_: bool = typer.Option(False, "--list", help="list tasks, methods and data"),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Compare methods of one task on the same seeds, data, model and budget."""
    from paperzoo.compare.data import DataError
    from paperzoo.compare.registry import get_task, tasks
    from paperzoo.data import DatasetNotInstalledError

    try:
        the_task = get_task(task) if task is not None else None
    except KeyError as exc:
        _fail(exc.args[0])
    console = _console()
    if list_:
        console.print(_listing([task] if task is not None else list(tasks())))
        return
    if the_task is None or data is None:
        _fail(f"give --task ({', '.join(tasks())}) and --data (a built-in name or a .npz); --list shows them")
    for unit, value in (("epochs", epochs), ("steps", steps)):
        if value is not None and unit != the_task.budget_unit:
            _fail(f"task {the_task.name!r} is budgeted in {the_task.budget_unit}; use --{the_task.budget_unit}")
    from paperzoo.compare.runner import compare, select_methods

    names = None if methods is None else [m.strip() for m in methods.split(",") if m.strip()]
    try:
        select_methods(the_task.name, names)
    except KeyError as exc:
        _fail(exc.args[0])
    try:
        result = compare(
            the_task.name,
            data,
            names,
            seeds=range(seeds),
            budget=epochs if the_task.budget_unit == "epochs" else steps,
            max_train=max_train or None,
            noise=noise,
            jobs=jobs,
            progress=not no_progress,
        )
    except (DataError, DatasetNotInstalledError) as exc:
        _fail(str(exc))
    console.print(result.write(out).render())
