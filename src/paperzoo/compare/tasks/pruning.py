"""``pruning``: every pruning method on the same trained model, sparsities and fine-tuning budget.

Protocol: the split of ``classification`` (the data's own test split if it has one, else a
seeded stratified 80/20 split; at most ``max_train`` training samples; label noise on the
training labels if asked). Model: standardised features -> MLP with hidden layers 300-100
(ReLU), trained dense with Adam (lr 1e-3, batches of 256, ``budget`` epochs, cross-entropy);
the same dense model for every method of a seed. Then, for each sparsity of
:attr:`PruningTask.sparsities`, a copy is pruned by the method's :class:`~paperzoo.pruning.Pruner`
(unlabelled calibration inputs: the first 256 training samples) and fine-tuned with its masks held
fixed for a quarter of the budget, at least one epoch (Adam lr 5e-4, cosine; a structured method's smaller model is fine-tuned the
same way), through :func:`paperzoo.pruning.sparsity_curve`.

Metrics (every one "higher is better"): dense top-1, top-1 at each sparsity, and at the highest
sparsity the MAC reduction (dense MACs / the pruned model's sparse MACs, per sample) and the
measured CPU speed-up (fastest of repeated timings of the dense model / the deployed pruned model on one thread
for a batch of 256 test samples; unstructured-sparse linear layers as CSR matrices, see
:func:`paperzoo.pruning.deployable`). A method's factory builds a Pruner; it gets ``seed`` by
name if it takes one (the random baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.compare.data import Data
from paperzoo.compare.task import Setting, Split, Standardize, build_component, count, train
from paperzoo.compare.tasks.classification import ClassificationTask
from paperzoo.engine import make_loader, seed_everything
from paperzoo.models import MLP
from paperzoo.papers import Method

__all__ = ["TASK", "PruningTask"]


def _tag(s: float) -> str:
    return f"{s:g}"


class PruningTask(ClassificationTask):
    """Top-1 of a trained MLP pruned to several sparsities by each method, plus MACs and CPU speed-up."""

    name = "pruning"
    description = (
        "prune one trained MLP to several sparsities (+ masked fine-tuning); top-1 at each, MAC "
        "reduction and measured CPU speed-up at the highest"
    )
    component = "a Pruner (paperzoo.pruning.Pruner): prune(model, sparsity, calibration) -> model"
    budget_unit = "epochs"
    default_budget = 10
    baselines = (
        Method(
            "global-mp",
            "pruning",
            "paperzoo.pruning:GlobalMagnitudePruner",
            {},
            "Global magnitude pruning: the smallest |w| of all layers together (Gupta et al., 2022)",
        ),
        Method(
            "uniform-mp",
            "pruning",
            "paperzoo.pruning:UniformMagnitudePruner",
            {},
            "layer-wise magnitude pruning, the same sparsity in every layer",
        ),
        Method(
            "random",
            "pruning",
            "paperzoo.pruning:RandomPruner",
            {},
            "random unstructured pruning, the same sparsity in every layer (seeded by the unit's seed)",
        ),
        Method(
            "channel-mp",
            "pruning",
            "paperzoo.pruning:ChannelMagnitudePruner",
            {},
            "structured: global L1 channel pruning through torch-pruning, the model returned smaller",
        ),
    )
    hidden = (300, 100)
    sparsities = (0.5, 0.8, 0.9, 0.95)
    #: masked fine-tuning after pruning, as a fraction of the dense budget (at least one epoch)
    finetune_fraction = 0.25
    finetune_lr = 5e-4
    calibration_size = 256
    latency_batch = 256

    def finetune_epochs(self, setting: Setting) -> int:
        return max(1, round(self.finetune_fraction * setting.budget))

    def metrics(self, data: Data) -> list[str]:
        top = self.sparsities[-1]
        return [
            "dense top-1",
            *(f"top-1@{_tag(s)}" for s in self.sparsities),
            f"MAC reduction@{_tag(top)}",
            f"speed-up@{_tag(top)}",
        ]

    def build_model(self, split: Split) -> nn.Module:
        return nn.Sequential(Standardize(split.x_train), MLP(split.x_train.shape[1], self.hidden, split.num_classes))

    def train(self, model: nn.Module, component: nn.Module, split: Split, seed: int, setting: Setting) -> None:
        """Dense training of ``model`` (the method's component plays no part in it)."""
        loader = make_loader(TensorDataset(split.x_train, split.y_train), self.batch_size, seed=seed)
        train(model, nn.CrossEntropyLoss(), loader, seed, epochs=setting.budget, lr=self.lr)

    def component_context(self, split: Split) -> dict[str, Any]:
        return {}

    def run(self, method: Method, seed: int, data: Data, setting: Setting) -> dict[str, float]:
        """One unit: train the seed's dense model, then prune, fine-tune and measure it at every sparsity."""
        from paperzoo.pruning import Pruner, masked_finetune, sparsity_curve
        from paperzoo.pruning.curves import accuracy_of

        seed_everything(seed)
        split = self.split(data, seed, setting)
        model = self.build_model(split)
        pruner = build_component(method, {"seed": seed})
        if not isinstance(pruner, Pruner):
            raise TypeError(f"method {method.name!r}: {method.factory} built a {type(pruner).__name__}, not a Pruner")
        self.train(model, pruner, split, seed, setting)
        loader = make_loader(TensorDataset(split.x_train, split.y_train), self.batch_size, seed=seed)

        epochs = self.finetune_epochs(setting)

        def finetune(m: nn.Module) -> None:
            masked_finetune(m, loader, epochs, lr=self.finetune_lr, label_smoothing=0.0, seed=seed)

        x_test, y_test = split.x_test, split.y_test
        top = self.sparsities[-1]
        points = sparsity_curve(
            model,
            pruner,
            self.sparsities,
            (x_test, y_test),
            x_test[:1],
            finetune=finetune,
            calibration=split.x_train[: self.calibration_size],
            latency=(top,),
            latency_input=x_test[: self.latency_batch],
        )
        values = {"dense top-1": accuracy_of(model, x_test, y_test)}
        values.update({f"top-1@{_tag(p.sparsity)}": p.accuracy for p in points})
        values[f"MAC reduction@{_tag(top)}"] = points[-1].mac_reduction
        values[f"speed-up@{_tag(top)}"] = points[-1].speedup
        return values

    def evaluate(self, model: nn.Module, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        from paperzoo.pruning.curves import accuracy_of

        return {"dense top-1": accuracy_of(model, split.x_test, split.y_test)}

    def protocol(self, setting: Setting) -> str:
        limit = f"at most {setting.max_train:,}" if setting.max_train else "all"
        hidden = "-".join(map(str, self.hidden))
        return (
            f"standardised features -> MLP {hidden} (ReLU) trained dense with Adam lr {self.lr:g}, batches of "
            f"{self.batch_size}, {count(setting.budget, 'epochs')} on {limit} training samples; pruned to "
            f"{', '.join(_tag(s) for s in self.sparsities)} sparsity, each +{count(self.finetune_epochs(setting), 'epochs')} "
            f"of masked fine-tuning (Adam lr {self.finetune_lr:g}, cosine); MACs per sample; CPU time of a batch of "
            f"{self.latency_batch} on one thread, dense vs deployed (CSR sparse linear layers)"
        )


TASK = PruningTask()
