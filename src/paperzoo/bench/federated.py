"""``paperzoo bench federated``: what running through Flower costs over a plain loop doing the
same work.

The workload is FedAvg with 4 Dirichlet(0.5) clients of scikit-learn's digits for 3 rounds
(a 64-64-10 MLP, one local epoch of SGD per round, server-side evaluation after each round),
run three ways on the same data and seeds:

* ``plain loop``: :func:`paperzoo.federated.fedavg_reference`, no Flower;
* ``Flower, in process``: the Flower apps of :func:`paperzoo.federated.fedavg_apps` through
  :func:`paperzoo.federated.run_federation` (``backend="inprocess"``);
* ``Flower, simulation engine``: the same apps on Ray (``backend="simulation"``), start-up
  included (optional: it takes about a minute on 2 cores).

Everything runs with one torch thread (as each client actor of the simulation engine does). One
untimed round of the plain loop runs first, so that no way pays for torch's one-time set-up.
The first two must reach the same test accuracy (they compute the same thing); the report says
whether they do. Wall times depend on the machine and its load: reported, never asserted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["format_report", "run"]


def run(*, clients: int = 4, rounds: int = 3, simulation: bool = True, out: Path | None = None) -> dict[str, Any]:
    """Time the three ways (the simulation engine only with ``simulation``); write JSON to ``out``."""
    import torch
    from torch import nn

    from paperzoo.federated import fedavg_apps, fedavg_reference, run_federation
    from paperzoo.federated.apps import digits_federation

    data = digits_federation(clients, 0.5, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each client of the simulation engine (one CPU per actor) and each unit here

    def model_fn() -> nn.Module:
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    fedavg_reference(model_fn, data, rounds=1)  # warm-up: first optimiser and loader set-up, lazy imports
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    reference = fedavg_reference(model_fn, data, rounds=rounds)
    rows.append({"way": "plain loop", "wall_s": time.perf_counter() - start, "accuracy": reference.metric("accuracy")})
    backends = ["inprocess", "simulation"] if simulation else ["inprocess"]
    for backend in backends:
        server, client, history = fedavg_apps(model_fn, data, rounds=rounds)
        start = time.perf_counter()
        run_federation(server, client, clients, backend=backend)  # type: ignore[arg-type]
        wall = time.perf_counter() - start
        name = "Flower, in process" if backend == "inprocess" else "Flower, simulation engine"
        rows.append({"way": name, "wall_s": wall, "accuracy": history.metric("accuracy")})
    torch.set_num_threads(threads)
    base = rows[0]["wall_s"]
    for row in rows:
        row["ratio"] = row["wall_s"] / base
        row["same_result"] = row["accuracy"] == rows[0]["accuracy"]
    report = {"config": {"clients": clients, "rounds": rounds, "data": "digits", "model": "MLP 64-64-10"}, "rows": rows}
    if out is not None:
        from paperzoo.engine.io import atomic_write_json

        atomic_write_json(out, report)
    return report


def format_report(report: dict[str, Any]) -> Any:
    """A ``rich`` table: wall time, ratio to the plain loop, final accuracy, same result or not."""
    from rich.table import Table

    cfg = report["config"]
    table = Table(
        title=f"FedAvg, {cfg['clients']} clients x {cfg['rounds']} rounds ({cfg['model']} on {cfg['data']})",
        title_justify="left",
    )
    for col in ("way", "wall s", "x plain loop", "final accuracy", "same result as the loop"):
        table.add_column(col, justify="left" if col == "way" else "right")
    for r in report["rows"]:
        table.add_row(
            r["way"], f"{r['wall_s']:.2f}", f"{r['ratio']:.1f}x", f"{r['accuracy'][-1]:.4f}", str(r["same_result"])
        )
    return table
