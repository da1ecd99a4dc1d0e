"""Tests of the ProtoN graph head (paper 1): golden values, invariances, limiting cases, bad input."""

from __future__ import annotations

import pytest
import torch

from paperzoo.models.proton import ProtoNHead, PrototypeGraphLayer

TOKEN = [0.05, -0.05, 0.0]
IMPRESSIONS = [[[1.0, 0.0, 0.5], [0.8, 0.2, 0.4]], [[0.0, 1.0, 0.2], [0.1, 0.9, 0.0]]]


def identity_head(dim: int = 3, token: list[float] | None = None, n_layers: int = 1) -> ProtoNHead:
    """The parameter-free special case: every projection the identity, no LayerNorm."""
    head = ProtoNHead(dim, n_layers=n_layers, use_layernorm=False).double()
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.eye(dim))
        head.token.copy_(torch.tensor(token if token is not None else [0.0] * dim))
    return head


def test_golden_values() -> None:
    h, p = identity_head(token=TOKEN)(torch.tensor(IMPRESSIONS, dtype=torch.float64))
    want_h = [
        [[2.857204, 0.142796, 1.403602], [2.654616, 0.345384, 1.302308]],
        [[0.14798, 2.85202, 0.404039], [0.248846, 2.751154, 0.202309]],
    ]
    want_p = [[1.856486, 0.143514, 0.903243], [0.148557, 1.851443, 0.202886]]
    torch.testing.assert_close(h, torch.tensor(want_h, dtype=torch.float64), atol=2e-6, rtol=0)
    torch.testing.assert_close(p, torch.tensor(want_p, dtype=torch.float64), atol=2e-6, rtol=0)


def test_single_impression_reduces_to_residual_relu() -> None:
    x = torch.randn(4, 1, 5, dtype=torch.float64)
    head = identity_head(5, token=[0.1, -0.2, 0.3, 0.0, 0.5])
    h, _ = head(x)
    p = x[:, 0] + head.token
    torch.testing.assert_close(h[:, 0], x[:, 0] + torch.relu(x[:, 0] + p))


def test_permutation_equivariance_and_prototype_invariance() -> None:
    torch.manual_seed(0)
    head = ProtoNHead(8, n_layers=2).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    perm = torch.randperm(5)
    h, p = head(x)
    h2, p2 = head(x[:, perm])
    torch.testing.assert_close(h2, h[:, perm])
    torch.testing.assert_close(p2, p)


def test_class_graphs_are_independent() -> None:
    torch.manual_seed(1)
    head = ProtoNHead(6).double()
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    _, p = head(x)
    y = x.clone()
    y[1] += torch.randn(4, 6, dtype=torch.float64)
    _, q = head(y)
    torch.testing.assert_close(q[[0, 2]], p[[0, 2]])
    assert not torch.allclose(q[1], p[1])


def test_mask_equals_dropping_the_padded_impressions() -> None:
    torch.manual_seed(2)
    head = ProtoNHead(4).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    h, p = head(x, mask)
    h_small, p_small = head(x[:1, :2])
    torch.testing.assert_close(p[0], p_small[0])
    torch.testing.assert_close(h[0, :2], h_small[0])
    assert torch.all(h[0, 2] == 0)


def test_gradients_reach_every_parameter() -> None:
    head = ProtoNHead(4)
    h, p = head(torch.randn(3, 2, 4))
    (h.sum() + p.pow(2).sum()).backward()
    assert all(param.grad is not None for param in head.parameters())


@pytest.mark.parametrize(
    ("x", "mask", "match"),
    [
        (torch.randn(3, 4), None, "impressions must have shape"),
        (torch.randn(0, 2, 4), None, "at least one class"),
        (torch.full((2, 2, 4), float("nan")), None, "impressions contains NaN"),
        (torch.randn(2, 2, 5), None, "feature size 4"),
        (torch.randn(2, 2, 4), torch.ones(2, 3, dtype=torch.bool), "mask must be"),
        (torch.randn(2, 2, 4), torch.tensor([[True, False], [False, False]]), "no impression"),
    ],
)
def test_bad_input(x: torch.Tensor, mask: torch.Tensor | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProtoNHead(4)(x, mask)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="dim"):
        ProtoNHead(0)
    with pytest.raises(ValueError, match="n_layers"):
        ProtoNHead(4, n_layers=0)
    with pytest.raises(ValueError, match="prototypes must have shape"):
        PrototypeGraphLayer(4)(torch.randn(2, 3, 4), torch.randn(3, 4))
