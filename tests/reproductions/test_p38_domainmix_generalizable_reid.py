"""Paper-38 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the methods' settings and the re-ID metrics; and the full
(slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p38_domainmix_generalizable_reid as p38


def test_registered_and_methods() -> None:
    assert available()[38] == "paperzoo.reproductions.p38_domainmix_generalizable_reid"
    assert p38.PAPER == 38 and set(p38.DATA) <= set(dataset_status())
    assert set(p38.SPEC) | {p38.PRETRAINED} == set(p38.METHODS)
    assert p38.SPEC[p38.SOURCE] == (True, None, False, None)
    assert p38.SPEC[p38.DOMAINMIX] == (True, "pseudo", True, None)


def test_mean_ap_and_rank1_closed_forms() -> None:
    q, qy = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    g, gy = torch.tensor([[0.9, 0.1], [0.0, 1.0], [0.7, 0.7]]), torch.tensor([1, 0, 0])
    # ranking: [1 (wrong), 3 (right), 2 (right)] -> AP = (1/2 + 2/3) / 2
    assert p38.mean_ap(q, qy, g, gy) == pytest.approx((0.5 + 2 / 3) / 2)
    emb = torch.eye(4).repeat_interleave(3, 0)
    res = p38.evaluate(emb, torch.arange(4).repeat_interleave(3), query_per_class=1)
    assert res == {p38.R1: 1.0, p38.MAP: 1.0}


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p38.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert result.table.methods == list(p38.METHODS) and len(result.claims) == 4
    # the untrained reference row does not depend on the seed
    assert len(set(result.table.values(p38.PRETRAINED, p38.MAP))) == 1
    assert all(len(runs) == 3 for runs in result.extra["rounds"].values())
