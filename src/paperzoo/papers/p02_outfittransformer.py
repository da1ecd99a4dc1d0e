"""Record of paper 02, OutfitTransformer (Sarkar et al., WACV 2023)."""

from paperzoo.papers import Record

RECORD = Record(
    number=2,
    summary=(
        "An outfit is a set of items: OutfitTransformer feeds the item embeddings, with no positional encoding, to a "
        "transformer encoder together with a learnable task token. The outfit token's output gives a compatibility "
        "score (fill-in-the-blank picks the best-scoring completion); the target-item token, carrying the wanted "
        "category, gives an embedding for complementary item retrieval, trained with a set-wise ranking loss "
        "(mean hinge over negatives + hardest-negative hinge). Here: a small set encoder, two non-transformer "
        "baselines, the focal and set-wise ranking losses, and a generated outfit set of Fashion-MNIST images."
    ),
    components=(
        "paperzoo.models.outfit_transformer.OutfitEncoder",
        "paperzoo.models.outfit_transformer.MeanPoolCompatibility",
        "paperzoo.models.outfit_transformer.PairwiseCompatibility",
        "paperzoo.models.outfit_transformer.fitb_choice",
        "paperzoo.losses.SetWiseOutfitRankingLoss",
        "paperzoo.losses.outfit_ranking.set_wise_ranking_loss",
        "paperzoo.losses.FocalBinaryLoss",
        "paperzoo.losses.outfit_ranking.focal_binary_loss",
        "paperzoo.data.outfits.make_outfits",
        "paperzoo.data.outfits.make_fitb",
    ),
    usage="""\
import torch
from paperzoo.models.outfit_transformer import OutfitEncoder, fitb_choice
from paperzoo.losses import FocalBinaryLoss, SetWiseOutfitRankingLoss
model = OutfitEncoder(item_dim=64, d_model=32, n_heads=4, n_layers=2, n_categories=10)
items, mask = torch.randn(8, 4, 64), torch.ones(8, 4, dtype=torch.bool)  # 8 outfits of <= 4 items
mask[:4, 3] = False  # the first four have 3 items
loss = FocalBinaryLoss(gamma=2.0)(model(items, mask), torch.randint(0, 2, (8,)).float())
e_t = model.target_embedding(items[:, :3], mask[:, :3], torch.randint(0, 10, (8,)))  # (8, 32)
cands = model.candidate_embedding(torch.randn(8 * 6, 64)).reshape(8, 6, -1)
loss = loss + SetWiseOutfitRankingLoss(margin=0.5)(e_t, cands[:, 0], cands[:, 1:])
loss.backward()
pick = fitb_choice(model, items[:, :3], mask[:, :3], torch.randn(8, 4, 64))  # (8,) candidate index
""",
    paper_result=(
        "Polyvore Outfits (non-disjoint): compatibility AUC 0.93 and FITB accuracy 67.10% vs 0.91 / 63.73% for "
        "CSA-Net (as cited by an unofficial re-implementation; unconfirmed)"
    ),
)
