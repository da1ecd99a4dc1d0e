"""Paper-25 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the splits, the student shared by every method, the teacher unit, and the full
(slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperzoo.data import dataset_status
from paperzoo.reproductions import available, p25_dual_head_kd

from .conftest import skip_unless_data


def test_registered() -> None:
    assert available()[25] == "paperzoo.reproductions.p25_dual_head_kd"
    assert p25_dual_head_kd.PAPER == 25
    assert set(p25_dual_head_kd.DATA) <= set(dataset_status())


def test_digits_split_is_a_disjoint_seeded_60_40_split() -> None:
    a, b, c = (p25_dual_head_kd.digits_split(s) for s in (0, 0, 1))
    assert len(a.y_train) == 1078 and len(a.y_test) == 719
    assert np.array_equal(a.x_train, b.x_train) and not np.array_equal(a.x_train, c.x_train)
    train_rows = {r.tobytes() for r in a.x_train}
    # digits has a few duplicate images; the split itself is disjoint by index
    assert sum(r.tobytes() in train_rows for r in a.x_test) < 0.05 * len(a.y_test)
    assert set(np.unique(a.y_train)) == set(range(10))


def test_every_method_starts_from_the_same_student() -> None:
    cfg = p25_dual_head_kd.SMOKE
    torch.manual_seed(3)
    a = p25_dual_head_kd.build_student(64, cfg)
    torch.manual_seed(3)
    b = p25_dual_head_kd.build_student(64, cfg)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_teacher_unit_returns_training_logits() -> None:
    out = p25_dual_head_kd.teacher_unit(("digits", 0, p25_dual_head_kd.SMOKE))
    assert out["logits"].shape == (1078, 10) and 0.0 <= out["acc"] <= 1.0


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    skip_unless_data(p25_dual_head_kd)
    result = p25_dual_head_kd.run(out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.methods == list(p25_dual_head_kd.METHODS)
    assert len(result.claims) == 12
    teacher = result.extra["teacher_top1"]
    assert min(teacher["digits"]) > 0.9 and min(teacher["fmnist"]) > 0.75
