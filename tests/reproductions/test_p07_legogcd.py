"""Paper-07 (LegoGCD) checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the settings are the SimGCD reproduction's, the objectives differ only by the two
LegoGCD terms, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperzoo.discovery.legogcd import DualViewKL, LocalEntropyRegularizer
from paperzoo.reproductions import available
from paperzoo.reproductions import p00_simgcd_baseline as p00
from paperzoo.reproductions import p07_legogcd as p07


def test_registered_and_reuses_the_simgcd_settings() -> None:
    assert available()[7] == "paperzoo.reproductions.p07_legogcd"
    cfgs = p07.configs(smoke=False)
    assert cfgs["digits"] == p00.FULL["digits"] and cfgs["union30"] == p00.FULL["union30"]
    assert cfgs["digits eps4"].memax_weight == 4.0 and cfgs["digits eps4"].epochs == p00.FULL["digits"].epochs
    assert len(p07._units((0, 1, 2), cfgs)) == 3 * 3 * 3


def test_objectives_differ_only_by_the_legogcd_terms() -> None:
    cfg = p07.configs(smoke=False)["union30"]
    lego, sim = p07.objective(cfg, p07.LEGO, 30), p07.objective(cfg, p07.SIMGCD, 30)
    assert len(sim.extra_terms) == 0 and sim.base.memax_weight == 2.0 and sim.base.lambda_sup == 0.35
    kinds = [type(t) for t in lego.extra_terms]
    assert kinds == [DualViewKL, LocalEntropyRegularizer]
    ler = lego.extra_terms[1]
    assert ler.n_old == 20 and ler.threshold == 0.7 and ler.weight == 2.0 and lego.extra_terms[0].weight == 0.65


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p07.run(out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.is_file()
    assert result.table.mean(p07.LEGO, "union30 All") > 0.0
    assert set(result.extra["forgetting"]) >= {"digits eps4 / LegoGCD", "digits eps4 / SimGCD"}
