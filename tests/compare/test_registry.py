"""Discovery of the tasks and of the methods the paper records add to them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from paperzoo.compare import registry
from paperzoo.compare.task import Split, Task, build_component
from paperzoo.papers import Method, Record


@pytest.fixture
def fresh_methods() -> Iterator[None]:
    """Forget the cached method lists before and after a test that changes the records."""
    registry.methods_of.cache_clear()
    yield
    registry.methods_of.cache_clear()


def test_tasks_are_discovered() -> None:
    found = registry.tasks()
    assert {"classification", "multilabel", "retrieval"} <= set(found)
    assert all(isinstance(t, Task) and t.name == name for name, t in found.items())
    assert registry.get_task("retrieval") is found["retrieval"]
    with pytest.raises(
        KeyError,
        match="unknown task 'nope'; tasks: classification, fewshot, gcd, multilabel, pruning, retrieval, unlearning",
    ):
        registry.get_task("nope")


def test_methods_are_baselines_then_the_records() -> None:
    classification = registry.methods_of("classification")
    assert list(classification)[:2] == ["ce", "mse"]
    assert classification["zloss"].source == "paper 05" and not classification["zloss"].is_baseline
    retrieval = registry.methods_of("retrieval")
    assert list(retrieval)[:2] == ["contrastive", "triplet"]
    assert retrieval["ms"].source == "paper 28"
    assert "ms" not in classification and "zloss" not in retrieval


def test_every_method_builds_a_module() -> None:
    for name, task in registry.tasks().items():
        split = Split(torch.zeros(4, 3), torch.tensor([0, 1, 2, 1]), torch.zeros(2, 3), torch.tensor([0, 1]), 3, "")
        for entry in registry.methods_of(name).values():
            assert callable(build_component(entry.method, task.component_context(split)))


def test_a_new_record_adds_a_method(monkeypatch: pytest.MonkeyPatch, fresh_methods: None) -> None:
    extra = Method("smooth", "classification", "torch.nn:CrossEntropyLoss", {"label_smoothing": 0.1}, "smoothed CE")
    record = Record(number=99, summary="", components=(), usage="", paper_result="", methods=(extra,))
    monkeypatch.setattr(registry, "records", lambda: {99: record})
    methods = registry.methods_of("classification")
    assert list(methods) == ["ce", "mse", "smooth"] and methods["smooth"].source == "paper 99"

    clash = Record(number=98, summary="", components=(), usage="", paper_result="", methods=(extra,))
    monkeypatch.setattr(registry, "records", lambda: {98: clash, 99: record})
    registry.methods_of.cache_clear()
    with pytest.raises(ValueError, match="two methods called 'smooth' \\(paper 98, paper 99\\)"):
        registry.methods_of("classification")


def test_a_factory_must_build_a_module() -> None:
    with pytest.raises(TypeError, match="method 'bad': builtins:dict built a dict, not an nn.Module"):
        build_component(Method("bad", "classification", "builtins:dict", {"a": 1}))
