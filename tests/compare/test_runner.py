"""Comparisons end to end: same protocol for every method, tables, files, parallel units."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from paperzoo.compare import DataError, compare, get_task, load_data
from paperzoo.compare.task import Setting
from paperzoo.compare.tasks.classification import ClassificationTask


def _in_unit_interval(values: dict[str, dict[str, list[float]]]) -> bool:
    return all(0.0 <= v <= 1.0 for per_metric in values.values() for vs in per_metric.values() for v in vs)


def test_classification_on_digits_writes_table_json_and_png(tmp_path: Path) -> None:
    result = compare(
        "classification",
        "digits",
        ["ce", "mse", "zloss"],
        seeds=(0, 1),
        budget=1,
        max_train=400,
        jobs=1,
        progress=False,
    )
    table = result.table
    assert table.methods == ["ce", "mse", "zloss"] and table.baselines == ["ce", "mse"]
    assert table.metrics == ["top-1", "macro-F1", "top-3"]  # 10 classes: top-3 too
    assert _in_unit_interval(table.to_dict()) and table.mean("ce", "top-3") >= table.mean("ce", "top-1")
    assert result.split == "400 training / 360 test samples (a seeded stratified 80/20 split)"
    assert result.budget == "1 epoch, at most 400 training samples"

    result.write(tmp_path)
    folder = tmp_path / "compare" / "classification-digits"
    assert result.json_path == folder / "result.json" and result.png_path == folder / "plot.png"
    assert result.png_path.read_bytes()[:4] == b"\x89PNG"
    saved = json.loads(result.json_path.read_text())
    assert (saved["task"], saved["data"]["name"], saved["seeds"], saved["jobs"]) == (
        "classification",
        "digits",
        [0, 1],
        1,
    )
    assert saved["budget"]["epochs"] == 1 and saved["budget"]["max_train"] == 400
    assert saved["values"] == table.to_dict() and saved["summary"]["zloss"]["top-1"]["n"] == 2
    assert [m["source"] for m in saved["methods"]] == ["baseline", "baseline", "paper 05"]
    assert saved["methods"][2]["kwargs"] == {"a": 1.0, "b": 1.0}


def test_npz_without_test_split(make_npz: Callable[..., Path], blobs: Callable[..., Any]) -> None:
    x, y = blobs(100, 0)
    result = compare("classification", str(make_npz(x=x, y=y)), ["ce"], seeds=(0,), budget=30, jobs=1, progress=False)
    assert result.table.metrics == ["top-1", "macro-F1"]  # 4 classes: no top-3
    assert result.split == "80 training / 20 test samples (a seeded stratified 80/20 split)"
    assert result.data.name == "blobs" and result.table.mean("ce", "top-1") > 0.5


def test_npz_with_test_split(make_npz: Callable[..., Path], blobs: Callable[..., Any]) -> None:
    labels = (1, 2, 3, 4, 5)
    (x, y), (xt, yt) = blobs(60, 0, labels), blobs(25, 0, labels)
    path = make_npz("given", x=x, y=y, x_test=xt, y_test=yt)
    result = compare("classification", str(path), ["ce", "mse"], seeds=(0, 1), budget=2, jobs=1, progress=False)
    assert result.table.metrics == ["top-1", "macro-F1", "top-3"]
    assert result.split == "60 training / 25 test samples (the data's own test split)"


def test_jobs_2_gives_the_numbers_of_jobs_1() -> None:
    kwargs: dict[str, Any] = {"seeds": (0, 1), "budget": 1, "max_train": 300, "progress": False}
    one = compare("classification", "digits", ["ce", "zloss"], jobs=1, **kwargs)
    two = compare("classification", "digits", ["ce", "zloss"], jobs=2, **kwargs)
    assert two.jobs == 2 and one.table.to_dict() == two.table.to_dict()


def test_retrieval_on_digits() -> None:
    result = compare(
        "retrieval", "digits", ["contrastive", "triplet", "ms"], seeds=(0,), budget=3, jobs=1, progress=False
    )
    assert result.table.methods == ["contrastive", "triplet", "ms"] and result.table.metrics == ["R@1", "MAP@R"]
    assert _in_unit_interval(result.table.to_dict())
    split = get_task("retrieval").split(load_data("digits"), 0, Setting(3, 500))
    assert split.y_train.unique().tolist() == [0, 1, 2, 3, 4] and split.y_test.unique().tolist() == [5, 6, 7, 8, 9]
    assert len(split.y_train) == 500


def test_every_method_starts_from_the_seeds_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Untrained, every method evaluates the same model: the initialisation depends on the seed only."""
    monkeypatch.setattr(ClassificationTask, "train", lambda self, *args: None)
    values = compare("classification", "digits", seeds=(0, 1), jobs=1, progress=False).table.to_dict()
    assert values["ce"] == values["mse"] == values["zloss"]
    assert values["ce"]["top-1"][0] != values["ce"]["top-1"][1]


def test_the_split_depends_on_the_seed_only() -> None:
    task, data = get_task("classification"), load_data("digits")
    a, b, c = (task.split(data, seed, Setting(1, 200)) for seed in (0, 0, 1))
    assert np.array_equal(a.x_train.numpy(), b.x_train.numpy()) and not np.array_equal(a.x_train, c.x_train)


def test_what_cannot_run_is_refused() -> None:
    with pytest.raises(DataError, match="iris: key 'y' holds 3 classes; retrieval needs at least 4"):
        compare("retrieval", "iris", progress=False)
    with pytest.raises(KeyError, match="unknown method ms for task 'classification'; methods: ce, mse, zloss"):
        compare("classification", "iris", ["ce", "ms"], progress=False)


