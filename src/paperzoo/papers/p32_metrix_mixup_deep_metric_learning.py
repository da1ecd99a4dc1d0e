"""Record of paper 32, Metrix: mixup for deep metric learning (Venkataramanan et al., ICLR 2022)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=32,
    summary=(
        "Metrix writes pair-based metric losses as a positive and a negative part per anchor and generalises them "
        "to mixed examples with a soft positivity y: the positive part is weighted by y, the negative part by 1 - y. "
        "Interpolating a positive with a negative of the anchor (in input, feature or embedding space, y = lam ~ "
        "Beta(2, 2)) gives L = L_clean + 0.4 L_mix. Here a pytorch-metric-learning loss wrapper around the "
        "contrastive and multi-similarity losses (embedding mixup through Gram matrices, no mixed embedding "
        "materialised) plus input / feature mixup procedures for the training loop."
    ),
    components=(
        "paperzoo.losses.MetrixLoss",
        "paperzoo.losses.MetrixContrastiveLoss",
        "paperzoo.losses.MetrixMultiSimilarityLoss",
        "paperzoo.losses.metrix.mix_pairs",
        "paperzoo.losses.metrix.metrix_mixed_loss",
        "paperzoo.losses.metrix.utilization",
        "paperzoo.training.metrix.MetrixInputMixup",
        "paperzoo.training.metrix.MetrixFeatureMixup",
        "paperzoo.training.metrix.FeatureMixupHook",
    ),
    usage="""\
import torch
from paperzoo.losses import MetrixContrastiveLoss, MetrixMultiSimilarityLoss
emb, labels = torch.randn(60, 64, requires_grad=True), torch.arange(60) // 5  # 12 classes x 5
loss = MetrixContrastiveLoss()(emb, labels)  # clean PML contrastive + 0.4 x mixed, lam ~ Beta(2, 2)
loss.backward()
ms = MetrixMultiSimilarityLoss(lam=0.5)(emb, labels)  # around the multi-similarity loss of paper 28
""",
    paper_result=(
        "Mixing inputs, intermediate features or embeddings with Metrix 'significantly outperforms' the state of "
        "the art on CUB-200-2011, Cars196, Stanford Online Products and In-Shop (Recall@K, ImageNet ResNet-50, "
        "contrastive / multi-similarity / proxy-anchor losses); per-table values unconfirmed"
    ),
    methods=(
        Method(
            "metrix-contrastive",
            "retrieval",
            "paperzoo.losses:MetrixContrastiveLoss",
            {},
            "Metrix embedding mixup around PML's contrastive loss (Euclidean, margins 0 / 0.5; w=0.4, lam~Beta(2,2))",
        ),
        Method(
            "metrix-ms",
            "retrieval",
            "paperzoo.losses:MetrixMultiSimilarityLoss",
            {},
            "Metrix embedding mixup around the multi-similarity loss (alpha=2, beta=50, base=0.5; w=0.4)",
        ),
    ),
    bench=(
        LossBench(
            "MetrixContrastiveLoss",
            "metric",
            "paperzoo.losses:MetrixContrastiveLoss",
            reference="paperzoo.losses.metrix:pml_contrastive_reference",
            reference_name="PML ContrastiveLoss(pos_margin=0, neg_margin=0.5) (clean, no mixup)",
            target_ratio=1.0,
            target_min_batch=512,
            notes="paper 32; clean contrastive + 0.4 x mixed over all sum_a |P(a)||N(a)| positive-negative triples",
        ),
    ),
)
