"""Record of paper 50, MLCD: Multi-label Cluster Discrimination for Visual Representation Learning
(An et al., ECCV 2024)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=50,
    summary=(
        "MLCD clusters a large image collection once with k-means on off-the-shelf features, gives every image "
        "its l nearest centres as positive pseudo-labels, and trains an encoder with a multi-label loss over the "
        "centres that adds 'positives above 0' and 'negatives below 0' to the pairwise loss, so that it factorises "
        "into log(1 + sum_P exp(-s)) + log(1 + sum_N exp(s)) (MLCDLoss; the pairwise MLCLoss as baseline), with "
        "PartialFC-style negative class sampling."
    ),
    components=(
        "paperzoo.losses.MLCDLoss",
        "paperzoo.losses.mlcd_loss",
        "paperzoo.losses.MLCLoss",
        "paperzoo.losses.mlc_loss",
        "paperzoo.multilabel.mlcd.kmeans_centroids",
        "paperzoo.multilabel.mlcd.multilabel_topk_cluster_labels",
        "paperzoo.multilabel.mlcd.positive_mask",
        "paperzoo.multilabel.mlcd.PartialClassSampler",
        "paperzoo.multilabel.mlcd.ClusterDiscriminationHead",
    ),
    usage="""\
import torch
from paperzoo.losses import MLCDLoss
from paperzoo.multilabel.mlcd import ClusterDiscriminationHead, PartialClassSampler
head, sampler = ClusterDiscriminationHead(32, 1000), PartialClassSampler(1000, rate=0.1, seed=0)
features, labels = torch.randn(16, 32), torch.randint(0, 1000, (16, 8))  # l = 8 cluster labels each
class_ids, positives, _ = sampler(labels)  # all batch positives + random negatives, 10% of the classes
loss = MLCDLoss(scale=16.0)(head(features, class_ids), positives)
assert loss > 0
""",
    paper_result=(
        "LAION-400M, K = 1M clusters of CLIP features, l = 8, r = 0.1, ViT encoders: MLCD's representation "
        "beats OpenCLIP, UNICOM and CLIP in linear probes (ViT-L/14, average of 26 datasets 84.6 vs 82.3 / 83.3 / "
        "84.2) and zero-shot; the factorised loss beats the pairwise MLC loss (ViT-B/32 linear probe 78.1 vs 76.9) "
        "and l = 8 beats both fewer and more positives (numbers from the official README and a public note, "
        "secondary)"
    ),
    methods=(
        Method(
            "mlcd",
            "multilabel",
            "paperzoo.losses:MLCDLoss",
            {"scale": 1.0},
            "MLCD: log(1 + sum_pos exp(-s)) + log(1 + sum_neg exp(s)) on the logits (scale 1, margin 0)",
        ),
        Method(
            "mlc-pairwise",
            "multilabel",
            "paperzoo.losses:MLCLoss",
            {"scale": 1.0},
            "pairwise multi-label loss log(1 + sum_neg exp(s) sum_pos exp(-s)), MLCD's baseline",
        ),
    ),
    bench=(
        LossBench(
            "MLCDLoss",
            "multilabel",
            "paperzoo.losses:MLCDLoss",
            reference="paperzoo.losses.mlcd:_reference_mlcd",
            reference_name="the equation, sums of exponentials",
            notes="paper 50",
        ),
        LossBench("MLCLoss", "multilabel", "paperzoo.losses:MLCLoss", notes="paper 50, pairwise baseline"),
    ),
)
