"""The shared unlearning core: the data's invariants, the protocol's oracle and metrics, the
membership-inference attack, the simple baselines and ``paperzoo compare --task unlearning``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.compare import compare
from paperzoo.compare.registry import get_task, methods_of
from paperzoo.engine import TrainConfig, fit, make_loader
from paperzoo.testing import check_unlearner, unlearner_checks
from paperzoo.unlearning import (
    FinetuneRetain,
    GradientAscent,
    Original,
    RandomLabels,
    Retrain,
    Unlearner,
    UnlearningData,
    UnlearningProtocol,
    membership_inference_auc,
)


def _blobs(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, -3.0]])
    return centres[y] + torch.randn(n, 2, generator=g), y


def _data(n: int = 300) -> UnlearningData:
    x, y = _blobs(n)
    idx = np.random.default_rng(0).permutation(n)
    return UnlearningData(x, y, idx[:30], idx[30:200], idx[200:], 3)


def _model_fn() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def _train_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    loader = make_loader(TensorDataset(x, y), 32, seed=seed)
    fit(
        model,
        nn.CrossEntropyLoss(),
        loader,
        torch.optim.Adam(model.parameters(), 1e-2),
        TrainConfig(5, seed=seed, progress=False),
    )


@pytest.fixture(scope="module")
def protocol() -> UnlearningProtocol:
    return UnlearningProtocol(_data(), _model_fn, _train_fn)


def test_data_views_and_train_set() -> None:
    d = _data()
    assert d.x_forget.shape == (30, 2) and d.x_retain.shape == (170, 2) and d.x_test.shape == (100, 2)
    assert torch.equal(d.train_idx, torch.cat([d.forget_idx, d.retain_idx]))
    assert torch.equal(d.y_train, d.y[d.train_idx])


@pytest.mark.parametrize(
    ("forget", "retain", "test", "match"),
    [
        ([0, 1], [1, 2], [3], "forget_idx and retain_idx overlap in 1 samples"),
        ([0], [1], [0], "forget_idx and test_idx overlap"),
        ([], [1], [2], "forget_idx is empty"),
        ([0], [1, 1], [2], "retain_idx repeats an index"),
        ([0], [1], [400], r"test_idx holds indices outside \[0, 300\)"),
    ],
)
def test_bad_splits_are_clear_errors(forget: list[int], retain: list[int], test: list[int], match: str) -> None:
    x, y = _blobs()
    with pytest.raises(ValueError, match=match):
        UnlearningData(x, y, forget, retain, test, 3)


def test_bad_samples_are_clear_errors() -> None:
    x, y = _blobs()
    with pytest.raises(ValueError, match=r"y must lie in \[0, 2\)"):
        UnlearningData(x, y, [0], [1], [2], 2)
    x[5, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        UnlearningData(x, y, [0], [1], [2], 3)


def test_original_and_oracle_are_cached_copies(protocol: UnlearningProtocol) -> None:
    a, b = protocol.oracle(0), protocol.oracle(0)
    assert a is not b and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(protocol.original(0)[0].weight, a[0].weight)


def test_original_and_retrain_bracket_the_oracle(protocol: UnlearningProtocol) -> None:
    original = protocol.run(Original(), 0)
    assert original["time s"] < 0.05 and set(original) == {
        "forget acc", "retain acc", "test acc", "MIA AUC", "forget gap", "MIA gap", "oracle KL", "time s"
    }  # fmt: skip
    oracle = protocol.evaluate(protocol.oracle(0), 0)
    assert (
        oracle["forget gap"] == 0.0 and oracle["MIA gap"] == 0.0 and oracle["oracle KL"] == pytest.approx(0, abs=1e-7)
    )
    retrain = protocol.run(Retrain(), 0)  # an independent retrain: near the oracle, not equal to it
    assert 0.0 < retrain["oracle KL"] < 0.5


def test_baselines_change_the_model_and_gradient_ascent_raises_the_forget_loss(protocol: UnlearningProtocol) -> None:
    from paperzoo.unlearning import per_sample_losses

    d = protocol.data
    before = per_sample_losses(protocol.original(0), d.x_forget, d.y_forget).mean()
    context = protocol.context(0)
    after = per_sample_losses(
        GradientAscent(epochs=3, lr=0.05).unlearn(protocol.original(0), d, context), d.x_forget, d.y_forget
    )
    assert after.mean() > before
    for method in (FinetuneRetain(epochs=1), RandomLabels(epochs=1)):
        values = protocol.run(method, 0)
        assert 0.0 <= values["forget acc"] <= 1.0 and values["time s"] > 0


def test_the_oracle_reaches_only_methods_that_need_it(protocol: UnlearningProtocol) -> None:
    seen: list[object] = []

    class Peek(Unlearner):
        needs_oracle = True

        def unlearn(self, model: nn.Module, data: UnlearningData, context: object) -> nn.Module:
            seen.append(context.oracle)  # type: ignore[attr-defined]
            return model

    protocol.run(Peek(), 0)
    assert callable(seen[0])
    assert protocol.context(0).oracle is None
    with pytest.raises(TypeError, match="must be an Unlearner"):
        protocol.run(nn.Linear(2, 2), 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"applied with \.unlearn"):
        Original()(torch.zeros(1))


def test_membership_inference_is_chance_for_one_group_and_high_for_memorised_samples() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 8, generator=g), torch.randint(0, 3, (400,), generator=g)
    model = nn.Sequential(nn.Linear(8, 256), nn.ReLU(), nn.Linear(256, 3))
    same = membership_inference_auc(model, x[:200], y[:200], x[200:], y[200:], seed=0)  # never trained: one population
    loader = make_loader(TensorDataset(x[:200], y[:200]), 50, seed=0)
    fit(
        model,
        nn.CrossEntropyLoss(),
        loader,
        torch.optim.Adam(model.parameters(), 1e-2),
        TrainConfig(60, seed=0, progress=False),
    )
    memorised = membership_inference_auc(
        model, x[:200], y[:200], x[200:], y[200:], seed=0
    )  # random labels learnt by heart
    assert abs(same - 0.5) < 0.1 and memorised > 0.9
    with pytest.raises(ValueError, match="at least folds=5 samples"):
        membership_inference_auc(model, x[:3], y[:3], x, y)


def test_a_diverged_model_is_measured_not_a_crash(protocol: UnlearningProtocol) -> None:
    class Diverge(Unlearner):
        def unlearn(self, model: nn.Module, data: UnlearningData, context: object) -> nn.Module:
            with torch.no_grad():
                model[0].weight.fill_(float("nan"))
            return model

    values = protocol.run(Diverge(), 0)
    assert values["MIA AUC"] == pytest.approx(0.5, abs=0.1) and np.isnan(values["oracle KL"])


def test_baseline_hyper_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="FinetuneRetain: epochs must be"):
        FinetuneRetain(epochs=0)
    with pytest.raises(ValueError, match="GradientAscent: lr must be"):
        GradientAscent(lr=-1.0)


def test_compare_task_runs_every_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert {"original", "retrain", "finetune", "gradient-ascent", "random-labels"} <= set(methods_of("unlearning"))
    assert get_task("unlearning").lower_is_better == ("forget gap", "MIA gap", "oracle KL", "time s")
    result = compare(
        "unlearning", "digits", ["original", "retrain"], seeds=(0,), budget=2, max_train=400, jobs=1, progress=False
    )
    assert result.table.mean("original", "time s") < result.table.mean("retrain", "time s")
    assert result.table.mean("original", "forget gap") >= 0.0


BASELINES = (
    lambda: Retrain(),
    lambda: FinetuneRetain(epochs=1),
    lambda: GradientAscent(epochs=1, lr=0.05),
    lambda: RandomLabels(epochs=1),
)
CHECKS = [(f"{type(make()).__name__}: {name}", check) for make in BASELINES for name, check in unlearner_checks(make)]


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_baselines_pass_the_unlearner_suite(name: str, check: object) -> None:
    check()  # type: ignore[operator]


def test_the_suite_catches_a_method_that_reads_labels_it_says_it_does_not() -> None:
    class Peeking(Unlearner):
        uses_labels = False

        def unlearn(self, model: nn.Module, data: UnlearningData, context: object) -> nn.Module:
            with torch.no_grad():
                model[0].bias.add_(data.y[:16].float())
            return model

    with pytest.raises(AssertionError, match="label-free"):
        check_unlearner(Peeking)
