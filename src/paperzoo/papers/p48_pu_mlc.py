"""Record of paper 48, PU-MLC: Positive Label Is All You Need for Multi-Label Classification
(Yuan, Zhang & Huang, ICME 2024)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=48,
    summary=(
        "PU-MLC discards every negative label of multi-label data and treats each class as a positive-unlabelled "
        "problem: the variational PU loss per class with an adaptive temperature min(alpha * std, 1) from the batch "
        "spread of the logits and an adaptive re-balance factor (mean sigmoid)^gamma (PUMultiLabelLoss), plus VPU's "
        "MixUp consistency regulariser (PUMixupRegularizer), the local-global convolution that adds global context "
        "to a pretrained CNN (LocalGlobalConv2d), and label utilities for the positive-only and "
        "partial-label protocols."
    ),
    components=(
        "paperzoo.losses.PUMultiLabelLoss",
        "paperzoo.losses.pu_mlc_loss",
        "paperzoo.multilabel.pu_mlc.PUMixupRegularizer",
        "paperzoo.multilabel.pu_mlc.pu_mlc_compute_loss",
        "paperzoo.multilabel.pu_mlc.drop_negatives",
        "paperzoo.multilabel.pu_mlc.partial_label_mask",
        "paperzoo.multilabel.pu_mlc.hide_positives",
        "paperzoo.models.local_global_conv.LocalGlobalConv2d",
        "paperzoo.models.local_global_conv.convert_to_local_global",
    ),
    usage="""\
import torch
from paperzoo.losses import PUMultiLabelLoss
from paperzoo.multilabel.pu_mlc import drop_negatives
logits = torch.randn(32, 20)
labels = torch.randint(-1, 2, (32, 20))  # 1 positive, 0 unknown, -1 labelled negative
loss = PUMultiLabelLoss(gamma=0.55, alpha=1.0)(logits, drop_negatives(labels))  # positives only
assert loss.dim() == 0 and torch.isfinite(loss)
""",
    paper_result=(
        "MS-COCO and PASCAL VOC with a fine-tuned ResNet-101, full-label and partial-label multi-label "
        "classification: PU-MLC, trained on the positive labels only, improves mAP over the compared label-noise "
        "and partial-label methods; the adaptive temperature, the re-balance factor and the LGC module each "
        "contribute in the ablations (exact numbers unconfirmed)"
    ),
    methods=(
        Method(
            "pu-mlc",
            "multilabel",
            "paperzoo.losses:PUMultiLabelLoss",
            {"gamma": 0.55, "alpha": 1.0},
            "PU-MLC: positives only, variational PU with adaptive temperature and re-balance (MS-COCO values)",
        ),
        Method(
            "vpu",
            "multilabel",
            "paperzoo.losses:PUMultiLabelLoss",
            {"gamma": 0.0, "alpha": 1e6},
            "plain multi-label VPU (PU-MLC with gamma 0 and temperature 1)",
        ),
    ),
    bench=(
        LossBench(
            "PUMultiLabelLoss",
            "multilabel",
            "paperzoo.losses:PUMultiLabelLoss",
            reference="paperzoo.losses.pu_mlc:_reference_pu_mlc",
            reference_name="official vpuLoss, literal",
            notes="paper 48; batch-level loss (sum over classes)",
        ),
    ),
)
