"""Record of paper 28, the Multi-Similarity loss (Wang et al., CVPR 2019)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=28,
    summary=(
        "General Pair Weighting views every pair-based metric loss through the weight dL/dS_ij it gives each pair. "
        "The MS loss mines hard pairs by relative similarity, then weights them with soft log-sum-exp terms. Here it "
        "is a pytorch-metric-learning loss whose fused forward and closed-form backward match PML's value and run "
        "several times faster, plus closed-form and autograd pair-weight tools."
    ),
    components=(
        "paperzoo.losses.MultiSimilarityLoss",
        "paperzoo.losses.multi_similarity.multi_similarity_loss",
        "paperzoo.losses.multi_similarity.ms_pair_masks",
        "paperzoo.analysis.pair_weighting.ms_pair_weights",
        "paperzoo.analysis.pair_weighting.gpw_pair_weights",
        "paperzoo.analysis.pair_weighting.REFERENCE_PAIR_LOSSES",
    ),
    usage="""\
import torch
from paperzoo.losses import MultiSimilarityLoss
from paperzoo.analysis.pair_weighting import ms_pair_weights
emb, labels = torch.randn(60, 64, requires_grad=True), torch.arange(60) // 5  # 12 classes x 5
loss = MultiSimilarityLoss()(emb, labels)  # alpha=2, beta=50, base=0.5, epsilon=0.1
loss.backward()
x = torch.nn.functional.normalize(emb.detach(), dim=1)
w_pos, w_neg = ms_pair_weights(x @ x.T, labels)  # dL/dS = (w_neg - w_pos) / 60
""",
    paper_result=(
        "CUB-200-2011 Recall@1 65.7 (512-d, ImageNet-pretrained BN-Inception) vs 60.6 for the previous best "
        "(ABE-8); In-Shop Recall@1 88.0 vs 80.9 (HTL); the paper's ablation: mining + weighting beats either alone"
    ),
    methods=(
        Method(
            "ms",
            "retrieval",
            "paperzoo.losses:MultiSimilarityLoss",
            {},
            "Multi-Similarity loss with its mining (alpha=2, beta=50, base=0.5, epsilon=0.1)",
        ),
    ),
    bench=(
        LossBench(
            "MultiSimilarityLoss",
            "metric",
            "paperzoo.losses:MultiSimilarityLoss",
            reference="paperzoo.losses.multi_similarity:pml_multi_similarity",
            reference_name="PML MultiSimilarityLoss + MultiSimilarityMiner",
            target_ratio=0.7,
            target_min_batch=512,
            notes="paper 28; defaults alpha=2, beta=50, base=0.5, epsilon=0.1",
        ),
    ),
)
