"""``unlearning``: every unlearning method on the same original model, forget set and oracle.

Protocol: the data's own test split if it has one, else a seeded stratified 80/20 split; at most
``max_train`` training samples; a seeded 10% of the training samples is the forget set, the rest
the retain set. The original model (standardised features -> MLP with one hidden layer of 256
ReLU units, Adam lr 1e-3, batches of 128, the budget in epochs) is trained on forget + retain; the
oracle is retrained from scratch on the retain set with the same recipe
(:class:`paperzoo.unlearning.UnlearningProtocol`). A method is an
:class:`~paperzoo.unlearning.Unlearner` applied to a copy of the original model.

Metrics: test and retain accuracy (higher is better); the forget-accuracy gap and the
membership-inference gap to the oracle, the KL divergence from the oracle's predictions on the
forget set, and the method's wall time (lower is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.compare.data import Data, DataError
from paperzoo.compare.task import Setting, Split, Standardize, build_component, count
from paperzoo.compare.tasks.classification import ClassificationTask
from paperzoo.engine import TrainConfig, fit, make_loader
from paperzoo.models import MLP
from paperzoo.papers import Method

__all__ = ["TASK", "UnlearningTask"]


def _baseline(name: str, factory: str, description: str, **kwargs: Any) -> Method:
    return Method(name, "unlearning", f"paperzoo.unlearning.baselines:{factory}", kwargs, description)


class UnlearningTask(ClassificationTask):
    """Accuracy, gaps to the retrain oracle, membership inference and wall time of each unlearning method."""

    name = "unlearning"
    description = (
        "forget a random 10% of the training set of an MLP; accuracy, gaps to the retrain-from-scratch oracle "
        "(forget accuracy, membership inference, KL) and wall time"
    )
    component = "an unlearning method, a paperzoo.unlearning.Unlearner"
    budget_unit = "epochs"
    default_budget = 10
    lower_is_better = ("forget gap", "MIA gap", "oracle KL", "time s")
    baselines = (
        _baseline("original", "Original", "the original model, unchanged"),
        _baseline("retrain", "Retrain", "retrain from scratch on the retain set (exact, full cost)"),
        _baseline("finetune", "FinetuneRetain", "fine-tune on the retain set (SGD 0.01, 2 epochs)"),
        _baseline("gradient-ascent", "GradientAscent", "gradient ascent on the forget set (SGD 0.001, 1 epoch)"),
        _baseline(
            "random-labels", "RandomLabels", "fine-tune on the forget set with random wrong labels + retain batches"
        ),
    )
    forget_fraction = 0.1
    batch_size = 128

    def metrics(self, data: Data) -> list[str]:
        return ["test acc", "retain acc", "forget gap", "MIA gap", "oracle KL", "time s"]

    def check(self, data: Data) -> None:
        if data.multilabel:
            raise DataError(f"{data.origin}: key 'y' is multi-hot (N, C); unlearning needs one label per sample")
        super().check(data)

    def split(self, data: Data, seed: int, setting: Setting) -> Split:
        """The classification task's split (the data's test split or a seeded stratified 80/20 one, at
        most ``max_train`` training samples); a seeded 10% of the training samples is the forget set."""
        split = super().split(data, seed, setting)
        n_train, n_test = len(split.y_train), len(split.y_test)
        n_forget = max(5, round(self.forget_fraction * n_train))
        if n_forget >= n_train or n_test < 5:
            raise DataError(
                f"{data.origin}: {n_train} training and {n_test} test samples are too few for a forget set "
                "of 10% (at least 5 samples) and the membership-inference attack (at least 5 test samples)"
            )
        forget = f" training samples ({n_forget:,} to forget, a seeded 10%) / "
        return replace(split, description=split.description.replace(" training / ", forget, 1))

    def train(self, model: nn.Module, component: nn.Module, split: Split, seed: int, setting: Setting) -> None:
        """Not a step of this task: :meth:`run` trains the original model and the oracle through the
        unlearning protocol, and the method edits a copy of the original instead of training."""
        raise TypeError("the unlearning task trains through its protocol; call run()")

    def evaluate(self, model: nn.Module, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        """Not a step of this task: :meth:`run` measures through the unlearning protocol, which needs
        the oracle of the seed as well as the model."""
        raise TypeError("the unlearning task evaluates through its protocol; call run()")

    def protocol(self, setting: Setting) -> str:
        limit = f"at most {setting.max_train:,}" if setting.max_train else "all"
        return (
            f"standardised features -> MLP (one hidden layer of {self.hidden}, ReLU); original and oracle: Adam lr "
            f"{self.lr:g}, batches of {self.batch_size}, {count(setting.budget, 'epochs')} on {limit} training samples "
            f"(the oracle without the forget set, a seeded {self.forget_fraction:.0%}); membership inference: "
            "logistic regression on the per-sample loss, forget vs test, 5-fold AUC"
        )

    def run(self, method: Method, seed: int, data: Data, setting: Setting) -> dict[str, float]:
        """One unit: ``method``'s unlearner (its factory gets ``num_classes`` by name; the budget is the
        original training's, never the method's own epochs) applied to the original model of ``seed``,
        measured by the protocol of ``seed``."""
        protocol = _protocol(self, data, seed, setting)
        context = {"num_classes": data.num_classes}
        component = build_component(method, context)
        from paperzoo.unlearning import Unlearner

        if not isinstance(component, Unlearner):
            raise TypeError(
                f"method {method.name!r}: {method.factory} built a {type(component).__name__}, not an Unlearner"
            )
        values = protocol.run(component, seed)
        return {m: values[m] for m in self.metrics(data)}


@lru_cache(maxsize=4)
def _protocol(task: UnlearningTask, data: Data, seed: int, setting: Setting) -> Any:
    """The protocol of one (data, seed, setting), kept so that the methods of a process share the
    original model and the oracle instead of training them again."""
    from paperzoo.unlearning import UnlearningData, UnlearningProtocol

    split = task.split(data, seed, setting)
    n_train, n_test = len(split.y_train), len(split.y_test)
    perm = np.random.default_rng(seed).permutation(n_train)
    n_forget = max(5, round(task.forget_fraction * n_train))
    unlearning = UnlearningData(
        torch.cat([split.x_train, split.x_test]),
        torch.cat([split.y_train, split.y_test]),
        perm[:n_forget],
        perm[n_forget:],
        np.arange(n_train, n_train + n_test),
        split.num_classes,
    )

    x_retain = split.x_train[torch.from_numpy(perm[n_forget:])]

    def model_fn() -> nn.Module:  # standardised with retain statistics: the oracle never sees the forget set
        return nn.Sequential(Standardize(x_retain), MLP(x_retain.shape[1], (task.hidden,), split.num_classes))

    def train_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: int) -> None:
        loader = make_loader(TensorDataset(x, y), min(task.batch_size, len(y)), seed=s)
        optimiser = torch.optim.Adam(model.parameters(), lr=task.lr)
        fit(model, nn.CrossEntropyLoss(), loader, optimiser, TrainConfig(epochs=setting.budget, seed=s, progress=False))

    return UnlearningProtocol(unlearning, model_fn, train_fn)


TASK = UnlearningTask()
