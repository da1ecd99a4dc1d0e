"""Paper-39 checks (the generic suite, tests/reproductions/test_suite.py, smoke-runs every
reproduction): the domain transforms, the two tasks' splits, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperzoo.data import dataset_status
from paperzoo.reproductions import available
from paperzoo.reproductions import p39_domain_penalisation as p39


def test_registered() -> None:
    assert available()[39] == "paperzoo.reproductions.p39_domain_penalisation"
    assert p39.PAPER == 39 and set(p39.DATA) <= set(dataset_status())


def test_transforms() -> None:
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 4:24, 13:15] = 1.0  # a vertical bar
    assert torch.equal(p39.transform(x, "rotate", 0.0, 0), x)
    r90 = p39.transform(x, "rotate", 90.0, 0)
    assert float(r90[0, 0, 13:15, 4:24].mean()) > 0.9 and float(r90[0, 0, 4:24, 13:15].mean()) < 0.2  # now horizontal
    r45 = p39.transform(x, "rotate", 45.0, 0)
    assert float(r45.sum()) == pytest.approx(float(x.sum()), rel=0.05)  # rotation keeps the ink
    n1, n2 = p39.transform(x, "noise", 0.3, 5), p39.transform(x, "noise", 0.3, 5)
    assert torch.equal(n1, n2) and float((n1 - x).std()) == pytest.approx(0.3, rel=0.05)
    c = p39.transform(x, "contrast", 0.3, 0)
    assert float(c.min()) == pytest.approx(0.35) and float(c.max()) == pytest.approx(0.65)
    with pytest.raises(ValueError, match="kind must be"):
        p39.transform(x, "blur", 1.0, 0)


@pytest.fixture
def _data_installed() -> None:
    missing = [n for n in p39.DATA if not dataset_status().get(n, False)]
    if missing:
        pytest.skip(f"data sets {missing} are not installed")


@pytest.mark.usefixtures("_data_installed")
def test_rotated_digits_domains_are_disjoint_sized_and_seeded() -> None:
    cfg = p39.SMOKE
    data = p39.rotated_digits(cfg, seed=0)
    assert torch.bincount(data.d).tolist() == list(cfg.source_sizes)
    assert set(data.tests) == {n for n, *_ in p39.SOURCE_DOMAINS + p39.OOD_DOMAINS}
    assert all(len(y) == cfg.n_test for _, y in data.tests.values())
    upright = data.x[data.d == 0].reshape(-1, 784)
    test = data.tests["upright"][0].reshape(-1, 784)
    assert not (torch.cdist(upright, test).min(1).values < 1e-6).any()  # no test digit in training
    again, other = p39.rotated_digits(cfg, seed=0), p39.rotated_digits(cfg, seed=1)
    assert torch.equal(again.x, data.x) and not torch.equal(other.x, data.x)


@pytest.mark.usefixtures("_data_installed")
def test_three_domains_labels_and_sizes() -> None:
    cfg = p39.SMOKE
    data = p39.three_domains(cfg, seed=0)
    for k in range(3):
        labels = data.y[data.d == k]
        assert torch.equal(torch.bincount(labels - 10 * k, minlength=10), torch.full((10,), cfg.per_class[k]))
        _, yt = data.tests[p39.THREE_DOMAINS[k]]
        assert len(yt) == cfg.tri_test and int(yt.min()) >= 10 * k and int(yt.max()) < 10 * (k + 1)
    assert data.num_classes == 30


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    for name in p39.DATA:
        if not dataset_status().get(name, False):
            pytest.skip(f"{name} is not installed")
    result = p39.run(smoke=False, seeds=(0, 1, 2), out_dir=tmp_path, progress=False, jobs=2)
    assert len(result.claims) == 5 and result.verdict in ("holds", "does not hold", "inconclusive")
    weights = result.extra["weights"]["rotated"][p39.DP]
    assert all(run[0] == [1.0] * 6 for run in weights)  # first epoch is ERM
    assert result.elapsed_s < 600
