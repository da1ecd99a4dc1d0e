"""Paper-51 specific checks of the reproduction (the shared ones are in test_suite.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from paperzoo.data.nota_episodes import NOTA, NOTAEpisodeSampler
from paperzoo.reproductions import p51_gpam_gaussian_prototype_adaptive_margin as p51


def test_nota_episodes_draw_nota_queries_from_classes_outside_the_episode() -> None:
    y = np.repeat(np.arange(9), 12)
    sampler = NOTAEpisodeSampler(y, n_way=4, k_shot=3, n_query=2, n_nota_way=2, n_episodes=30, seed=0)
    assert sampler.nota_rate == pytest.approx(2 / 6) and len(sampler) == 30
    episodes = list(sampler)
    for ep in episodes:
        assert y[ep.support_idx].tolist() == np.repeat(ep.classes, 3).tolist()
        known = ep.query_targets != NOTA
        assert y[ep.query_idx][known].tolist() == ep.classes[ep.query_targets[known]].tolist()
        assert set(y[ep.query_idx][~known].tolist()) == set(ep.nota_classes.tolist())
        assert not set(ep.nota_classes.tolist()) & set(ep.classes.tolist())
        assert len(set(ep.support_idx.tolist()) | set(ep.query_idx.tolist())) == 12 + 12  # all distinct
    again = list(NOTAEpisodeSampler(y, 4, 3, 2, 2, 30, 0))
    assert all(np.array_equal(a.query_idx, b.query_idx) for a, b in zip(episodes, again))


def test_nota_episode_sampler_needs_enough_classes() -> None:
    with pytest.raises(ValueError, match="n_way=7"):
        NOTAEpisodeSampler(
            np.repeat(np.arange(6), 10), n_way=5, k_shot=1, n_query=2, n_nota_way=2, n_episodes=1, seed=0
        )
    with pytest.raises(ValueError, match="n_nota_way"):
        NOTAEpisodeSampler(np.repeat(np.arange(6), 10), 2, 1, 2, -1, 1, 0)


def test_episode_metrics_of_perfect_and_blind_predictions() -> None:
    target = np.array([[0, 1, 2, NOTA, NOTA]])
    perfect = p51.episode_metrics(target, np.array([[0.0, 0, 0, 1, 1]]), target)
    assert all(v.tolist() == [1.0] for v in perfect.values())
    blind = p51.episode_metrics(np.full_like(target, NOTA), np.zeros((1, 5)), target)
    assert blind["known acc"][0] == 0 and blind["overall acc"][0] == pytest.approx(0.4)
    assert blind["NOTA F1"][0] == pytest.approx(2 * 2 / (2 * 2 + 3)) and blind["NOTA AUROC"][0] == 0.5


def test_threshold_search_finds_a_separating_threshold() -> None:
    target = np.array([[0, 1, NOTA, NOTA]])
    dmin = np.array([[1.0, 2.0, 5.0, 6.0]])
    t = p51.best_threshold(np.array([[0, 1, 0, 0]]), dmin, target)
    assert 2.0 < t <= 5.0


@pytest.mark.parametrize("setting", p51.SETTINGS)
def test_novel_classes_are_held_out_of_training(setting: str, require_data: Any) -> None:
    require_data(p51)
    split = p51.load_split(p51.SMOKE, setting)
    assert set(np.unique(split.y_test).tolist()) == set(p51.TEST_CLASSES)
    assert set(np.unique(split.y_train).tolist()) == set(range(30)) - set(p51.TEST_CLASSES)
    if setting == "scratch":  # raw images, the same classes and split
        assert split.x_train.shape[1:] == (1, 28, 28) and len(split.y_test) == 10 * p51.SMOKE.scratch_per_class
    else:
        assert split.x_train.shape[1:] == (1280,)
    with pytest.raises(ValueError, match="setting"):
        p51.load_split(p51.SMOKE, "imagenet")


def test_scratch_encoder_is_a_convnet_on_raw_images() -> None:
    net = p51._Net(None, "scratch", width=4)
    assert isinstance(net.head, p51.ConvNet) and net.embed(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    assert p51._Net(None, "effnet").embed(torch.rand(3, 1280)).shape == (3, 64)


def test_one_row_group_per_setting_and_claims_per_setting() -> None:
    assert p51.ROWS == tuple(f"{m} ({s})" for s in ("scratch", "effnet") for m in p51.METHODS)
    table = p51.Table(["acc"], p51.ROWS)
    for seed in range(2):
        for i, name in enumerate(p51.ROWS):
            table.add(name, seed, {"acc": float(i + seed)})
    sub = p51._sub_table(table, "effnet")
    assert sub.methods == list(p51.METHODS) and sub.baselines == [p51.PROTO]
    assert sub.values(p51.GPAM, "acc") == table.values("GPAM (effnet)", "acc") == [4.0, 5.0]


@pytest.mark.slow
def test_full_run(tmp_path: Path, require_data: Any) -> None:
    require_data(p51)
    result = p51.run(smoke=False, out_dir=tmp_path, progress=False, jobs=2)
    assert len(result.seeds) >= 3 and len(result.claims) == 12
    for setting in p51.SETTINGS:  # six claims per setting, each within one setting
        assert sum(c.statement.count(f"({setting})") == 2 for c in result.claims) == 6
    for name in p51.ROWS:
        assert 20.0 < result.table.mean(name, "overall acc 5-shot") <= 100.0
