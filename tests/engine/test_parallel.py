import math
import operator
import os
from functools import partial

import pytest
import torch

from paperzoo.engine import limit_threads, resolve_jobs, run_units, unit_threads


def test_results_come_back_in_unit_order_with_one_thread_and_no_bar_in_workers() -> None:
    units = [5, 3, 8, 1, 7]
    assert run_units(math.factorial, units, jobs=1, progress=False) == [math.factorial(u) for u in units]
    calls = [partial(math.factorial, u) for u in units] + [
        torch.get_num_threads,
        partial(os.getenv, "PAPERZOO_PROGRESS"),
    ]
    assert run_units(operator.call, calls, jobs=2, progress=False) == [math.factorial(u) for u in units] + [1, "0"]
    assert run_units(math.factorial, [], jobs=2, progress=False) == []
    before = torch.get_num_threads()
    assert run_units(operator.call, [torch.get_num_threads], jobs=1, progress=False) == [1]
    assert torch.get_num_threads() == before


def test_worker_errors_propagate() -> None:
    with pytest.raises(ValueError):
        run_units(math.factorial, [3, -1], jobs=2, progress=False)


def test_jobs_and_threads_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAPERZOO_JOBS", raising=False)
    monkeypatch.delenv("PAPERZOO_THREADS", raising=False)
    assert resolve_jobs(3) == 3 and resolve_jobs(None) >= 1 and unit_threads() == 1
    monkeypatch.setenv("PAPERZOO_JOBS", "4")
    monkeypatch.setenv("PAPERZOO_THREADS", "2")
    assert resolve_jobs(None) == 4 and resolve_jobs(1) == 1 and unit_threads() == 2
    monkeypatch.setenv("PAPERZOO_THREADS", "zero")
    with pytest.raises(ValueError, match="PAPERZOO_THREADS must be a positive integer"):
        unit_threads()
    for bad in (0, -2, True, 1.5):
        with pytest.raises(ValueError, match="jobs"):
            resolve_jobs(bad)  # type: ignore[arg-type]


def test_limit_threads_restores() -> None:
    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
