"""The prototype-node graph head of ProtoN (Peddi, Bathini, Balasubramanian, Sarma & Samanta, "ProtoN: Prototype
Node Graph Neural Network for Unconstrained Multi-Impression Ear Recognition", arXiv:2508.04381, 2025).

Only the paper's abstract was available, so this is a concrete design that follows its description, not a
numerically verified copy. Each identity of an episode is a small fully connected graph whose nodes are its K
impressions plus one prototype node ``p = mean(H) + t`` (``t`` a learnable identity token shared by all classes).
A :class:`PrototypeGraphLayer` refines both node kinds by dual-path message passing:

* path 1 (impressions): ``a_ij = softmax_j((W_q h_i) . (W_k h_j) / sqrt(d))`` over the class's impressions (self
  included), ``m_i = sum_j a_ij W_v h_j``, ``h_i' = LN(h_i + ReLU(W_1 m_i + W_p p))``;
* path 2 (prototype): ``b_i = softmax_i((W_q' p) . (W_k' h_i) / sqrt(d))``,
  ``p' = LN(p + ReLU(W_3 sum_i b_i h_i))`` (it reads the layer's input impressions).

Graphs of different identities never exchange messages (only the alignment loss couples them). Everything works on
padded dense tensors ``(N, K, d)`` with an optional boolean mask ``(N, K)`` (True = a real impression): one batched
matmul per projection, no loop over classes or nodes, no torch_geometric.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from paperzoo._validation import Interval, check_finite, validate_params

__all__ = ["PrototypeGraphLayer", "ProtoNHead", "check_graphs"]


def check_graphs(impressions: torch.Tensor, mask: torch.Tensor | None, dim: int | None = None) -> torch.Tensor:
    """Validate padded class graphs ``(N, K, d)`` and their mask; return the mask (all True when None)."""
    if not isinstance(impressions, torch.Tensor) or not impressions.is_floating_point():
        raise TypeError("impressions must be a floating-point torch.Tensor of shape (N, K, d)")
    if impressions.dim() != 3:
        raise ValueError(f"impressions must have shape (N, K, d), got {tuple(impressions.shape)}")
    n, k, d = impressions.shape
    if n == 0 or k == 0:
        raise ValueError(f"impressions must hold at least one class and one impression, got {tuple(impressions.shape)}")
    if dim is not None and d != dim:
        raise ValueError(f"impressions must have feature size {dim}, got {d}")
    check_finite(impressions, "impressions")
    if mask is None:
        return torch.ones(n, k, dtype=torch.bool, device=impressions.device)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (n, k):
        raise ValueError(f"mask must be a bool tensor of shape ({n}, {k})")
    if not bool(mask.any(1).all()):
        raise ValueError("mask leaves a class graph with no impression (every class needs at least one)")
    return mask


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.softmax(scores.masked_fill(~mask, -torch.inf), dim=-1)


class PrototypeGraphLayer(nn.Module):
    """One PGNN layer: dual-path message passing inside each class graph (see the module docstring).

    Args:
        dim: node feature size d.
        use_layernorm: apply LayerNorm after each residual update (the parameter-free special case used by the
            golden values sets this False and all projections to the identity).
    """

    _parameter_constraints = {"dim": [Interval(int, 1, math.inf, closed="left")]}

    def __init__(self, dim: int, use_layernorm: bool = True) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"dim": dim}, owner=type(self).__name__)
        self.dim = dim
        names = ("w_q", "w_k", "w_v", "w_1", "w_p", "w_q_proto", "w_k_proto", "w_3")
        for name in names:
            setattr(self, name, nn.Linear(dim, dim, bias=False))
        self.norm_h: nn.Module = nn.LayerNorm(dim) if use_layernorm else nn.Identity()
        self.norm_p: nn.Module = nn.LayerNorm(dim) if use_layernorm else nn.Identity()

    def forward(
        self, impressions: torch.Tensor, prototypes: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refine ``impressions (N, K, d)`` and ``prototypes (N, d)``; padded positions of the output are 0."""
        mask = check_graphs(impressions, mask, self.dim)
        if tuple(prototypes.shape) != (impressions.shape[0], self.dim):
            raise ValueError(
                f"prototypes must have shape ({impressions.shape[0]}, {self.dim}), got {tuple(prototypes.shape)}"
            )
        h, p = impressions, prototypes
        scale = math.sqrt(self.dim)
        # path 1: impression <- impressions (attention) and <- prototype
        scores = self.w_q(h) @ self.w_k(h).transpose(1, 2) / scale  # (N, K, K)
        attn = _masked_softmax(scores, mask[:, None, :])
        msg = attn @ self.w_v(h)
        h_new = self.norm_h(h + torch.relu(self.w_1(msg) + self.w_p(p)[:, None, :]))
        h_new = h_new * mask[..., None]
        # path 2: prototype <- impressions (attention over the class's nodes)
        b = _masked_softmax((self.w_k_proto(h) @ self.w_q_proto(p)[:, :, None]).squeeze(-1) / scale, mask)
        p_new = self.norm_p(p + torch.relu(self.w_3((b[:, :, None] * h).sum(1))))
        return h_new, p_new


class ProtoNHead(nn.Module):
    """The ProtoN graph head: prototype nodes ``mean(H_c) + t`` refined by ``n_layers`` :class:`PrototypeGraphLayer`.

    ``forward(impressions (N, K, d), mask=None) -> (refined impressions (N, K, d), refined prototypes (N, d))``.
    The token ``t`` starts at zero, so an untrained head starts from the ProtoNet prototype (the class mean).
    """

    _parameter_constraints = {
        "dim": [Interval(int, 1, math.inf, closed="left")],
        "n_layers": [Interval(int, 1, 64, closed="both")],
    }

    def __init__(self, dim: int, n_layers: int = 2, use_layernorm: bool = True) -> None:
        super().__init__()
        validate_params(self._parameter_constraints, {"dim": dim, "n_layers": n_layers}, owner=type(self).__name__)
        self.dim = dim
        self.token = nn.Parameter(torch.zeros(dim))
        self.layers = nn.ModuleList(PrototypeGraphLayer(dim, use_layernorm) for _ in range(n_layers))

    def initial_prototypes(self, impressions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = mask[..., None].to(impressions.dtype)
        return (impressions * w).sum(1) / w.sum(1) + self.token.to(impressions.dtype)

    def forward(self, impressions: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mask = check_graphs(impressions, mask, self.dim)
        h = impressions * mask[..., None]
        p = self.initial_prototypes(h, mask)
        for layer in self.layers:
            h, p = layer(h, p, mask)
        return h, p
