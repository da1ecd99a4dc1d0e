"""``gcd``: generalized category discovery, every method on the same split, model and budget.

Protocol (SimGCD, Wen, Zhao & Qi, ICCV 2023): the classes are split into old (known) and new;
old classes come first (re-indexed ``0..K_old-1``). Half of the old-class samples are labelled,
drawn in one uniform sample over all old-class samples as the official code does
(``gcd_split(..., per_class=False)``); the rest of the old classes and every new-class sample are
unlabelled. Training sees all samples (labels of the labelled part only); evaluation is
transductive, on the unlabelled samples: All / Old / New clustering accuracy with one Hungarian
matching (:func:`paperzoo.metrics.cluster_accuracy`). K (old + new) is known. A file's ``x_test`` /
``y_test`` are not used.

Old classes: ``digits`` 0-4 of 10, ``union30-effnet`` the first 20 of 30 (Fashion-MNIST and MNIST;
the 10 Animal-MNIST classes are new), another built-in set its first half; a user's ``.npz`` must
hold ``old_classes`` (the old class labels) next to ``features`` (or ``x``) and ``labels`` (or ``y``).

Model: for feature data, standardised features -> a trainable block (Linear-ReLU-Linear, 256 -> 128)
standing in for the fine-tuned last ViT block; for ``digits``, the 8x8 images through the same MLP
from scratch. Then :class:`paperzoo.discovery.heads.DINOHead` (projector 128-256-256-64, cosine
classifier over K). Views: a random 1-pixel shift + Gaussian noise 0.1 for ``digits``, dropout 0.1 +
Gaussian noise 0.1 on standardised features otherwise. Training: :func:`paperzoo.discovery.trainer.
train_gcd` (SGD 0.1 / 0.9 / 5e-5, cosine per epoch, batches of 128 from the weighted sampler), the
teacher warm-up over the first 15% of the epochs. A method is a GCD objective
(``SimGCDLoss`` or ``GCDObjective`` with extra terms); the ``kmeans`` baseline clusters the same
(standardised) inputs with scikit-learn's k-means, k = K.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from paperzoo.compare.data import Data, DataError, subsample
from paperzoo.compare.task import Setting, Split, Standardize, Task, build_component, count
from paperzoo.engine import seed_everything
from paperzoo.papers import Method

__all__ = ["TASK", "GCDData", "GCDTask", "old_classes_of"]

#: Number of old classes (the first in label order) of the built-in sets named here.
BUILTIN_OLD = {"digits": 5, "union30-effnet": 20}
#: Built-in sets whose flat features are images of this shape (image views, no standardising).
IMAGE_SHAPES = {"digits": (1, 8, 8)}


def old_classes_of(data: Data) -> np.ndarray:
    """The old classes of ``data`` as class indices ``0..C-1`` (sorted).

    Raises:
        DataError: a user's file lacks ``old_classes``, or it names labels that are not in the
            data, or it leaves no old or no new class.
    """
    if data.source == "built-in":
        n_old = BUILTIN_OLD.get(data.name, data.num_classes // 2)
        return np.arange(n_old)
    file = data.source
    with np.load(file, allow_pickle=False) as npz:
        if "old_classes" not in npz.files:
            raise DataError(
                f"{file}: missing key 'old_classes', expected (K_old,) the labels of the old (known) classes; keys "
                f"present: {', '.join(npz.files)}"
            )
        old = np.asarray(npz["old_classes"]).ravel()
    if old.size and not np.issubdtype(old.dtype, np.integer):
        raise DataError(f"{file}: key 'old_classes' must hold integer labels, got dtype {old.dtype}")
    unknown = np.setdiff1d(old, data.labels)
    if unknown.size:
        raise DataError(f"{file}: key 'old_classes' names label {int(unknown[0])}, which is not in 'labels'")
    idx = np.unique(np.searchsorted(data.labels, old))
    if idx.size == 0 or idx.size >= data.num_classes:
        raise DataError(
            f"{file}: key 'old_classes' must name at least 1 and at most {data.num_classes - 1} of the "
            f"{data.num_classes} classes, got {idx.size}"
        )
    return idx


@dataclass(frozen=True, eq=False)
class GCDData(Split):
    """A GCD split: ``x_train`` all training inputs, ``y_train`` their targets (-1 unlabelled),
    ``x_test`` / ``y_test`` the unlabelled samples and their true classes (old first), ``old_mask``
    which of those are old, ``images`` the image shape for image data (else None)."""

    old_mask: torch.Tensor
    n_old: int
    images: tuple[int, ...] | None


class GCDTask(Task):
    """All / Old / New clustering accuracy of each GCD method (transductive)."""

    name = "gcd"
    description = (
        "generalized category discovery: half of the old-class samples labelled; All / Old / New clustering "
        "accuracy (one Hungarian matching) on the unlabelled samples"
    )
    component = "a GCD objective (SimGCDLoss, or GCDObjective with extra terms) or the k-means baseline"
    budget_unit = "epochs"
    noise = "each labelled training label is replaced, with probability r, by a uniformly random other old class"
    default_budget = 30
    baselines = (
        Method(
            "simgcd",
            "gcd",
            "paperzoo.discovery.losses:SimGCDLoss",
            {},
            "SimGCD (Wen et al., ICCV 2023): cosine classifier, self-distillation, me-max, contrastive terms",
        ),
        Method(
            "kmeans",
            "gcd",
            "paperzoo.discovery.baselines:KMeansBaseline",
            {},
            "k-means (k = number of classes, 10 restarts) on the same inputs",
        ),
    )
    hidden = (256, 128)
    head = {"hidden": 256, "bottleneck": 64, "nlayers": 3}
    batch_size = 128
    labelled_fraction = 0.5
    warmup_fraction = 0.15

    def metrics(self, data: Data) -> list[str]:
        return ["All", "Old", "New"]

    def check(self, data: Data) -> None:
        if data.multilabel:
            raise DataError(f"{data.origin}: key 'y' is multi-hot (N, C); generalized category discovery needs labels")
        if data.num_classes < 2:
            raise DataError(f"{data.origin}: key 'y' holds {data.num_classes} class; GCD needs old and new classes")
        if data.num_classes > len(data.y):
            raise DataError(
                f"{data.origin}: k = {data.num_classes} classes is larger than the number of samples ({len(data.y)})"
            )
        self.split(data, 0, Setting(1, None))  # raises on missing old_classes or an old class without labels

    def split(self, data: Data, seed: int, setting: Setting) -> Split:
        from paperzoo.data import gcd_split
        from paperzoo.discovery.trainer import gcd_targets

        old = old_classes_of(data)
        k = data.num_classes
        order = np.r_[old, np.setdiff1d(np.arange(k), old)]  # old classes first
        relabel = np.empty(k, dtype=np.int64)
        relabel[order] = np.arange(k)
        idx = subsample(np.arange(len(data.y)), setting.max_train, np.random.default_rng(seed))
        y = relabel[data.y[idx]]
        try:
            sp = gcd_split(y, old.size, labelled_fraction=self.labelled_fraction, seed=seed, per_class=False)
        except ValueError as exc:
            raise DataError(f"{data.origin}: {exc}") from None
        targets = gcd_targets(y, sp.labelled_idx)
        if setting.noise:
            from paperzoo.data import label_noise

            lab = sp.labelled_idx
            noisy, _ = label_noise(targets[lab].numpy(), setting.noise, n_classes=old.size, seed=seed)
            targets[lab] = torch.from_numpy(noisy)
        x = torch.from_numpy(np.ascontiguousarray(data.x[idx]))
        shape = IMAGE_SHAPES.get(data.name) if data.source == "built-in" else None
        if shape is not None:
            x = x.view(-1, *shape)
        un = sp.unlabelled_idx
        return GCDData(
            x_train=x,
            y_train=targets,
            x_test=x[torch.from_numpy(un)],
            y_test=torch.from_numpy(y[un]),
            num_classes=k,
            description=(
                f"{len(y):,} training samples, {old.size} old / {k - old.size} new classes, {len(sp.labelled_idx):,} "
                f"labelled ({self.labelled_fraction:g} of the old-class samples, one uniform draw); evaluated on the "
                f"{len(un):,} unlabelled samples"
            ),
            old_mask=torch.from_numpy(sp.old_mask),
            n_old=int(old.size),
            images=shape,
        )

    def build_model(self, split: Split) -> nn.Module:
        from paperzoo.discovery.heads import DINOHead

        x = split.x_train.reshape(split.x_train.shape[0], -1)
        images = isinstance(split, GCDData) and split.images is not None
        first: list[nn.Module] = [nn.Flatten()] + ([] if images else [Standardize(x)])
        return nn.Sequential(
            *first,
            nn.Linear(x.shape[1], self.hidden[0]),
            nn.ReLU(),
            nn.Linear(self.hidden[0], self.hidden[1]),
            DINOHead(self.hidden[1], split.num_classes, **self.head),
        )

    def _views(self, split: Split) -> Any:
        from paperzoo.discovery.views import FeatureViews, ImageViews

        if isinstance(split, GCDData) and split.images is not None:
            return ImageViews(shift=1, noise_std=0.1)
        return FeatureViews(noise_std=0.1, dropout=0.1)

    def train(self, model: nn.Module, component: nn.Module, split: Split, seed: int, setting: Setting) -> None:
        from paperzoo.discovery.baselines import KMeansBaseline
        from paperzoo.discovery.losses import SimGCDLoss
        from paperzoo.discovery.trainer import GCDObjective, train_gcd

        if isinstance(component, KMeansBaseline):
            return  # nothing to train: the evaluation clusters the inputs
        objective = GCDObjective(component) if isinstance(component, SimGCDLoss) else component
        train_gcd(
            model,
            split.x_train,
            split.y_train,
            self._views(split),
            objective,
            epochs=setting.budget,
            batch_size=min(self.batch_size, len(split.y_train)),
            seed=seed,
        )

    def evaluate(self, model: nn.Module, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        from paperzoo.discovery.trainer import predict

        return self._scores(predict(model, split.x_test).numpy(), split, metrics)

    def _scores(self, pred: np.ndarray, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        from paperzoo.metrics import cluster_accuracy

        assert isinstance(split, GCDData)
        acc = cluster_accuracy(split.y_test.numpy(), pred, split.old_mask.numpy())
        values = {"All": acc["all"], "Old": acc["old"], "New": acc["new"]}
        return {m: values[m] for m in metrics}

    def component_context(self, split: Split) -> dict[str, Any]:
        context: dict[str, Any] = {"num_classes": split.num_classes}
        if isinstance(split, GCDData):
            context["n_old"] = split.n_old
        return context

    def run(self, method: Method, seed: int, data: Data, setting: Setting) -> dict[str, float]:
        """One unit. A method's factory gets, when it takes them by name, ``num_classes``, ``n_old`` (the
        old classes are ``0..n_old-1``), ``epochs`` (the budget) and ``teacher_temp``: SimGCD's teacher
        warm-up over the first 15% of the epochs. The ``kmeans`` baseline clusters the inputs instead of
        training."""
        from paperzoo.discovery.baselines import KMeansBaseline, kmeans_predict

        seed_everything(seed)
        split = self.split(data, seed, setting)
        model = self.build_model(split)
        warmup = max(1, round(self.warmup_fraction * setting.budget))
        context: Mapping[str, Any] = {
            **self.component_context(split),
            "teacher_temp": (0.07, 0.04, warmup),
            "epochs": setting.budget,
        }
        component = build_component(method, context)
        if isinstance(component, KMeansBaseline):
            assert isinstance(split, GCDData)
            x = split.x_train.reshape(len(split.x_train), -1)
            if split.images is None:
                x = Standardize(x)(x)
            pred = kmeans_predict(x, split.num_classes, seed=seed, n_init=component.n_init)
            un = torch.nonzero(split.y_train < 0).squeeze(1).numpy()
            return self._scores(pred[un], split, self.metrics(data))
        self.train(model, component, split, seed, setting)
        return self.evaluate(model, split, self.metrics(data))

    def protocol(self, setting: Setting) -> str:
        limit = f"at most {setting.max_train:,}" if setting.max_train else "all"
        return (
            f"{self.labelled_fraction:g} of the old-class samples labelled (one uniform draw); standardised features "
            f"(digits: 8x8 images) -> MLP {self.hidden[0]}-{self.hidden[1]} -> DINOHead (projector "
            f"{self.head['hidden']}-{self.head['hidden']}-{self.head['bottleneck']}, cosine classifier); two views; "
            f"SGD 0.1 / 0.9 / 5e-5, cosine per epoch, batches of {self.batch_size} from the labelled/unlabelled "
            f"weighted sampler, {count(setting.budget, 'epochs')} on {limit} samples; k-means on the same inputs; "
            "transductive All / Old / New on the unlabelled samples"
        )


TASK = GCDTask()
