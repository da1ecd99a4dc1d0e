"""Pieces shared by the check suites: running a suite, expected errors, state round trips."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import torch
from torch import nn

Check = tuple[str, Callable[[], None]]
"""A named check: calling it returns None or raises ``AssertionError`` saying what failed."""


def as_checks(pairs: list[Check]) -> list[Check]:
    """The same checks, each raising ``AssertionError`` on any failure: an unexpected exception
    (the loss crashed, e.g. it cannot be pickled) is re-raised as one, chained."""

    def asserting(fn: Callable[[], None]) -> Callable[[], None]:
        def check() -> None:
            try:
                fn()
            except AssertionError:
                raise
            except Exception as exc:
                raise AssertionError(f"raised {type(exc).__name__}: {exc}") from exc

        return check

    return [(name, asserting(fn)) for name, fn in pairs]


def run_checks(checks: list[Check]) -> None:
    """Run every check; raise one ``AssertionError`` naming each failed check and why."""
    failures = []
    for name, check in checks:
        try:
            check()
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    if failures:
        raise AssertionError(f"{len(failures)} of {len(checks)} checks failed:\n  " + "\n  ".join(failures))


def reference_error(reference: Callable[[], object]) -> Exception:
    """The exception the reference validation raises for a bad input (the expected error)."""
    try:
        reference()
    except (TypeError, ValueError) as exc:
        return exc
    raise RuntimeError("the bad-input case is accepted by the reference validation")


def assert_raises_like(call: Callable[[], object], expected: Exception, *, any_owner: bool = False) -> None:
    """``call()`` must raise ``expected``'s type with its message; with ``any_owner``, the
    ``"<owner>: "`` prefix of :func:`paperzoo._validation.validate_params` messages may differ."""

    def text(message: str) -> str:
        return message.split(": ", 1)[-1] if any_owner else message

    want = str(expected)
    try:
        call()
    except Exception as exc:
        got = str(exc)
        if type(exc) is type(expected) and text(got) == text(want):
            return
        raise AssertionError(
            f"expected {type(expected).__name__}({want!r}), got {type(exc).__name__}({got!r})"
        ) from exc
    raise AssertionError(f"no error raised; expected {type(expected).__name__}({want!r})")


def assert_finite(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise AssertionError(f"{what} is not finite: {t}")


def assert_equal(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    if not torch.equal(actual, expected):
        raise AssertionError(f"{what}: {actual} != {expected}")


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    try:
        torch.testing.assert_close(actual, expected)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


def perturb_state(module: nn.Module, seed: int) -> None:
    """Add small noise to every floating parameter and buffer, so that a round trip that loses
    state gives a different loss even when a fresh module starts from the same values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.is_floating_point():
                t.add_(1e-3 * torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device))


def pickle_copy(module: nn.Module) -> nn.Module:
    return pickle.loads(pickle.dumps(module))


def state_dict_copy(module: nn.Module, make: Callable[[], nn.Module]) -> nn.Module:
    """A fresh ``make()`` with ``module``'s state dict loaded (strictly)."""
    fresh = make()
    fresh.load_state_dict(module.state_dict())
    return fresh
