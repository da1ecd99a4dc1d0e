"""OneHotMSELoss: the conformance suite plus its definition."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from paperzoo.losses import OneHotMSELoss
from paperzoo.testing import classification_loss_checks

CHECKS = classification_loss_checks(OneHotMSELoss)


@pytest.mark.parametrize(("name", "check"), CHECKS, ids=[name for name, _ in CHECKS])
def test_conformance(name: str, check: Callable[[], None]) -> None:
    check()


def test_definition_and_spherical_statistics() -> None:
    logits, target = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 4, 2, 2, 1, 3])
    per = OneHotMSELoss(reduction="none")(logits, target)
    ref = ((logits - F.one_hot(target, 5).double()) ** 2).sum(1)
    assert torch.allclose(per, ref)
    # a member of the spherical family: S2 - 2 o_c + 1
    s2, o_c = logits.pow(2).sum(1), logits.gather(1, target[:, None]).squeeze(1)
    assert torch.allclose(per, s2 - 2 * o_c + 1)
    assert OneHotMSELoss()(F.one_hot(target, 5).double(), target) == 0
