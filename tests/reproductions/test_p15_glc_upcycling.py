"""Paper-15 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the OPDA digits proxy (class groups, disjoint halves, the shift) and the full
(slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p15_glc_upcycling as p15


def test_registered() -> None:
    assert available()[15] == "paperzoo.reproductions.p15_glc_upcycling"
    assert p15.PAPER == 15 and set(p15.DATA) <= set(dataset_status())
    assert len(p15.METRICS) == 6 and p15.METHODS[0] == p15.SRC


def test_digits_proxy_is_opda() -> None:
    d = p15.digits_domains(0)
    assert d.split.n_source_classes == 7 and d.split.n_shared == 4 and d.split.unknown_label == 7
    assert set(d.ys.tolist()) == set(range(7))
    assert set(d.yt.tolist()) == {0, 1, 2, 3, 7}
    assert d.xs.shape[1] == d.xt.shape[1] == 64
    # the target is shifted: brighter on average (offset 0.15, scale 0.8) and noisy
    assert float(d.xt.mean()) > float(d.xs.mean()) + 0.05
    # the two halves are disjoint images and change with the seed
    assert not torch.equal(p15.digits_domains(1).xs[:5], d.xs[:5])
    assert np.isclose(len(d.ys) + len(d.yt), 1797 * 0.7, rtol=0.1)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p15.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.methods == list(p15.METHODS) and len(result.claims) == 6
    for setting in p15.SETTINGS:
        assert all(c in (0.25, 0.5, 1.0, 2.0, 3.0) for c in result.extra["coeff"][setting])
