"""``paperzoo bench threads``: how the thread count of a training run behaves on a small,
possibly shared machine.

Two workloads of the kind the reproductions run (a 784-256-10 MLP step on a batch of 256, as
in the #05 Fashion-MNIST task; a small ConvNet embedding step with the Multi-Similarity loss
on a 12 x 5 batch of 28 x 28 images, as in #28's union30 task), each timed as milliseconds
per training step:

* ``idle``: with 1 and with 2 torch intra-op threads, nothing else running;
* ``loaded``: the same while ``busy`` competing processes spin on the CPU (default: one per
  core but one, the situation of a shared 2-core machine running one other job);
* ``units``: the wall time of two identical units of ``unit_steps`` steps run as two worker
  processes with one thread each (what ``--jobs 2`` does, worker start-up included) against one
  after the other in this process with two threads, on the idle machine.

Wall-clock numbers depend on the machine and its load: they are reported, never asserted.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from paperzoo._validation import Interval, validate_params
from paperzoo.engine.parallel import available_cores, limit_threads, run_units

__all__ = ["WORKLOADS", "format_report", "run", "time_workload"]

_RUN_CONSTRAINTS = {
    "steps": [Interval(int, 1, math.inf, closed="left")],
    "unit_steps": [Interval(int, 1, math.inf, closed="left"), None],
    "busy": [Interval(int, 0, math.inf, closed="left"), None],
}


def _mlp_step_fn(seed: int = 0) -> Callable[[], None]:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(256, 784), torch.randint(0, 10, (256,))

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _convnet_ms_step_fn(seed: int = 0) -> Callable[[], None]:
    import torch
    from torch import nn

    from paperzoo.losses import MultiSimilarityLoss
    from paperzoo.models import ConvNet, EmbeddingHead

    torch.manual_seed(seed)
    model = nn.Sequential(ConvNet(1, 16, 128), nn.ReLU(), EmbeddingHead(128, 64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = MultiSimilarityLoss()
    x, y = torch.rand(60, 1, 28, 28), torch.arange(12).repeat_interleave(5)

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return step


WORKLOADS: dict[str, Callable[[int], Callable[[], None]]] = {
    "mlp 784-256-10, batch 256": _mlp_step_fn,
    "convnet + MS loss, 12x5 images": _convnet_ms_step_fn,
}


def time_workload(name: str, steps: int, threads: int) -> float:
    """Milliseconds per step of workload ``name`` with ``threads`` threads (after 2 warm-up steps)."""
    with limit_threads(threads):
        step = WORKLOADS[name](0)
        for _ in range(2):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - start) / steps * 1e3


def _unit(args: tuple[str, int]) -> float:
    """One unit of the ``units`` comparison: ``steps`` steps of a workload; its wall seconds."""
    name, steps = args
    step = WORKLOADS[name](0)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


@contextmanager
def _busy(n: int) -> Iterator[None]:
    """``n`` processes spinning on the CPU for the duration of the block (killed after)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.2 if n else 0.0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run(
    steps: int = 30, busy: int | None = None, unit_steps: int | None = None, out: Path | None = None
) -> dict[str, Any]:
    """Run the three comparisons for every workload (``unit_steps`` defaults to ``10 * steps``);
    write the report as JSON if ``out``."""
    import torch

    validate_params(
        _RUN_CONSTRAINTS, {"steps": steps, "unit_steps": unit_steps, "busy": busy}, owner="bench.threads.run"
    )
    cores = available_cores()
    busy = max(cores - 1, 1) if busy is None else busy
    unit_steps = 10 * steps if unit_steps is None else unit_steps
    rows = []
    for name in WORKLOADS:
        row: dict[str, Any] = {"workload": name}
        for threads in (1, 2):
            row[f"idle_{threads}t_ms"] = time_workload(name, steps, threads)
        with _busy(busy):
            for threads in (1, 2):
                row[f"loaded_{threads}t_ms"] = time_workload(name, steps, threads)
        start = time.perf_counter()
        run_units(_unit, [(name, unit_steps)] * 2, jobs=2, threads=1, progress=False)
        row["units_jobs2x1t_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with limit_threads(2):
            for _ in range(2):
                _unit((name, unit_steps))
        row["units_jobs1x2t_s"] = time.perf_counter() - start
        rows.append(row)
    report = {
        "config": {
            "steps": steps,
            "unit_steps": unit_steps,
            "busy_processes": busy,
            "cores": cores,
            "torch": torch.__version__.split("+")[0],
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
        },
        "rows": rows,
    }
    if out is not None:
        from paperzoo.engine.io import atomic_write_json

        atomic_write_json(out, report)
    return report


def format_report(report: dict[str, Any]) -> Any:
    """A ``rich`` table of the report: ms per step and the ratios that matter."""
    from rich.table import Table

    cfg = report["config"]
    table = Table(
        title=f"Threads benchmark: ms per training step ({cfg['steps']} steps), {cfg['cores']} cores, "
        f"loaded = {cfg['busy_processes']} spinning process(es); units = 2 runs of {cfg['unit_steps']} steps, idle",
        title_justify="left",
    )
    for col in (
        "workload",
        "idle 1t",
        "idle 2t",
        "loaded 1t",
        "loaded 2t",
        "loaded 2t/1t",
        "2 units: 2 jobs x 1t",
        "1 job x 2t",
    ):
        table.add_column(col, justify="right" if col != "workload" else "left")
    for r in report["rows"]:
        table.add_row(
            r["workload"],
            f"{r['idle_1t_ms']:.1f}",
            f"{r['idle_2t_ms']:.1f}",
            f"{r['loaded_1t_ms']:.1f}",
            f"{r['loaded_2t_ms']:.1f}",
            f"{r['loaded_2t_ms'] / r['loaded_1t_ms']:.2f}x",
            f"{r['units_jobs2x1t_s']:.2f} s",
            f"{r['units_jobs1x2t_s']:.2f} s",
        )
    return table
