"""What a comparison task is: one protocol (split, model, budget, metrics) that every method of
the task runs under, so that methods differ only in the component they bring (a loss).

A task module in :mod:`paperzoo.compare.tasks` exposes ``TASK``, an instance of a
:class:`Task` subclass. :meth:`Task.run` is one ``(method, seed)`` unit: seed everything, split
the data (the split depends on the data and the seed only), build the model (its
initialisation depends on the seed only), build the method's component, train, evaluate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader

from paperzoo.compare.data import Data
from paperzoo.engine import TrainConfig, fit, seed_everything
from paperzoo.papers import Method

__all__ = ["Setting", "Split", "Standardize", "Task", "build_component", "count", "noisy_labels", "outputs", "train"]


def count(n: int, unit: str) -> str:
    """``"1 epoch"``, ``"10 epochs"``: ``n`` and the plural ``unit``, singular for 1."""
    return f"{n:,} {unit[:-1] if n == 1 else unit}"


@dataclass(frozen=True)
class Setting:
    """The budget shared by every unit: ``budget`` epochs or steps (the task's
    :attr:`Task.budget_unit`) on at most ``max_train`` training samples (None: all), with
    ``noise`` the rate of label noise in the training labels (the task's :attr:`Task.noise`
    says what that means; the evaluation labels stay clean)."""

    budget: int
    max_train: int | None
    noise: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.noise, bool) or not isinstance(self.noise, int | float) or not 0.0 <= self.noise < 1.0:
            raise ValueError(f"the label noise rate must lie in [0, 1), got {self.noise!r}")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(f"the budget must be a positive int, got {self.budget!r}")
        if self.max_train is not None and (
            isinstance(self.max_train, bool) or not isinstance(self.max_train, int) or self.max_train < 1
        ):
            raise ValueError(f"max_train must be a positive int or None, got {self.max_train!r}")


@dataclass(frozen=True, eq=False)
class Split:
    """Training and evaluation tensors of one seed (features float32, labels int64)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    description: str


class Task(ABC):
    """One comparison protocol. Subclasses set the class attributes and the abstract methods.

    Every metric is "higher is better" unless the task lists it in :attr:`lower_is_better`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    #: What a method's factory must build, for listings and error messages.
    component: ClassVar[str]
    budget_unit: ClassVar[Literal["epochs", "steps"]]
    #: What ``--noise r`` does to the training labels, in words.
    noise: ClassVar[str] = "each training label is replaced, with probability r, by a uniformly random other class"
    default_budget: ClassVar[int]
    #: Metrics for which lower values are better (gaps, divergences, times).
    lower_is_better: ClassVar[tuple[str, ...]] = ()
    baselines: ClassVar[tuple[Method, ...]]

    @abstractmethod
    def metrics(self, data: Data) -> list[str]:
        """The metrics reported on ``data``."""

    @abstractmethod
    def check(self, data: Data) -> None:
        """Raise :class:`~paperzoo.compare.data.DataError` if the task cannot run on ``data``."""

    @abstractmethod
    def split(self, data: Data, seed: int, setting: Setting) -> Split:
        """Training and evaluation sets of ``seed`` (a function of the data and the seed only)."""

    @abstractmethod
    def build_model(self, split: Split) -> nn.Module:
        """A freshly initialised model (drawn from torch's global generator)."""

    @abstractmethod
    def train(self, model: nn.Module, component: nn.Module, split: Split, seed: int, setting: Setting) -> None:
        """Train ``model`` with the method's ``component`` within the budget."""

    @abstractmethod
    def evaluate(self, model: nn.Module, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        """The value of each of ``metrics`` on the evaluation set."""

    @abstractmethod
    def protocol(self, setting: Setting) -> str:
        """One sentence: model, optimiser, batches and budget."""

    def component_context(self, split: Split) -> dict[str, Any]:
        """What a method's factory may take by name from the task (see :func:`build_component`)."""
        return {}

    def run(self, method: Method, seed: int, data: Data, setting: Setting) -> dict[str, float]:
        """One unit: ``method`` trained and evaluated on ``seed``'s split, from ``seed``'s initialisation."""
        seed_everything(seed)
        split = self.split(data, seed, setting)
        model = self.build_model(split)  # before the component, whose construction may draw numbers
        component = build_component(method, self.component_context(split))
        self.train(model, component, split, seed, setting)
        return self.evaluate(model, split, self.metrics(data))


def noisy_labels(y: torch.Tensor, setting: Setting, num_classes: int, seed: int) -> torch.Tensor:
    """``y`` (N,) with symmetric label noise at ``setting.noise`` (each label flipped with that
    probability to a uniformly random other class, drawn from ``seed``); ``y`` itself at 0."""
    if setting.noise == 0.0:
        return y
    from paperzoo.data import label_noise

    noisy, _ = label_noise(y.numpy(), setting.noise, n_classes=num_classes, seed=seed)
    return torch.from_numpy(noisy)


def build_component(method: Method, context: Mapping[str, Any] | None = None) -> nn.Module:
    """Call ``method.factory`` (``"module:attribute"``) with ``method.kwargs``, plus each entry of
    ``context`` (what the task knows, e.g. ``num_classes``) that the factory takes by name and
    the kwargs do not set: a loss with one proxy per class gets the training set's class count."""
    import inspect

    from paperzoo.catalog import resolve

    factory = resolve(method.factory)
    kwargs = dict(method.kwargs)
    if context:
        try:
            accepted = inspect.signature(factory).parameters  # type: ignore[arg-type]
        except (TypeError, ValueError):  # a builtin without a signature
            accepted = {}
        kwargs.update({k: v for k, v in context.items() if k in accepted and k not in kwargs})
    component: Any = factory(**kwargs)  # type: ignore[operator]
    if not isinstance(component, nn.Module):
        raise TypeError(
            f"method {method.name!r}: {method.factory} built a {type(component).__name__}, not an nn.Module"
        )
    return component


class Standardize(nn.Module):
    """``(x - mean) / std`` with the per-feature statistics of the training features
    (a constant feature keeps scale 1)."""

    def __init__(self, x_train: torch.Tensor) -> None:
        super().__init__()
        std = x_train.std(dim=0)
        self.register_buffer("mean", x_train.mean(dim=0))
        self.register_buffer("std", torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def train(
    model: nn.Module, component: nn.Module, loader: DataLoader[Any], seed: int, *, epochs: int, lr: float
) -> None:
    """Adam on the model's and the component's parameters through :func:`paperzoo.engine.fit`."""
    optimiser = torch.optim.Adam([*model.parameters(), *component.parameters()], lr=lr)
    fit(model, component, loader, optimiser, TrainConfig(epochs=epochs, seed=seed, progress=False))


@torch.no_grad()
def outputs(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``model(x)`` in evaluation mode, in chunks of ``chunk`` rows."""
    model.eval()
    return torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])
