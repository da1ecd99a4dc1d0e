"""A tiny decoder-only transformer language model (GPT-2 style: learned positions, pre-norm
blocks of causal self-attention and a GELU MLP, tied input/output embeddings), for CPU-sized
pre-training experiments such as the loss-based sample reweighting of Sow et al. (ICLR 2025).

Plain PyTorch, built from a configuration (no weights to download); attention uses
:func:`torch.nn.functional.scaled_dot_product_attention` with a causal mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, validate_params

__all__ = ["TinyCausalLM"]


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(), nn.Linear(mlp_ratio * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class TinyCausalLM(nn.Module):
    """``forward(tokens (B, T) int) -> logits (B, T, vocab_size)``; position ``t`` predicts
    token ``t + 1``. GPT-2 initialisation (normal, std 0.02; residual projections scaled by
    ``1 / sqrt(2 n_layers)``)."""

    _parameter_constraints = {
        "vocab_size": [Interval(int, 2, math.inf, closed="left")],
        "d_model": [Interval(int, 1, math.inf, closed="left")],
        "n_layers": [Interval(int, 1, math.inf, closed="left")],
        "n_heads": [Interval(int, 1, math.inf, closed="left")],
        "max_len": [Interval(int, 1, math.inf, closed="left")],
        "mlp_ratio": [Interval(int, 1, math.inf, closed="left")],
        "dropout": [Interval(float, 0.0, 1.0, closed="left")],
    }

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        max_len: int = 128,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        params = {"vocab_size": vocab_size, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
                  "max_len": max_len, "mlp_ratio": mlp_ratio, "dropout": dropout}  # fmt: skip
        validate_params(self._parameter_constraints, params, owner="TinyCausalLM")
        if d_model % n_heads:
            raise ValueError(f"TinyCausalLM: d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.vocab_size, self.max_len = vocab_size, max_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, n_heads, mlp_ratio, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.apply(self._init)
        for block in self.blocks:
            for proj in (block.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.dtype.is_floating_point or tokens.dim() != 2:
            raise ValueError("tokens must be an integer tensor of shape (B, T)")
        t = tokens.shape[1]
        if not 1 <= t <= self.max_len:
            raise ValueError(f"tokens must have 1..{self.max_len} positions (max_len), got {t}")
        x = self.drop(self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device)))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.tok.weight.T
