"""``retrieval``: the same embedding network, classes and budget for every metric loss.

Protocol (zero-shot retrieval on held-out classes, the deep-metric-learning protocol): the
samples of the first half of the classes (in label order; a data set's own test split is pooled
with its training part, since the split is by class) train an L2-normalised 64-d embedding;
the samples of the other half are retrieved among each other by cosine similarity. At most
``max_train`` training samples and :attr:`RetrievalTask.max_eval` retrieval samples (seeded
subsamples). Model: standardised features, one hidden layer of 256 ReLU units, a linear
projection to 64 dimensions and L2 normalisation; Adam (lr 1e-3) on P x K batches (up to 8
classes x 8 samples, pytorch-metric-learning's ``MPerClassSampler``) for a fixed number of
steps. Metrics: Recall@1 and MAP@R (:func:`paperzoo.metrics.retrieval_metrics`). A paper's
method is a metric loss with pytorch-metric-learning's signature ``loss(embeddings, labels)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.compare.data import Data, DataError, subsample
from paperzoo.compare.task import Setting, Split, Standardize, Task, count, noisy_labels, outputs, train
from paperzoo.data import held_out_class_split, m_per_class_sampler
from paperzoo.engine import make_loader
from paperzoo.metrics import retrieval_metrics
from paperzoo.models import MLP, EmbeddingHead
from paperzoo.papers import Method

__all__ = ["TASK", "RetrievalTask", "contrastive_loss"]


def contrastive_loss() -> nn.Module:
    """pytorch-metric-learning's ``ContrastiveLoss`` on cosine similarity (positive margin 1,
    negative margin 0.5), the baseline of the reproduction of paper 28."""
    from pytorch_metric_learning import distances, losses

    return losses.ContrastiveLoss(pos_margin=1.0, neg_margin=0.5, distance=distances.CosineSimilarity())


def _rows(data: Data, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of sorted indices into the training part followed by the test part."""
    n = len(data.y)
    if data.x_test is None or data.y_test is None:
        return data.x[idx], data.y[idx]
    head, tail = idx[idx < n], idx[idx >= n] - n
    return np.concatenate([data.x[head], data.x_test[tail]]), np.concatenate([data.y[head], data.y_test[tail]])


class RetrievalTask(Task):
    """Recall@1 and MAP@R on unseen classes of an embedding trained with each metric loss."""

    name = "retrieval"
    description = "an embedding MLP trained on half the classes; Recall@1 and MAP@R on the unseen other half"
    component = "a metric loss with pytorch-metric-learning's signature, loss(embeddings (B, D), labels (B,))"
    budget_unit = "steps"
    default_budget = 600
    baselines = (
        Method(
            "contrastive",
            "retrieval",
            "paperzoo.compare.tasks.retrieval:contrastive_loss",
            {},
            "pytorch-metric-learning ContrastiveLoss, cosine similarity, margins 1 / 0.5",
        ),
        Method(
            "triplet",
            "retrieval",
            "pytorch_metric_learning.losses:TripletMarginLoss",
            {"margin": 0.1},
            "pytorch-metric-learning TripletMarginLoss, margin 0.1, all triplets of the batch",
        ),
    )
    hidden = 256
    embedding_dim = 64
    classes_per_batch = 8
    per_class = 8
    lr = 1e-3
    max_eval = 5000

    def metrics(self, data: Data) -> list[str]:
        return ["R@1", "MAP@R"]

    def check(self, data: Data) -> None:
        if data.multilabel:
            raise DataError(f"{data.origin}: key 'y' is multi-hot (N, C); use --task multilabel")
        if data.num_classes < 4:
            raise DataError(
                f"{data.origin}: key 'y' holds {data.num_classes} classes; retrieval needs at least 4 "
                "(half to train on, half to retrieve)"
            )

    def split(self, data: Data, seed: int, setting: Setting) -> Split:
        k = data.num_classes // 2
        labels = data.y if data.y_test is None else np.concatenate([data.y, data.y_test])
        train_idx, eval_idx = held_out_class_split(labels, k)
        rng = np.random.default_rng(seed)
        x_train, y_train = _rows(data, subsample(train_idx, setting.max_train, rng))
        x_eval, y_eval = _rows(data, subsample(eval_idx, self.max_eval, rng))
        return Split(
            torch.from_numpy(x_train),
            noisy_labels(torch.from_numpy(y_train), setting, k, seed),
            torch.from_numpy(x_eval),
            torch.from_numpy(y_eval),
            data.num_classes,
            f"{len(y_train):,} training samples of classes 0-{k - 1}, {len(y_eval):,} retrieval samples of classes "
            f"{k}-{data.num_classes - 1} (labels in sorted order)",
        )

    def build_model(self, split: Split) -> nn.Module:
        return nn.Sequential(
            Standardize(split.x_train),
            MLP(split.x_train.shape[1], (), self.hidden),
            nn.ReLU(),
            EmbeddingHead(self.hidden, self.embedding_dim),
        )

    def component_context(self, split: Split) -> dict[str, Any]:
        """Losses with one proxy per class get the training classes' count and the embedding width."""
        return {"num_classes": int(split.y_train.max()) + 1, "embedding_size": self.embedding_dim}

    def train(self, model: nn.Module, component: nn.Module, split: Split, seed: int, setting: Setting) -> None:
        batch = min(self.classes_per_batch, int(split.y_train.unique().numel())) * self.per_class
        sampler = m_per_class_sampler(
            split.y_train, self.per_class, batch, length_before_new_iter=setting.budget * batch
        )
        loader = make_loader(TensorDataset(split.x_train, split.y_train), batch, sampler=sampler)
        train(model, component, loader, seed, epochs=1, lr=self.lr)

    def evaluate(self, model: nn.Module, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        values = retrieval_metrics(outputs(model, split.x_test), split.y_test, ks=(1,))
        return {m: values[m] for m in metrics}

    def protocol(self, setting: Setting) -> str:
        limit = f"at most {setting.max_train:,}" if setting.max_train else "all"
        return (
            f"standardised features -> {self.hidden} ReLU -> {self.embedding_dim}-d L2-normalised embedding; Adam lr "
            f"{self.lr:g}, {count(setting.budget, 'steps')} of P x K batches (up to {self.classes_per_batch} classes x "
            f"{self.per_class}) on {limit} training samples; retrieval among at most {self.max_eval:,} samples of "
            "the unseen classes"
        )


TASK = RetrievalTask()
