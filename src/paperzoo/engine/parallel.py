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

import atexit
import math
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
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
    validate_params({"jobs": [Interval(int, 1, math.inf, closed="left")]}, {"jobs": jobs}, owner="resolve_jobs")
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


_POOLS: dict[tuple[Any, ...], ProcessPoolExecutor] = {}


def _pool(jobs: int, threads: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` spawned workers with ``threads`` threads each, kept for later calls.

    Spawning a worker costs seconds (it imports torch); reusing the pool makes the second and
    later runs of a process (a test session, several comparisons) pay it once. A pool is
    reused only for the same jobs, threads and ``PAPERZOO_*`` environment (workers read it at
    start-up); otherwise the old pool is shut down and a new one started.
    """
    key = (jobs, threads, tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("PAPERZOO_"))))
    if key not in _POOLS:
        _shutdown_pools()
        ctx = mp.get_context("spawn")
        _POOLS[key] = ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        )
    return _POOLS[key]


@atexit.register
def _shutdown_pools() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()


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
    they import ``fn``'s module afresh, and are kept for later calls: see :func:`_pool`); each
    unit must seed itself and leave no state that changes a later unit's result. With
    ``jobs=1`` (or one unit) everything runs in this process under the same thread limit.
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
        pool = _pool(jobs, threads)
        futures = {pool.submit(fn, unit): i for i, unit in enumerate(units)}
        try:
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
        except BrokenProcessPool:
            _shutdown_pools()
            raise
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return out
