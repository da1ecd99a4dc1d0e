"""Shared checks of what a reproduction wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from paperzoo.engine import Result


def _read_written(result: Result) -> dict[str, Any]:
    """Check the JSON and PNG that ``result.write`` produced and return the JSON: the files
    exist with the smoke/full names, the JSON matches the Result, every metric of every row
    has one value per seed, and the verdict follows from the claims."""
    suffix = ".smoke" if result.smoke else ""
    assert result.json_path is not None and result.png_path is not None
    assert result.json_path.name == f"result{suffix}.json" and result.png_path.name == f"plot{suffix}.png"
    assert result.png_path.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(result.json_path.read_text())
    assert data["paper"] == result.paper and data["key"] == result.key and data["smoke"] is result.smoke
    assert data["seeds"] == result.seeds and data["metrics"] == result.metrics
    assert [r["method"] for r in data["rows"]] == [r.method for r in result.rows]
    for row in data["rows"]:
        assert set(row["values"]) >= set(data["metrics"])
        assert all(len(row["values"][m]) == len(result.seeds) for m in data["metrics"])
    assert data["verdict"] == Result.verdict_from_claims(result.claims)
    assert [c["held"] for c in data["claims"]] == [c.held for c in result.claims]
    return data


@pytest.fixture
def read_written() -> Callable[[Result], dict[str, Any]]:
    return _read_written
