"""Paper-38 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the methods' settings, the two network settings sharing one protocol, the re-ID
metrics; and the full (slow) run."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p38_domainmix_generalizable_reid as p38


def test_registered_and_methods() -> None:
    assert available()[38] == "paperzoo.reproductions.p38_domainmix_generalizable_reid"
    assert p38.PAPER == 38 and set(p38.DATA) <= set(dataset_status())
    assert set(p38.SPEC) | {p38.PRETRAINED} == set(p38.BASE_METHODS[p38.EFFNET])
    assert set(p38.BASE_METHODS[p38.SCRATCH]) <= set(p38.BASE_METHODS[p38.EFFNET])
    assert len(set(p38.METHODS)) == len(p38.METHODS) == sum(len(v) for v in p38.BASE_METHODS.values())
    assert p38.row(p38.DOMAINMIX, p38.SCRATCH) == "DomainMix (scratch)"
    assert p38.SPEC[p38.SOURCE] == (True, None, False, None)
    assert p38.SPEC[p38.DOMAINMIX] == (True, "pseudo", True, None)


@pytest.mark.parametrize("smoke", [False, True])
def test_settings_share_the_protocol(smoke: bool) -> None:
    # the pools (hence the test images), sizes and schedule are the same; only the network's lr and width differ
    effnet, scratch = (asdict(p38.CONFIGS[smoke][s]) for s in (p38.EFFNET, p38.SCRATCH))
    differ = {k for k in effnet if effnet[k] != scratch[k]}
    assert differ <= {"lr", "width", "src_per_class", "tgt_per_class"}
    assert {k: effnet[k] for k in ("src_pool", "tgt_pool", "test_per_class")} == {
        k: scratch[k] for k in ("src_pool", "tgt_pool", "test_per_class")
    }
    assert scratch["width"] > 0


def test_scratch_model_outputs() -> None:
    cfg = p38.SMOKE_SCRATCH
    model = p38.make_model(p38.SCRATCH, cfg, 1, 7)
    feat, bn, logits = model(torch.rand(5, 1, 28, 28))
    assert feat.shape == bn.shape == (5, 128) and logits.shape == (5, 7)
    emb = model.embed(torch.rand(3, 1, 28, 28))
    assert model.training and torch.allclose(emb.norm(dim=1), torch.ones(3))
    assert not model.neck.bias.requires_grad


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
    assert result.table.methods == list(p38.METHODS) and len(result.claims) == 8
    # the pretrained-feature reference row does not depend on the seed
    assert len(set(result.table.values(p38.row(p38.PRETRAINED, p38.EFFNET), p38.MAP))) == 1
    assert all(len(runs) == 3 for runs in result.extra["rounds"].values())
