"""Tests of ``paperzoo bench federated``: the in-process Flower run computes what the plain loop
computes; the Ray simulation engine is timed in the slow suite only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperzoo.bench import federated as bench


def test_in_process_flower_matches_the_plain_loop(tmp_path: Path) -> None:
    out = tmp_path / "federated.json"
    report = bench.run(clients=2, rounds=1, simulation=False, out=out)
    ways = [r["way"] for r in report["rows"]]
    assert ways == ["plain loop", "Flower, in process"]
    assert all(r["same_result"] for r in report["rows"])
    assert json.loads(out.read_text())["config"]["clients"] == 2
    assert "x plain loop" in [c.header for c in bench.format_report(report).columns]


@pytest.mark.slow
def test_four_clients_three_rounds_on_the_simulation_engine_within_two_minutes() -> None:
    report = bench.run(clients=4, rounds=3, simulation=True)
    simulated = report["rows"][-1]
    assert simulated["way"] == "Flower, simulation engine" and simulated["same_result"]
    assert simulated["wall_s"] < 120
