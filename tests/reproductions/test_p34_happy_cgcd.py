"""Paper-34 (Happy, continual GCD) reproduction checks: the digits session problem and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.data import dataset_status
from paperzoo.reproductions import p34_happy_cgcd as p34


def test_registered() -> None:
    assert p34.PAPER == 34 and set(p34.DATA) <= set(dataset_status())


def test_digits_sessions() -> None:
    prob = p34.make_problem(p34.FULL["digits"], seed=0)
    s = prob.sessions
    assert s.n_old == 4 and s.session_classes == ((4, 5), (6, 7), (8, 9))
    assert set(prob.y[s.stage0_idx]) == set(range(4))
    counts = np.bincount(prob.y[s.session_idx[2]], minlength=10)
    np.testing.assert_array_equal(counts, [20] * 8 + [100] * 2)
    assert set(prob.y_test[s.test_idx[0]]) == set(range(6)) and len(prob.y_test) + len(prob.y) == 1797


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p34.run(out_dir=tmp_path, progress=False, jobs=2)
    assert len(result.claims) == 5 and result.table.seeds(p34.HAPPY) == [0, 1, 2]
