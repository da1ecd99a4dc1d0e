"""``classification``: the same MLP, data and budget for every classification loss.

Protocol: the data's own test split if it has one, else a seeded stratified 80/20 split; at
most ``max_train`` training samples (a seeded subsample); features standardised with the
training statistics; an MLP with one hidden layer of 256 ReLU units; Adam (lr 1e-3), batches of
256, a fixed number of epochs. Metrics: top-1 accuracy, macro-F1 and, with at least 5 classes,
top-3 accuracy. A paper's method is a classification loss ``forward(logits (B, C), target (B,))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.compare.data import Data, DataError, stratified_split, subsample
from paperzoo.compare.task import Setting, Split, Standardize, Task, count, noisy_labels, outputs, train
from paperzoo.engine import make_loader
from paperzoo.metrics import macro_f1, top_k_accuracy
from paperzoo.models import MLP
from paperzoo.papers import Method

__all__ = ["TASK", "ClassificationTask"]


class ClassificationTask(Task):
    """Top-1 / macro-F1 / top-3 of an MLP trained with each classification loss."""

    name = "classification"
    description = "an MLP classifier on flat features; top-1, macro-F1 and (>= 5 classes) top-3 on a test split"
    component = "a classification loss, forward(logits (B, C), target (B,)) -> scalar"
    budget_unit = "epochs"
    default_budget = 10
    baselines = (
        Method("ce", "classification", "torch.nn:CrossEntropyLoss", {}, "cross-entropy (torch.nn.CrossEntropyLoss)"),
        Method(
            "mse",
            "classification",
            "paperzoo.losses:OneHotMSELoss",
            {},
            "squared error between the logits and the one-hot target",
        ),
    )
    hidden = 256
    batch_size = 256
    lr = 1e-3

    def metrics(self, data: Data) -> list[str]:
        return ["top-1", "macro-F1", *(["top-3"] if data.num_classes >= 5 else [])]

    def check(self, data: Data) -> None:
        if data.multilabel:
            raise DataError(f"{data.origin}: key 'y' is multi-hot (N, C); use --task multilabel")
        if data.num_classes < 2:
            raise DataError(f"{data.origin}: key 'y' holds {data.num_classes} class; classification needs at least 2")
        if not data.has_test:
            stratified_split(data, 0)  # raises if a class is too small to split

    def split(self, data: Data, seed: int, setting: Setting) -> Split:
        if data.x_test is not None and data.y_test is not None:
            train_idx = np.arange(len(data.y))
            x_test, y_test, how = data.x_test, data.y_test, "the data's own test split"
        else:
            train_idx, test_idx = stratified_split(data, seed)
            x_test, y_test, how = data.x[test_idx], data.y[test_idx], "a seeded stratified 80/20 split"
        train_idx = subsample(train_idx, setting.max_train, np.random.default_rng(seed))
        return Split(
            torch.from_numpy(data.x[train_idx]),
            noisy_labels(torch.from_numpy(data.y[train_idx]), setting, data.num_classes, seed),
            torch.from_numpy(np.ascontiguousarray(x_test)),
            torch.from_numpy(np.ascontiguousarray(y_test)),
            data.num_classes,
            f"{len(train_idx):,} training / {len(y_test):,} test samples ({how})",
        )

    def build_model(self, split: Split) -> nn.Module:
        return nn.Sequential(Standardize(split.x_train), MLP(split.x_train.shape[1], (self.hidden,), split.num_classes))

    def train(self, model: nn.Module, component: nn.Module, split: Split, seed: int, setting: Setting) -> None:
        loader = make_loader(TensorDataset(split.x_train, split.y_train), self.batch_size, seed=seed)
        train(model, component, loader, seed, epochs=setting.budget, lr=self.lr)

    def evaluate(self, model: nn.Module, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        logits = outputs(model, split.x_test)
        top = top_k_accuracy(logits, split.y_test, ks=(1, 3) if "top-3" in metrics else (1,))
        values = {f"top-{k}": v for k, v in top.items()}
        values["macro-F1"] = macro_f1(split.y_test, logits.argmax(dim=1))
        return {m: values[m] for m in metrics}

    def protocol(self, setting: Setting) -> str:
        limit = f"at most {setting.max_train:,}" if setting.max_train else "all"
        return (
            f"standardised features -> MLP (one hidden layer of {self.hidden}, ReLU); Adam lr {self.lr:g}, batches of "
            f"{self.batch_size}, {count(setting.budget, 'epochs')} on {limit} training samples"
        )


TASK = ClassificationTask()
