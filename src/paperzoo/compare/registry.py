"""Discovery: the tasks (modules of :mod:`paperzoo.compare.tasks`) and the methods of each task
(its built-in baselines, then every :class:`~paperzoo.papers.Method` for that task, or for a task
it names in ``shares_methods_of``, in the paper records, in paper order). Later papers add
methods by listing them in their record only."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache

import paperzoo.compare.tasks as _tasks_package
from paperzoo.compare.task import Task
from paperzoo.papers import Method, records

__all__ = ["TaskMethod", "get_task", "methods_of", "tasks"]


@dataclass(frozen=True)
class TaskMethod:
    """A method of a task and where it comes from (``"baseline"`` or ``"paper NN"``)."""

    method: Method
    source: str

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def is_baseline(self) -> bool:
        return self.source == "baseline"


@cache
def tasks() -> dict[str, Task]:
    """Task name -> task, for every module of :mod:`paperzoo.compare.tasks` (``_`` modules skipped)."""
    found: dict[str, Task] = {}
    for info in pkgutil.iter_modules(_tasks_package.__path__):
        if info.name.startswith("_"):
            continue
        module = f"{_tasks_package.__name__}.{info.name}"
        task = getattr(importlib.import_module(module), "TASK", None)
        if not isinstance(task, Task):
            raise TypeError(f"{module} must define TASK, an instance of paperzoo.compare.task.Task")
        if task.name in found:
            raise ValueError(f"{module} defines task {task.name!r} a second time")
        found[task.name] = task
    return dict(sorted(found.items()))


def get_task(name: str) -> Task:
    """The task called ``name``; a ``KeyError`` naming the tasks that exist otherwise."""
    known = tasks()
    if name not in known:
        raise KeyError(f"unknown task {name!r}; tasks: {', '.join(known)}")
    return known[name]


@cache
def methods_of(task_name: str) -> dict[str, TaskMethod]:
    """Method name -> method of task ``task_name``: its baselines, then the paper records' methods.

    Raises:
        ValueError: two methods of the task share a name.
    """
    task = get_task(task_name)
    shared = (task_name, *getattr(task, "shares_methods_of", ()))
    entries = [TaskMethod(m, "baseline") for m in task.baselines]
    entries += [
        TaskMethod(m, f"paper {number:02d}")
        for number, record in records().items()
        for m in record.methods
        if m.task in shared
    ]
    out: dict[str, TaskMethod] = {}
    for entry in entries:
        if entry.name in out:
            raise ValueError(
                f"task {task_name!r} has two methods called {entry.name!r} ({out[entry.name].source}, {entry.source})"
            )
        out[entry.name] = entry
    return out
