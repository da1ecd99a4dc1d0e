"""Tests of the OutfitTransformer set encoder and its baselines (paper 02)."""

from __future__ import annotations

import pytest
import torch

from paperzoo.models.outfit_transformer import (
    MeanPoolCompatibility,
    OutfitEncoder,
    PairwiseCompatibility,
    fitb_choice,
)


def _outfits() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    items = torch.randn(5, 4, 12, generator=g)
    mask = torch.ones(5, 4, dtype=torch.bool)
    mask[:2, 3] = False
    return items, mask


@pytest.mark.parametrize("cls", [OutfitEncoder, MeanPoolCompatibility, PairwiseCompatibility])
def test_permutation_and_padding_invariance(cls: type[torch.nn.Module]) -> None:
    torch.manual_seed(0)
    model = cls(12).eval()
    items, mask = _outfits()
    with torch.no_grad():
        s = model(items, mask)
        perm = torch.tensor([2, 0, 3, 1])
        assert s.shape == (5,)
        assert torch.allclose(model(items[:, perm], mask[:, perm]), s, atol=1e-5)
        padded = torch.cat([items, 100 * torch.randn(5, 3, 12)], 1)
        pmask = torch.cat([mask, torch.zeros(5, 3, dtype=torch.bool)], 1)
        assert torch.allclose(model(padded, pmask), s, atol=1e-5)
        # masked slots are ignored whatever they hold
        other = items.clone()
        other[:2, 3] = 50.0
        assert torch.allclose(model(other, mask), s, atol=1e-5)


def test_target_token_embeddings_depend_on_category_and_are_invariant() -> None:
    torch.manual_seed(0)
    model = OutfitEncoder(12, d_embed=16, n_categories=4).eval()
    items, mask = _outfits()
    with torch.no_grad():
        e0 = model.target_embedding(items, mask, torch.zeros(5, dtype=torch.long))
        e1 = model.target_embedding(items, mask, torch.ones(5, dtype=torch.long))
        perm = torch.tensor([3, 1, 0, 2])
        assert e0.shape == (5, 16) and not torch.allclose(e0, e1)
        assert torch.allclose(
            model.target_embedding(items[:, perm], mask[:, perm], torch.zeros(5, dtype=torch.long)), e0, atol=1e-5
        )
        assert model.candidate_embedding(items[:, 0]).shape == (5, 16)
    with pytest.raises(ValueError, match="category"):
        model.target_embedding(items, mask, torch.full((5,), 4, dtype=torch.long))


def test_fitb_picks_the_best_scoring_completion() -> None:
    class SumScore(torch.nn.Module):
        def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return (items[..., 0] * mask).sum(1)

    partial = torch.zeros(3, 2, 1)
    cand = torch.tensor([[[0.0], [5.0], [1.0]], [[9.0], [5.0], [1.0]], [[0.0], [1.0], [2.0]]])
    pick = fitb_choice(SumScore(), partial, torch.ones(3, 2, dtype=torch.bool), cand)
    assert pick.tolist() == [1, 0, 2]


def test_bad_input() -> None:
    model = OutfitEncoder(12)
    items, mask = _outfits()
    with pytest.raises(ValueError, match="mask"):
        model(items, mask.float())
    with pytest.raises(ValueError, match="mask"):
        model(items, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="items"):
        model(items[0], mask[0])
    with pytest.raises(ValueError, match="spec_dim"):
        OutfitEncoder(12, d_model=8, spec_dim=8)


def test_compatibility_training_step_reduces_loss() -> None:
    torch.manual_seed(0)
    model = OutfitEncoder(12)
    items, mask = _outfits()
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(items, mask), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
