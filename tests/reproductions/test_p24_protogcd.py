"""Paper-24 (ProtoGCD) checks (the generic suite smoke-runs the reproduction): it reuses the SimGCD
reproduction's settings, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p00_simgcd_baseline as p00
from paperzoo.reproductions import p24_protogcd as p24


def test_registered_and_reuses_simgcd_settings() -> None:
    assert available()[24] == "paperzoo.reproductions.p24_protogcd"
    assert p24.PAPER == 24 and set(p24.DATA) <= set(dataset_status())
    assert p24.FULL == p00.FULL and p24.SMOKE == p00.SMOKE  # the SimGCD row is the baseline's computation
    assert len(p24._units((0, 1, 2), p24.FULL)) == 3 * 2 * 3


def test_protogcd_unit_on_a_digits_subsample() -> None:
    cfg = p00.SMOKE["digits"]
    out = p24.train_unit(("digits", p24.PROTOGCD, 0, cfg))
    assert set(out) == {"All", "Old", "New", "cos"} and 0.0 <= out["All"] <= 1.0
    assert -1.0 <= out["cos"] <= 1.0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p24.run(out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.is_file()
    assert result.table.mean(p24.PROTOGCD, "union30 All") > 0.0
    assert set(result.extra["prototype_cosine"]) == {
        f"{s} {m}" for s in p24.SETTINGS for m in (p24.PROTOGCD, p24.SIMGCD)
    }
