"""The reproduction suite: every discovered reproduction's smoke run, checked the same way.

A new reproduction gets these tests by existing: it writes its files, fills one value per
seed per metric, derives its verdict from its claims, and gives bit-identical numbers with
two worker processes and with one (hence also for the same seed twice).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from paperzoo import catalog, reproductions
from paperzoo.engine import Result
from paperzoo.summaries import verdict_from_outcomes

from .conftest import skip_unless_data

NUMBERS = list(reproductions.available())
SEEDS = (0, 1)


@pytest.fixture(scope="module", params=NUMBERS, ids=[f"p{n:02d}" for n in NUMBERS])
def smoke(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Result]:
    module = reproductions.load(request.param)
    skip_unless_data(module)
    out = tmp_path_factory.mktemp(f"p{request.param:02d}")
    return module, module.run(smoke=True, seeds=SEEDS, out_dir=out, progress=False, jobs=1)


def test_module_contract(smoke: tuple[ModuleType, Result]) -> None:
    module, result = smoke
    paper = catalog.get(module.PAPER)
    assert result.paper == module.PAPER and result.key == paper.key and result.title == paper.title
    assert isinstance(module.DATA, tuple) and isinstance(module.BUDGETS, tuple)
    assert paper.record is not None, "a reproduction needs the paper's record in paperzoo.papers"


def test_writes_its_files(smoke: tuple[ModuleType, Result]) -> None:
    _, result = smoke
    assert result.json_path is not None and result.summary_path is not None and result.png_path is not None
    assert result.json_path.name == "result.smoke.json" and result.summary_path.name == "summary.smoke.json"
    assert result.png_path.name == "plot.smoke.png" and result.png_path.read_bytes()[:4] == b"\x89PNG"
    assert result.json_path.parent.name == result.key
    assert not list(result.json_path.parent.glob("*.tmp*"))
    full: dict[str, Any] = json.loads(result.json_path.read_text())
    summary: dict[str, Any] = json.loads(result.summary_path.read_text())
    assert {k: v for k, v in full.items() if k not in ("values", "extra")} == summary
    assert summary["budget"] == "smoke" and summary["seeds"] == list(SEEDS)


def test_one_value_per_seed_per_metric(smoke: tuple[ModuleType, Result]) -> None:
    _, result = smoke
    values = result.table.to_dict()
    assert list(values) == result.table.methods and result.table.methods
    for method, metrics in values.items():
        assert list(metrics) == result.table.metrics
        for metric, per_seed in metrics.items():
            assert len(per_seed) == len(SEEDS), (method, metric)
            assert all(isinstance(v, float) for v in per_seed)
    assert set(result.table.baselines) <= set(result.table.methods)


def test_verdict_follows_claims(smoke: tuple[ModuleType, Result]) -> None:
    _, result = smoke
    summary = result.summary()
    assert summary["claims"], "a reproduction states at least one claim"
    for claim in summary["claims"]:
        assert claim["n"] == len(SEEDS) and math.isfinite(claim["estimate"])
    assert summary["verdict"] == verdict_from_outcomes([c["outcome"] for c in summary["claims"]])


def test_two_jobs_give_the_same_numbers(smoke: tuple[ModuleType, Result], tmp_path: Path) -> None:
    module, result = smoke
    again = module.run(smoke=True, seeds=SEEDS, out_dir=tmp_path, progress=False, jobs=2)
    assert again.table.to_dict() == result.table.to_dict()
    assert [c.values for c in again.claims] == [c.values for c in result.claims]


def test_rejects_bad_arguments(smoke: tuple[ModuleType, Result], tmp_path: Path) -> None:
    module, _ = smoke
    with pytest.raises(ValueError, match="seed"):
        module.run(smoke=True, seeds=(), out_dir=tmp_path, progress=False, jobs=1)
    with pytest.raises(ValueError, match="budget"):
        module.run(smoke=False, seeds=(0,), out_dir=tmp_path, progress=False, jobs=1, budget="no-such-budget")
