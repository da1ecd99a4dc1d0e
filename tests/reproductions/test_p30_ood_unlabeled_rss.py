"""Paper-30 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the settings, one unit's bookkeeping, the theory tolerance; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperzoo.reproductions import available
from paperzoo.reproductions import p30_ood_unlabeled_rss as p30


def test_registered() -> None:
    assert available()[30] == "paperzoo.reproductions.p30_ood_unlabeled_rss"
    assert p30.PAPER == 30 and p30.DATA == () and p30.BUDGETS == ()
    assert p30.ERM in p30.METHODS and p30.RSS in p30.METHODS


def test_full_settings_are_the_papers_grid() -> None:
    sets = p30.settings(p30.FULL)
    assert sets[:4] == [(10, 10, 0.0), (10, 100, 0.0), (10, 1000, 0.0), (10, 10_000, 0.0)]
    assert (10, 1000, 0.5) in sets and (10, 10_000, 0.5) in sets and (10, 10_000, 2.0) in sets
    assert (40, 400, 0.0) in sets and (40, 10_000, 0.0) in sets and len(set(sets)) == len(sets) == 9
    assert p30.FULL.d == 200 and p30.FULL.n_test == 20_000 and p30.FULL.steps == 300
    assert p30.theory_tol(20_000) == pytest.approx(5 * 0.5 / 20_000**0.5)


def test_unit_is_deterministic_and_consistent() -> None:
    unit = (10, 60, 0.5, 0, 0, p30.SMOKE)
    out = p30.run_unit(unit)
    assert out == p30.run_unit(unit)
    assert set(out["sim"]) == set(out["closed"]) == set(p30.METHODS)
    assert all(0.0 <= v <= 1.0 for v in out["sim"].values())
    # the labelled set does not depend on n or alpha: ERM is the same classifier across settings
    other = p30.run_unit((10, 20, 0.0, 0, 0, p30.SMOKE))
    assert other["closed"][p30.ERM] == out["closed"][p30.ERM]


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p30.run(seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.exists()
    assert len(result.claims) == 7
