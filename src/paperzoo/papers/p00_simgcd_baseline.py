"""Record of the SimGCD baseline (Wen, Zhao & Qi, ICCV 2023), the shared foundation of the
generalized-category-discovery papers (LegoGCD, ProtoGCD, HypCD, Happy, Active GCD)."""

from paperzoo.papers import Record

RECORD = Record(
    number=0,
    summary=(
        "SimGCD: a parametric baseline for generalized category discovery. A cosine classifier over all K "
        "(old + new) prototypes on the normalised backbone feature is trained by cross-entropy on the labelled "
        "images, cross-view self-distillation with a sharper teacher on all images and a mean-entropy (me-max) "
        "regulariser that keeps predictions from collapsing onto the old classes, while the backbone also learns "
        "from the supervised + self-supervised contrastive terms of the GCD paper. paperzoo builds it once as "
        "composable terms and a GCD trainer on engine.fit, which the later discovery papers extend with their new "
        "terms only; `paperzoo compare --task gcd` runs SimGCD and k-means (and later methods) on digits, the "
        "union30 EfficientNet features or a user's .npz."
    ),
    components=(
        "paperzoo.discovery.heads.CosineClassifier",
        "paperzoo.discovery.heads.DINOHead",
        "paperzoo.discovery.losses.SimGCDLoss",
        "paperzoo.discovery.losses.CrossViewSelfDistillationLoss",
        "paperzoo.discovery.losses.MeanEntropyRegularizer",
        "paperzoo.discovery.losses.UnsupervisedContrastiveLoss",
        "paperzoo.discovery.losses.SupervisedContrastiveLoss",
        "paperzoo.discovery.losses.linear_warmup_schedule",
        "paperzoo.discovery.trainer.GCDObjective",
        "paperzoo.discovery.trainer.GCDStep",
        "paperzoo.discovery.trainer.LabelledUnlabelledSampler",
        "paperzoo.discovery.trainer.train_gcd",
        "paperzoo.discovery.trainer.predict",
        "paperzoo.discovery.views.ImageViews",
        "paperzoo.discovery.views.FeatureViews",
        "paperzoo.discovery.baselines.kmeans_predict",
        "paperzoo.data.gcd_split",
        "paperzoo.data.pretrained_features.union30_effnet",
        "paperzoo.metrics.cluster_accuracy",
        "paperzoo.metrics.cluster_mapping",
        "paperzoo.compare.tasks.gcd.GCDTask",
    ),
    usage="""\
import torch
from paperzoo.discovery.losses import SimGCDLoss
z, logits = torch.randn(16, 8), torch.randn(16, 5).tanh()  # 2 views x 8 images: projections, cosine logits
labels, mask_lab = torch.tensor([0, 1, 2, 0, -1, -1, -1, -1]), torch.arange(8) < 4
terms = SimGCDLoss()(z, logits, labels, mask_lab, epoch=0)
assert set(terms) == {"cls_sup", "cls_unsup", "me_max", "rep_unsup", "rep_sup", "total"}
""",
    paper_result=(
        "With a DINO ViT-B/16 whose last block is fine-tuned, SimGCD reaches All / Old / New clustering accuracy of "
        "80.1 / 81.2 / 77.8 on CIFAR-100 and 60.3 / 65.6 / 57.7 on CUB (3 runs), well above the GCD paper's k-means "
        "on contrastive features (73.0 / 76.2 / 66.5 and 51.3 / 56.6 / 48.7); removing the mean-entropy regulariser "
        "mostly hurts the new classes"
    ),
)
