import math

import numpy as np
import pytest
import torch

from paperzoo._validation import (
    REDUCTIONS,
    Interval,
    Options,
    check_embeddings_labels,
    check_logits_target,
    check_sample_weight,
    check_similarity_labels,
    validate_params,
)


# --------------------------------------------------------------------------- declarative constraints
@pytest.mark.parametrize(
    ("interval", "text", "inside", "outside"),
    [
        (
            Interval(float, 0, math.inf, closed="neither"),
            "a float in (0, inf)",
            [1e-300, 1, 2.5, np.float32(3.0), np.int64(4)],
            [0, 0.0, -1, math.inf, math.nan, True, "1", None, torch.tensor(1.0)],
        ),
        (
            Interval(float, 0, math.inf, closed="both"),
            "a float in [0, inf]",
            [0, 0.0, 1.5, math.inf],
            [-1e-9, -math.inf, math.nan, False],
        ),
        (
            Interval(float, -math.inf, math.inf, closed="neither"),
            "a float in (-inf, inf)",
            [-1e300, 0, 7],
            [math.inf, -math.inf, math.nan],
        ),
        (
            Interval(int, 2, math.inf, closed="left"),
            "an int in [2, inf)",
            [2, 3, 10**400, np.int64(5)],
            [1, 2.0, np.float64(3.0), True, math.inf],
        ),
        (
            Interval(float, 0, 1, closed="right"),
            "a float in (0, 1]",
            [1, 0.5],
            [0, 1.0000001],
        ),
    ],
)
def test_interval(interval: Interval, text: str, inside: list, outside: list) -> None:
    assert str(interval) == text
    assert all(interval.is_satisfied_by(v) for v in inside)
    assert not any(interval.is_satisfied_by(v) for v in outside)


def test_bad_constraints_raise() -> None:
    with pytest.raises(TypeError, match="int or float"):
        Interval(complex, 0, 1, closed="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="closed"):
        Interval(float, 0, 1, closed="open")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low <= high"):
        Interval(float, 1, 0, closed="both")
    with pytest.raises(ValueError, match="at least one"):
        Options(())


def test_options() -> None:
    options = Options(REDUCTIONS)
    assert str(options) == "one of {'mean', 'sum', 'none'}"
    assert options.is_satisfied_by("sum") and not options.is_satisfied_by("avg")
    assert str(Options({"b", "a"})) == "one of {'a', 'b'}"  # sets are listed sorted
    assert Options((0, 1)).is_satisfied_by(1) and not Options((0, 1)).is_satisfied_by(True)


def test_validate_params_has_one_wording() -> None:
    constraints = {
        "a": [Interval(float, 0, math.inf, closed="neither")],
        "eps": [None, Interval(float, 0, math.inf, closed="neither")],
        "reduction": [Options(REDUCTIONS)],
    }
    validate_params(constraints, {"a": 1, "eps": None, "reduction": "none"}, owner="ZLoss")
    validate_params(constraints, {"eps": 1e-8}, owner="ZLoss")  # a subset is checked
    with pytest.raises(ValueError, match=r"^ZLoss: a must be a float in \(0, inf\), got -1$"):
        validate_params(constraints, {"a": -1}, owner="ZLoss")
    with pytest.raises(ValueError, match=r"^f: eps must be None or a float in \(0, inf\), got 0$"):
        validate_params(constraints, {"eps": 0}, owner="f")
    with pytest.raises(ValueError, match=r"^f: reduction must be one of \{'mean', 'sum', 'none'\}, got 'avg'$"):
        validate_params(constraints, {"a": 1.0, "reduction": "avg"}, owner="f")
    with pytest.raises(KeyError):
        validate_params(constraints, {"b": 1.0}, owner="f")


# --------------------------------------------------------------------------- tensor checks
def test_logits_target() -> None:
    check_logits_target(torch.zeros(3, 4), torch.tensor([0, 3, 1]))
    with pytest.raises(ValueError, match=r"shape \(B, C\)"):
        check_logits_target(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="empty batch"):
        check_logits_target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        check_logits_target(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="NaN"):
        check_logits_target(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(TypeError, match="integer"):
        check_logits_target(torch.zeros(2, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        check_logits_target(torch.zeros(2, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="floating-point"):
        check_logits_target(torch.zeros(2, 4, dtype=torch.long), torch.tensor([0, 1]))


def test_sample_weight() -> None:
    check_sample_weight(torch.tensor([0.0, 2.0]), 2)
    check_sample_weight(torch.tensor([1, 3]), 2)  # integer counts are weights too
    with pytest.raises(TypeError, match=r"weight must be a real torch.Tensor of shape \(2,\)"):
        check_sample_weight(torch.tensor([True, False]), 2)
    with pytest.raises(ValueError, match=r"weight must have shape \(2,\), got \(3,\)"):
        check_sample_weight(torch.ones(3), 2)
    with pytest.raises(ValueError, match="weight contains NaN"):
        check_sample_weight(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="weight must be non-negative, got a minimum of -0.5"):
        check_sample_weight(torch.tensor([1.0, -0.5]), 2)


def test_embeddings_labels_and_similarity() -> None:
    check_embeddings_labels(torch.zeros(3, 2), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="empty batch"):
        check_embeddings_labels(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="infinite"):
        check_embeddings_labels(torch.tensor([[float("inf"), 0.0]]), torch.tensor([0]))
    check_similarity_labels(torch.eye(3), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="square"):
        check_similarity_labels(torch.zeros(3, 2), torch.tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="floating-point"):
        check_similarity_labels(torch.eye(3, dtype=torch.long), torch.tensor([0, 1, 1]))
