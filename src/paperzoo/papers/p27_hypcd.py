"""Record of HypCD, hyperbolic category discovery (Liu, He & Han, CVPR 2025)."""

from paperzoo.papers import Method, Record

RECORD = Record(
    number=27,
    summary=(
        "HypCD: generalized category discovery in hyperbolic space. The backbone feature is clipped and mapped "
        "into the Poincaré ball (curvature -0.1); the representation is learned with InfoNCE and SupCon twice, "
        "once with the negative hyperbolic distance and once with the angle as similarity, the weight moving from "
        "the angle to the distance losses over training; in HypSimGCD the classifier is a hyperbolic linear layer "
        "(Möbius mat-vec plus Möbius bias) whose output coordinates are SimGCD's logits. paperzoo builds the "
        "projection, the batched Poincaré distance, HypLinear, a HyperbolicHead (a drop-in for the DINO head), the "
        "contrastive terms and HypSimGCDLoss (SimGCD's loss with the contrastive terms swapped) on geoopt, and a "
        "trainer variant with RiemannianAdam for the hyperbolic classifier."
    ),
    components=(
        "paperzoo.discovery.hyperbolic.FeatureClip",
        "paperzoo.discovery.hyperbolic.ToPoincare",
        "paperzoo.discovery.hyperbolic.poincare_distance_matrix",
        "paperzoo.discovery.hyperbolic.HypLinear",
        "paperzoo.discovery.hyperbolic.HyperbolicHead",
        "paperzoo.discovery.hyperbolic.HyperbolicContrastive",
        "paperzoo.discovery.hyperbolic.hyperbolic_infonce",
        "paperzoo.discovery.hyperbolic.hyperbolic_supcon",
        "paperzoo.discovery.hyperbolic.distance_angle_schedule",
        "paperzoo.discovery.hyperbolic.HypSimGCDLoss",
        "paperzoo.discovery.hyperbolic.train_hypgcd",
        "paperzoo.discovery.hyperbolic.class_norms",
    ),
    usage="""\
import torch
from paperzoo.discovery.hyperbolic import HyperbolicHead, HypSimGCDLoss, poincare_distance_matrix
head = HyperbolicHead(in_dim=16, n_classes=5, c=0.1, clip_radius=2.0)  # in place of DINOHead
z, logits = head(torch.randn(16, 16))  # 2 views x 8 images: ball points, hyperbolic logits
labels, mask_lab = torch.tensor([0, 1, 2, 0, -1, -1, -1, -1]), torch.arange(8) < 4
terms = HypSimGCDLoss(c=0.1, hts=0.3, schedule=(0, 200, 1.0))(z, logits, labels, mask_lab, epoch=0)
d = poincare_distance_matrix(z, c=0.1)  # (16, 16)
assert torch.isfinite(terms["total"]) and z.norm(dim=1).max() < 0.1**-0.5
""",
    paper_result=(
        "Applied to GCD, SimGCD and SelEx with DINO / DINOv2 ViT-B backbones, HypCD improves All / Old / New "
        "clustering accuracy on CUB, Stanford Cars, FGVC-Aircraft, CIFAR-10/100 and ImageNet-100 (the exact table "
        "values are unconfirmed)"
    ),
    methods=(
        Method(
            "hypcd",
            "gcd",
            "paperzoo.discovery.hyperbolic:HypSimGCDLoss",
            {"project": True, "schedule": (0, 30, 1.0)},
            "HypCD's hyperbolic representation losses on the DINO head's projections (ToPoincare c = 0.1, r = 2.0; "
            "angle -> distance InfoNCE / SupCon over 30 epochs, hts 0.3, epsilon 1); the compare task's cosine "
            "classifier stays (its model cannot take the HyperbolicHead swap)",
        ),
    ),
)
