"""The check suite of unlearning methods (:class:`paperzoo.unlearning.Unlearner`), on a small
seeded problem that tests of unlearning methods share (:func:`toy_unlearning_problem`)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from paperzoo.testing._common import Check, as_checks, run_checks
from paperzoo.unlearning.base import Unlearner, UnlearningContext, UnlearningData

__all__ = ["check_unlearner", "toy_unlearning_problem", "unlearner_checks"]


def toy_unlearning_problem(
    seed: int = 0, n: int = 300, model: nn.Module | None = None
) -> tuple[nn.Module, UnlearningData, UnlearningContext]:
    """``(model, data, context)``: ``n`` samples of 8 Gaussian features with 4 random labels (forget
    0-59, retain 60-239, test the rest), ``model`` or a fresh 8-16-4 MLP drawn after seeding torch with
    ``seed``, and a context whose recipe trains nothing (methods that retrain get an untrained model)."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 8, generator=g), torch.randint(0, 4, (n,), generator=g)
    data = UnlearningData(x, y, torch.arange(0, 60), torch.arange(60, 240), torch.arange(240, n), 4)
    torch.manual_seed(seed)
    net = model if model is not None else nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    return net, data, UnlearningContext(lambda: nn.Linear(8, 4), lambda m, x, y, s: None, seed=seed)


def _apply(method: Unlearner, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
    """``method.unlearn`` after seeding everything with the context's seed, as the protocol does."""
    from paperzoo.engine import seed_everything

    seed_everything(context.seed)
    return method.unlearn(model, data, context)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def unlearner_checks(make: Callable[[], Unlearner], model: Callable[[], nn.Module] | None = None) -> list[Check]:
    """The ``(name, check)`` pairs for the unlearning method ``make()`` builds, applied to
    :func:`toy_unlearning_problem` (with ``model()`` as the model if given):

    * ``returns a model``: ``unlearn`` returns a module mapping the samples to (N, 4) finite logits;
    * ``deterministic``: two runs from the same model, data and context (each after seeding everything
      with the context's seed, as :class:`~paperzoo.unlearning.UnlearningProtocol` does) give the same state;
    * ``label-free`` (methods with ``uses_labels = False``): shuffling the labels changes nothing;
    * ``no oracle`` (methods without ``needs_oracle``): the method runs with no oracle in its context.
    """

    def problem() -> tuple[nn.Module, UnlearningData, UnlearningContext]:
        return toy_unlearning_problem(0, model=None if model is None else model())

    def returns_a_model() -> None:
        net, data, ctx = problem()
        out = _apply(make(), net, data, ctx)
        assert isinstance(out, nn.Module), f"unlearn returned a {type(out).__name__}, not a module"
        with torch.no_grad():
            logits = out(data.x)
        assert logits.shape == (len(data.x), 4) and bool(torch.isfinite(logits).all()), "bad or non-finite logits"

    def deterministic() -> None:
        (a, data, ctx), (b, _, _) = problem(), problem()
        first, second = _apply(make(), a, data, ctx), _apply(make(), b, data, ctx)
        assert all(torch.equal(p, q) for p, q in zip(_params(first), _params(second), strict=True)), (
            "two runs from the same model, data and context differ"
        )

    def label_free() -> None:
        (a, data, ctx), (b, _, _) = problem(), problem()
        shuffled = copy.copy(data)
        object.__setattr__(
            shuffled, "y", data.y[torch.randperm(len(data.y), generator=torch.Generator().manual_seed(1))]
        )
        first, second = _apply(make(), a, data, ctx), _apply(make(), b, shuffled, ctx)
        assert all(torch.equal(p, q) for p, q in zip(_params(first), _params(second), strict=True)), (
            "a method with uses_labels = False changed with the labels"
        )

    def no_oracle() -> None:
        net, data, ctx = problem()
        assert ctx.oracle is None
        _apply(make(), net, data, ctx)

    method = make()
    pairs: list[Check] = [("returns a model", returns_a_model), ("deterministic", deterministic)]
    if not method.uses_labels:
        pairs.append(("label-free", label_free))
    if not method.needs_oracle:
        pairs.append(("no oracle", no_oracle))
    return as_checks(pairs)


def check_unlearner(make: Callable[[], Unlearner], model: Callable[[], nn.Module] | None = None) -> None:
    """Run :func:`unlearner_checks`; one ``AssertionError`` naming each failed check."""
    run_checks(unlearner_checks(make, model))
