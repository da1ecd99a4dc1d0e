"""Paper-03 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the digit-parity split, the schedule and the units; and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperzoo.reproductions import available
from paperzoo.reproductions import p03_concept_centric_transformers as p03


def test_registered() -> None:
    assert available()[3] == "paperzoo.reproductions.p03_concept_centric_transformers"
    assert p03.PAPER == 3 and p03.DATA == () and p03.BUDGETS == ()


def test_digit_parity_split() -> None:
    x_tr, p_tr, d_tr, x_te, p_te, d_te = p03.digits_parity(1000)
    assert x_tr.shape == (1000, 1, 8, 8) and x_te.shape == (797, 1, 8, 8)
    assert torch.equal(p_tr, d_tr % 2) and torch.equal(p_te, d_te % 2)
    assert set(d_tr.tolist()) == set(range(10)) and set(d_te.tolist()) == set(range(10))
    # a fixed split, the same for every seed, with no image in both parts
    again = p03.digits_parity.__wrapped__(1000)
    assert torch.equal(again[0], x_tr)
    train_rows = {tuple(r) for r in x_tr.flatten(1).numpy().round(4).tolist()}
    overlap = sum(tuple(r) in train_rows for r in x_te.flatten(1).numpy().round(4).tolist())
    assert overlap <= 5  # scikit-learn's digits hold a few exact duplicates, nothing more


def test_warmup_cosine_schedule() -> None:
    f = p03.warmup_cosine(100, 10)
    assert f(0) == 0.0 and f(5) == pytest.approx(0.5) and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0, abs=1e-12)
    values = [f(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_units_report_their_task_metrics() -> None:
    digits = p03.train_unit(("digits", p03.CCT, 0, p03.SMOKE_DIGITS))
    shapes = p03.train_unit(("shapes", p03.CT_OFF, 0, p03.SMOKE_SHAPES))
    assert set(digits) | set(shapes) == set(p03.METRICS) and not set(digits) & set(shapes)
    assert all(0.0 <= v <= 1.0 for k, v in {**digits, **shapes}.items() if "error" not in k)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p03.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.methods == list(p03.METHODS) and result.table.metrics == p03.METRICS
    assert len(result.claims) == 6
    # the robust finding at this budget: explanation supervision makes CT's attention match the concepts
    assert [c.outcome for c in result.claims[:2]] == ["holds"] * 2  # CT, ShapesGrid and digits
