"""OutfitTransformer (Sarkar et al., "OutfitTransformer: Learning Outfit Representations for Fashion
Recommendation", WACV 2023, arXiv 2204.04812), small, plus two baselines without a transformer.

* :class:`OutfitEncoder`: item embeddings of an outfit (a *set*, padded to L items with a mask) go through a
  ``torch.nn.TransformerEncoder`` together with one learnable **task token** at position 0, with no positional
  encoding (so the output is invariant to the order of the items and to masked padding). The *outfit token*
  gives a compatibility logit through an MLP (:meth:`OutfitEncoder.forward`, compatibility prediction). The
  *target-item token* is ``[learnable part || embedding of the wanted category]`` and its output, through a
  linear layer, is the target embedding used for complementary item retrieval
  (:meth:`OutfitEncoder.target_embedding`); candidates are embedded by passing each single item through the
  same transformer and projection (:meth:`OutfitEncoder.candidate_embedding`, as the unofficial
  re-implementation does; the paper's candidate path is unconfirmed).
* :class:`MeanPoolCompatibility`: mean of the item embeddings -> MLP -> logit (no transformer).
* :class:`PairwiseCompatibility`: mean over item pairs of an MLP on the concatenated pair -> logit.

Item encoders are pluggable (``item_encoder``); by default a small MLP over precomputed item features.
Defaults are small; the paper's encoder is 6 layers, 16 heads, d_model 128 (as reported by the unofficial
re-implementation).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MeanPoolCompatibility", "OutfitEncoder", "PairwiseCompatibility", "fitb_choice"]


def _item_mlp(in_dim: int, d: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))


def _check_outfit(items: torch.Tensor, mask: torch.Tensor) -> None:
    if items.dim() != 3 or items.shape[0] == 0 or items.shape[1] == 0:
        raise ValueError(f"items must be a non-empty (B, L, F) tensor, got shape {tuple(items.shape)}")
    if mask.shape != items.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(items.shape[:2])} (True = a real item)")
    if not bool(mask.any(1).all()):
        raise ValueError("mask: every outfit needs at least one real item")


class OutfitEncoder(nn.Module):
    """Transformer set encoder with task tokens (outfit token for compatibility, target-item token for retrieval).

    Args:
        item_dim: features per item.
        d_model, n_heads, n_layers, d_ffn, dropout: the transformer encoder.
        n_categories: categories the target-item token can ask for.
        spec_dim: width of the category (specification) part of the target-item token (< d_model).
        d_embed: width of the retrieval embedding.
        item_encoder: module mapping (N, item_dim) -> (N, d_model); default a 2-layer MLP.
    """

    def __init__(
        self,
        item_dim: int,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        d_ffn: int = 64,
        dropout: float = 0.0,
        n_categories: int = 10,
        spec_dim: int = 8,
        d_embed: int = 32,
        item_encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not 0 < spec_dim < d_model:
            raise ValueError(f"spec_dim must be in (0, d_model={d_model}), got {spec_dim}")
        self.item_encoder = item_encoder if item_encoder is not None else _item_mlp(item_dim, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ffn, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.outfit_token = nn.Parameter(torch.randn(d_model) * 0.02)
        self.target_token = nn.Parameter(torch.randn(d_model - spec_dim) * 0.02)
        self.category_spec = nn.Embedding(n_categories, spec_dim)
        self.compat_head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, 1))
        self.embed_head = nn.Linear(d_model, d_embed)
        self.n_categories = n_categories

    def _encode(self, token: torch.Tensor, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, f = items.shape
        h = self.item_encoder(items.reshape(b * n, f)).reshape(b, n, -1)
        seq = torch.cat([token.unsqueeze(1), h], dim=1)
        pad = torch.cat([mask.new_zeros(b, 1), ~mask], dim=1)  # True = ignored
        return self.encoder(seq, src_key_padding_mask=pad)[:, 0]

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Compatibility logits (B,) of outfits ``items`` (B, L, F) with ``mask`` (B, L) (True = real item)."""
        _check_outfit(items, mask)
        token = self.outfit_token.expand(items.shape[0], -1)
        return self.compat_head(self._encode(token, items, mask)).squeeze(-1)

    def target_embedding(self, items: torch.Tensor, mask: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """Target-item embeddings (B, d_embed) of partial outfits, asking for an item of ``category`` (B,)."""
        _check_outfit(items, mask)
        if category.shape != items.shape[:1] or category.dtype != torch.long:
            raise ValueError(f"category must be a long tensor of shape ({items.shape[0]},)")
        if bool(((category < 0) | (category >= self.n_categories)).any()):
            raise ValueError(f"category must be in [0, {self.n_categories})")
        token = torch.cat([self.target_token.expand(items.shape[0], -1), self.category_spec(category)], dim=1)
        return self.embed_head(self._encode(token, items, mask))

    def candidate_embedding(self, items: torch.Tensor) -> torch.Tensor:
        """Retrieval embeddings (N, d_embed) of single items (N, F): each item alone through the encoder."""
        h = self.item_encoder(items).unsqueeze(1)
        return self.embed_head(self.encoder(h)[:, 0])


class MeanPoolCompatibility(nn.Module):
    """Baseline without a transformer: mean of the (masked) item embeddings -> MLP -> compatibility logit."""

    def __init__(self, item_dim: int, d_model: int = 32, item_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.item_encoder = item_encoder if item_encoder is not None else _item_mlp(item_dim, d_model)
        self.head = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.ReLU(), nn.Linear(2 * d_model, 1))

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check_outfit(items, mask)
        b, n, f = items.shape
        h = self.item_encoder(items.reshape(b * n, f)).reshape(b, n, -1)
        m = mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1)).squeeze(-1)


class PairwiseCompatibility(nn.Module):
    """Baseline: mean over all unordered pairs of real items of an MLP on ``[h_i || h_j]`` (symmetrised)."""

    def __init__(self, item_dim: int, d_model: int = 32, item_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.item_encoder = item_encoder if item_encoder is not None else _item_mlp(item_dim, d_model)
        self.pair = nn.Sequential(nn.Linear(2 * d_model, 2 * d_model), nn.ReLU(), nn.Linear(2 * d_model, 1))

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _check_outfit(items, mask)
        b, n, f = items.shape
        h = self.item_encoder(items.reshape(b * n, f)).reshape(b, n, -1)
        hi, hj = h.unsqueeze(2).expand(b, n, n, -1), h.unsqueeze(1).expand(b, n, n, -1)
        s = self.pair(torch.cat([hi, hj], -1)).squeeze(-1)
        s = 0.5 * (s + s.transpose(1, 2))  # symmetric pair score
        valid = mask.unsqueeze(2) & mask.unsqueeze(1) & ~torch.eye(n, dtype=torch.bool, device=items.device)
        v = valid.to(s.dtype)
        return (s * v).sum((1, 2)) / v.sum((1, 2)).clamp_min(1.0)


def fitb_choice(model: nn.Module, partial: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Fill-in-the-blank: for partial outfits (B, L, F) + ``mask`` (B, L) and candidates (B, K, F), the index (B,)
    of the candidate whose completed outfit gets the highest compatibility score under ``model``."""
    b, k, f = candidates.shape
    full = torch.cat([partial.unsqueeze(1).expand(b, k, *partial.shape[1:]), candidates.unsqueeze(2)], dim=2)
    fmask = torch.cat([mask.unsqueeze(1).expand(b, k, -1), mask.new_ones(b, k, 1)], dim=2)
    scores = model(full.reshape(b * k, -1, f), fmask.reshape(b * k, -1)).reshape(b, k)
    return scores.argmax(1)
