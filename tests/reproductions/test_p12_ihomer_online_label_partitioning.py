"""Paper-12 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the drifting label stream, the baselines' partitions, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paperzoo.data.label_stream import drifting_label_stream
from paperzoo.multilabel.ihomer import jaccard_matrix
from paperzoo.reproductions import available
from paperzoo.reproductions import p12_ihomer_online_label_partitioning as p12


def test_registered() -> None:
    assert available()[12] == "paperzoo.reproductions.p12_ihomer_online_label_partitioning"
    assert p12.PAPER == 12 and p12.DATA == () and p12.BUDGETS == ()
    assert p12.BR in p12.METHODS and p12.IHOMER in p12.METHODS and len(set(p12.METRICS)) == len(p12.METRICS)


def test_stream_groups_and_drift() -> None:
    s = drifting_label_stream(4000, drift_at=2000, seed=0)
    assert s.x.shape == (4000, 20) and s.x.dtype == np.float32 and s.y.shape == (4000, 16)
    assert np.bincount(s.groups_before).tolist() == [4] * 4 and np.bincount(s.groups_after).tolist() == [4] * 4
    overlap = np.zeros((4, 4), dtype=int)
    np.add.at(overlap, (s.groups_before, s.groups_after), 1)
    assert overlap.max() <= 2  # every group loses at least half its members at the drift
    for g_true, part in ((s.groups_before, slice(0, 2000)), (s.groups_after, slice(2000, 4000))):
        j = jaccard_matrix(s.y[part])
        same = g_true[:, None] == g_true[None, :]
        off = ~np.eye(16, dtype=bool)
        assert j[same & off].min() > j[~same].max()  # labels of a group co-occur more than across groups
    # 1 or 2 groups per instance: a label vector never spans more than 2 groups (before the drift)
    spans = np.array([len(np.unique(s.groups_before[np.flatnonzero(r)])) for r in s.y[:2000]])
    assert spans.max() <= 2 and (spans == 2).mean() == pytest.approx(0.5, abs=0.06)
    assert s.y.mean() == pytest.approx(0.8 * 1.5 / 4, abs=0.02)
    assert s.groups_at(1999) is s.groups_before and s.groups_at(2000) is s.groups_after


def test_stream_variants_and_seeds() -> None:
    a = drifting_label_stream(500, drift_at=250, seed=1)
    b = drifting_label_stream(500, drift_at=250, seed=1, input_drift=True)
    np.testing.assert_array_equal(a.y, b.y)  # the same labels, other features after the drift
    np.testing.assert_array_equal(a.x[:250], b.x[:250])
    assert not np.allclose(a.x[250:], b.x[250:])
    np.testing.assert_array_equal(a.x, drifting_label_stream(500, drift_at=250, seed=1).x)
    none = drifting_label_stream(300, drift_at=None, seed=0)
    assert none.drift_at == 300 and (none.groups_before == none.groups_after).all()
    with pytest.raises(ValueError, match="max_active"):
        drifting_label_stream(100, max_active=5, seed=0)
    with pytest.raises(ValueError, match="p_label"):
        drifting_label_stream(100, p_label=1.5, seed=0)
    with pytest.raises(ValueError, match="seed"):
        drifting_label_stream(100, seed=-1)


def test_static_and_random_partitions() -> None:
    s = drifting_label_stream(2000, drift_at=None, seed=0)
    part = p12.static_partition(s.y[:1000])
    assert sorted(np.concatenate(part).tolist()) == list(range(16))
    rnd = p12.random_partition(16, 4, 0)
    assert [len(c) for c in rnd] == [4] * 4 and sorted(np.concatenate(rnd).tolist()) == list(range(16))
    assert [c.tolist() for c in rnd] == [c.tolist() for c in p12.random_partition(16, 4, 0)]


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p12.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.parent == tmp_path / "12-ihomer-online-label-partitioning"
    assert result.table.methods == list(p12.METHODS) and len(result.claims) == 11
    assert set(result.extra["ari"]["label drift"]) == {"before", "end", "raw before", "raw end"}
