"""Independent units of work (a method on a seed, say) run in worker processes.

Each unit runs with a fixed number of torch / BLAS threads, one by default, whether it runs in
this process (``jobs=1``) or in a worker: the thread count changes floating-point reduction
order, so fixing it is what makes ``jobs=N`` give bit-identical numbers to ``jobs=1``. On a
shared 2-core machine one thread per process is also the fast choice (``paperzoo bench
threads`` measures it).

Environment overrides: ``PAPERZOO_JOBS`` (worker processes; default: the number of usable
cores) and ``PAPERZOO_THREADS`` (threads per unit; default 1).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, TypeVar

from paperzoo._validation import Interval, validate_params

U = TypeVar("U")
R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _positive_env(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


def resolve_jobs(jobs: int | None) -> int:
    """``jobs`` if given, else ``PAPERZOO_JOBS``, else the number of usable cores."""
    if jobs is None:
        jobs = _positive_env("PAPERZOO_JOBS") or available_cores()
    validate_params({"jobs": [Interval(int, 1, math.inf, closed="left")]}, {"jobs": jobs}, owner="paperzoo")
    return jobs


def unit_threads() -> int:
    """Threads per unit: ``PAPERZOO_THREADS`` or 1."""
    return _positive_env("PAPERZOO_THREADS") or 1


@contextmanager
def limit_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads and BLAS/OpenMP threads."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def _init_worker(threads: int) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    os.environ["PAPERZOO_PROGRESS"] = "0"  # one bar, the parent's
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def run_units(
    fn: Callable[[U], R],
    units: Sequence[U],
    *,
    jobs: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    desc: str = "units",
) -> list[R]:
    """``[fn(u) for u in units]``, in ``jobs`` worker processes, results in ``units`` order.

    ``fn`` must be a module-level function and each unit picklable (workers are spawned, so
    they import ``fn``'s module afresh); each unit must seed itself. With ``jobs=1`` (or one
    unit) everything runs in this process under the same thread limit.
    """
    from paperzoo.engine.progress import progress_bar

    jobs = min(resolve_jobs(jobs), max(1, len(units)))
    threads = threads or unit_threads()
    out: list[Any] = [None] * len(units)
    with progress_bar(total=len(units), desc=desc, enabled=progress) as bar:
        if jobs == 1:
            with limit_threads(threads):
                for i, unit in enumerate(units):
                    out[i] = fn(unit)
                    bar.update(1)
            return out
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            futures = {pool.submit(fn, unit): i for i, unit in enumerate(units)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
    return out
