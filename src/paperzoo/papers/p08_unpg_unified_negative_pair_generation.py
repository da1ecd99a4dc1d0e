"""Record of paper 8, UNPG: Unified Negative Pair Generation (Jung et al., arXiv:2203.11593)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=8,
    summary=(
        "Margin-softmax losses (ArcFace, CosFace) only see sample-to-class-weight negatives, which become easy; "
        "UNPG appends the mini-batch's negative-pair similarities, after a box-and-whisker filter of outliers, as "
        "extra logits of the softmax. Here it is a pytorch-metric-learning ArcFaceLoss / CosFaceLoss subclass, plus "
        "the filter, the batch negatives and the loss on precomputed margin logits for any other head."
    ),
    components=(
        "paperzoo.losses.UNPGArcFaceLoss",
        "paperzoo.losses.UNPGCosFaceLoss",
        "paperzoo.losses.unpg.unpg_cross_entropy",
        "paperzoo.losses.unpg.box_whisker_filter",
        "paperzoo.losses.unpg.box_whisker_mask",
        "paperzoo.losses.unpg.batch_negative_similarities",
    ),
    usage="""\
import torch
from paperzoo.losses import UNPGArcFaceLoss
from paperzoo.losses.unpg import batch_negative_similarities, box_whisker_filter, unpg_cross_entropy
emb, labels = torch.randn(64, 32, requires_grad=True), torch.randint(0, 10, (64,))
loss_fn = UNPGArcFaceLoss(num_classes=10, embedding_size=32)  # margin 0.5 rad (in degrees, as PML), s=64, k=1.5
loss = loss_fn(emb, labels)  # class weights loss_fn.W are trainable: give them to the optimiser
loss.backward()
# any margin head: unscaled margin logits (B, C) + the filtered batch negatives
neg = box_whisker_filter(batch_negative_similarities(emb, labels), wisk=1.5)
value = unpg_cross_entropy(torch.rand(64, 10), neg, labels, scale=64.0)
""",
    paper_result=(
        "iResNet-100 on MS1MV2: ArcFace+UNPG vs ArcFace TAR@FAR=1e-4 on IJB-C 96.33 vs 96.25 and IJB-B 95.04 vs "
        "94.89, CosFace+UNPG 96.39 vs 96.35 (IJB-C); MegaFace rank-1 98.82 vs 98.56 (ArcFace); K-FACE hardest "
        "split TAR@FAR=1e-4 ArcFace 0.29 -> ArcFace+UNPG 50.43 (official README; venue unconfirmed)"
    ),
    methods=(
        Method(
            "unpg-arcface",
            "retrieval",
            "paperzoo.losses:UNPGArcFaceLoss",
            {"scale": 32.0},
            "ArcFace (m=0.5 rad, s=32) + UNPG batch negatives, box-and-whisker k=1.5",
        ),
        Method(
            "unpg-cosface",
            "retrieval",
            "paperzoo.losses:UNPGCosFaceLoss",
            {"scale": 32.0},
            "CosFace (m=0.35, s=32) + UNPG batch negatives, box-and-whisker k=1.5",
        ),
    ),
    bench=(
        LossBench(
            "UNPGArcFaceLoss",
            "metric",
            "paperzoo.losses.unpg:bench_unpg_arcface",
            reference="paperzoo.losses.unpg:bench_pml_arcface",
            reference_name="PML ArcFaceLoss (same classes, margin, scale; no batch negatives)",
            target_ratio=1.0,
            target_min_batch=512,
            notes="paper 8; 2048 classes, 128-d, s=64, m=0.5 rad, k=1.5",
        ),
    ),
)
