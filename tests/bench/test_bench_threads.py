"""Tests of ``paperzoo bench threads`` (``paperzoo.bench.threads``); the timings themselves
are machine-dependent and never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from paperzoo.bench import threads as bench


def test_workloads_train() -> None:
    for name, make in bench.WORKLOADS.items():
        step = make(0)
        step()
        assert bench.time_workload(name, 1, threads=1) > 0
    assert torch.get_num_threads() >= 1


def test_format_report() -> None:
    row = {"workload": "w", "idle_1t_ms": 1.0, "idle_2t_ms": 0.8, "loaded_1t_ms": 2.0, "loaded_2t_ms": 9.0}
    report = {
        "config": {"steps": 3, "unit_steps": 30, "busy_processes": 1, "cores": 2},
        "rows": [{**row, "units_jobs2x1t_s": 1.0, "units_jobs1x2t_s": 2.5}],
    }
    console = Console(record=True, width=200)
    console.print(bench.format_report(report))
    text = console.export_text()
    assert "4.50x" in text and "2.50 s" in text
    with pytest.raises(ValueError, match="steps"):
        bench.run(steps=0)


@pytest.mark.slow
def test_report_structure(tmp_path: Path) -> None:
    out = tmp_path / "threads.json"
    report = bench.run(steps=1, busy=1, unit_steps=2, out=out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert [r["workload"] for r in report["rows"]] == list(bench.WORKLOADS)
    for row in report["rows"]:
        for key in ("idle_1t_ms", "idle_2t_ms", "loaded_1t_ms", "loaded_2t_ms", "units_jobs2x1t_s", "units_jobs1x2t_s"):
            assert row[key] > 0