def _multihot(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features whose first 4 columns say which of 4 labels are on (plus noise)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < 0.4).astype(np.int64)
    x = np.concatenate([2.0 * y + rng.normal(0, 0.5, (n, 4)), rng.normal(size=(n, 4))], axis=1)
    return x, y


def test_multilabel_on_npz(make_npz: Callable[..., Path]) -> None:
    x, y = _multihot(300, 0)
    path = make_npz("tags", x=x, y=y)
    result = compare("multilabel", str(path), ["bce"], seeds=(0, 1), budget=20, jobs=1, progress=False)
    assert result.table.metrics == ["mAP", "micro-F1", "macro-F1"]
    assert result.split.startswith("240 training / 60 test samples (a seeded 80/20 split)")
    assert result.table.mean("bce", "mAP") > 0.9  # the labels are linearly readable
    with pytest.raises(DataError, match="multi-hot \\(N, C\\); use --task multilabel"):
        compare("classification", str(path), progress=False)
    with pytest.raises(DataError, match="multilabel needs multi-hot"):
        compare("multilabel", "iris", progress=False)


def test_noise_flips_training_labels_only() -> None:
    task, data = get_task("classification"), load_data("digits")
    clean, noisy = task.split(data, 0, Setting(1, None)), task.split(data, 0, Setting(1, None, 0.4))
    flipped = float((clean.y_train != noisy.y_train).double().mean())
    assert 0.35 < flipped < 0.45 and np.array_equal(clean.y_test, noisy.y_test)
    again = task.split(data, 0, Setting(1, None, 0.4))
    assert np.array_equal(noisy.y_train, again.y_train)
    with pytest.raises(ValueError, match="noise rate must lie in \\[0, 1\\)"):
        Setting(1, None, 1.0)


def test_multilabel_noise_hides_positives(make_npz: Callable[..., Path]) -> None:
    x, y = _multihot(500, 1)
    data, task = load_data(str(make_npz("tags", x=x, y=y))), get_task("multilabel")
    clean, noisy = task.split(data, 0, Setting(1, None)), task.split(data, 0, Setting(1, None, 0.5))
    assert bool((noisy.y_train <= clean.y_train).all())  # positives hidden, none invented
    kept = float(noisy.y_train.sum() / clean.y_train.sum())
    assert 0.4 < kept < 0.6 and np.array_equal(clean.y_test, noisy.y_test)


def test_noise_is_recorded(tmp_path: Path) -> None:
    result = compare("classification", "iris", ["ce"], seeds=(0,), budget=1, noise=0.2, jobs=1, progress=False)
    assert result.budget == "1 epoch, at most 10,000 training samples, label noise 0.2"
    saved = json.loads(result.write(tmp_path).json_path.read_text())  # type: ignore[union-attr]
    assert saved["budget"]["noise"] == 0.2 and "other class" in saved["noise"]
    from rich.console import Console

    console = Console(width=240, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(result.render())
    assert (
        "label noise 0.2: each training label is replaced, with probability 0.2, by a uniformly random other class"
        in (console.export_text())
    )


def test_episode_accuracy_is_exact_on_separated_embeddings() -> None:
    from paperzoo.compare.tasks.fewshot import episode_accuracies

    labels = torch.arange(8).repeat_interleave(20)
    emb = torch.nn.functional.one_hot(labels, 8).double() + 0.01 * torch.randn(
        160, 8, generator=torch.Generator().manual_seed(0)
    )
    acc = episode_accuracies(emb, labels, n_way=5, k_shot=1, n_query=15, episodes=50, seed=0)
    assert acc.shape == (50,) and (acc == 1.0).all()
    chance = episode_accuracies(
        torch.randn(160, 8, generator=torch.Generator().manual_seed(1)), labels, 5, 1, 15, 200, 0
    )
    assert 0.1 < chance.mean() < 0.3  # 1 / 5 by chance


def test_fewshot_task_runs_the_retrieval_methods() -> None:
    from paperzoo.compare.registry import methods_of

    assert set(methods_of("retrieval")) <= set(methods_of("fewshot"))
    result = compare("fewshot", "digits", ["contrastive"], seeds=(0,), budget=20, jobs=1, progress=False)
    assert result.table.metrics == ["5-way 1-shot", "5-way 1-shot CI95", "5-way 5-shot", "5-way 5-shot CI95"]
    assert 0.2 < result.table.mean("contrastive", "5-way 5-shot") <= 1.0
    assert 0.0 < result.table.mean("contrastive", "5-way 1-shot CI95") < 0.05
    assert "episode samples of classes 5-9" in result.split
    with pytest.raises(DataError, match="5-way episodes need at least 5 unseen classes"):
        compare("fewshot", "iris", progress=False)


def test_proxy_losses_get_the_training_class_count() -> None:
    from paperzoo.compare.task import build_component
    from paperzoo.papers import Method

    method = Method("arc", "retrieval", "pytorch_metric_learning.losses:ArcFaceLoss", {"scale": 16.0})
    loss = build_component(method, {"num_classes": 5, "embedding_size": 64, "unused": 1})
    assert tuple(loss.W.shape) == (64, 5) and loss.scale == 16.0
    fixed = Method(
        "arc", "retrieval", "pytorch_metric_learning.losses:ArcFaceLoss", {"num_classes": 7, "embedding_size": 64}
    )
    assert build_component(fixed, {"num_classes": 5, "embedding_size": 64}).W.shape[1] == 7  # kwargs win
    result = compare("retrieval", "digits", ["unpg-arcface", "madacos"], seeds=(0,), budget=5, jobs=1, progress=False)
    assert _in_unit_interval(result.table.to_dict())
