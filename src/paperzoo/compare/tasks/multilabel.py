"""``multilabel``: the same MLP, data and budget for every multi-label loss.

Protocol: the data's own test split if it has one, else a seeded 80/20 split; at most
``max_train`` training samples (a seeded subsample); features standardised with the training
statistics; an MLP with one hidden layer of 256 ReLU units and one logit per class; Adam (lr
1e-3), batches of 256, a fixed number of epochs. Metrics: mAP over the classes with a positive
in the evaluation set, micro- and macro-F1 of ``logit > 0``. A paper's method is a multi-label
loss ``forward(logits (B, C), targets (B, C))`` with multi-hot float targets (``torch.nn.
BCEWithLogitsLoss`` qualifies; paperzoo's losses subclass :class:`~paperzoo.losses.base.
MultiLabelLoss`). ``--noise r`` hides each observed positive label with probability r (missing
labels, the usual noise of multi-label annotation); the evaluation labels stay complete.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.compare.data import Data, DataError, subsample
from paperzoo.compare.task import Setting, Split, Standardize, Task, count, outputs, train
from paperzoo.engine import make_loader
from paperzoo.metrics import multilabel_metrics
from paperzoo.models import MLP
from paperzoo.multilabel.pu_mlc import hide_positives
from paperzoo.papers import Method

__all__ = ["TASK", "MultiLabelTask"]


class MultiLabelTask(Task):
    """mAP / micro-F1 / macro-F1 of an MLP trained with each multi-label loss."""

    name = "multilabel"
    description = "an MLP with one logit per class on flat features; mAP, micro- and macro-F1 on a test split"
    component = "a multi-label loss, forward(logits (B, C), targets (B, C) multi-hot float) -> scalar"
    budget_unit = "epochs"
    default_budget = 10
    noise = "each positive training label is hidden (set to 0) with probability r"
    baselines = (
        Method(
            "bce",
            "multilabel",
            "torch.nn:BCEWithLogitsLoss",
            {},
            "binary cross-entropy per class (torch.nn.BCEWithLogitsLoss)",
        ),
    )
    hidden = 256
    batch_size = 256
    lr = 1e-3

    def metrics(self, data: Data) -> list[str]:
        return ["mAP", "micro-F1", "macro-F1"]

    def check(self, data: Data) -> None:
        if not data.multilabel:
            raise DataError(
                f"{data.origin}: key 'y' holds single labels (N,); multilabel needs multi-hot (N, C) labels "
                "(e.g. --data union30-mosaic)"
            )
        if data.num_classes < 2:
            raise DataError(f"{data.origin}: key 'y' has {data.num_classes} column; multilabel needs at least 2")

    def split(self, data: Data, seed: int, setting: Setting) -> Split:
        rng = np.random.default_rng(seed)
        if data.x_test is not None and data.y_test is not None:
            train_idx = np.arange(len(data.y))
            x_test, y_test, how = data.x_test, data.y_test, "the data's own test split"
        else:
            order = rng.permutation(len(data.y))
            cut = int(round(0.8 * len(order)))
            train_idx, test_idx = np.sort(order[:cut]), np.sort(order[cut:])
            x_test, y_test, how = data.x[test_idx], data.y[test_idx], "a seeded 80/20 split"
        train_idx = subsample(train_idx, setting.max_train, rng)
        y_train = torch.from_numpy(data.y[train_idx])
        if setting.noise:
            y_train = torch.from_numpy(hide_positives(y_train, setting.noise, np.random.default_rng(seed)))
        return Split(
            torch.from_numpy(data.x[train_idx]),
            y_train,
            torch.from_numpy(np.ascontiguousarray(x_test)),
            torch.from_numpy(np.ascontiguousarray(y_test)),
            data.num_classes,
            f"{len(train_idx):,} training / {len(y_test):,} test samples ({how}), "
            f"{float(data.y[train_idx].sum(1).mean()):.2f} labels per training sample",
        )

    def build_model(self, split: Split) -> nn.Module:
        return nn.Sequential(Standardize(split.x_train), MLP(split.x_train.shape[1], (self.hidden,), split.num_classes))

    def train(self, model: nn.Module, component: nn.Module, split: Split, seed: int, setting: Setting) -> None:
        data = TensorDataset(split.x_train, split.y_train.float())
        train(model, component, make_loader(data, self.batch_size, seed=seed), seed, epochs=setting.budget, lr=self.lr)

    def evaluate(self, model: nn.Module, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        values = multilabel_metrics(outputs(model, split.x_test), split.y_test)
        return {m: values[m] for m in metrics}

    def protocol(self, setting: Setting) -> str:
        limit = f"at most {setting.max_train:,}" if setting.max_train else "all"
        return (
            f"standardised features -> MLP (one hidden layer of {self.hidden}, ReLU, one logit per class); Adam lr "
            f"{self.lr:g}, batches of {self.batch_size}, {count(setting.budget, 'epochs')} on {limit} training samples"
        )


TASK = MultiLabelTask()
