"""Record of ProtoGCD (Ma, Zhu, Zhang & Liu, TPAMI 2025): dual-level adaptive pseudo-labelling and
prototype separation on top of the SimGCD baseline."""

from paperzoo.papers import Method, Record

RECORD = Record(
    number=24,
    summary=(
        "ProtoGCD: generalized category discovery with one set of learnable prototypes for old and new classes "
        "(SimGCD's cosine classifier) and a unified, less biased unsupervised objective: dual-level adaptive "
        "pseudo-labelling (the most confident samples of each view, by the top-1 / top-2 teacher probability "
        "ratio, get hard one-hot pseudo-labels, a share that ramps from 0 to 1 over training; the others keep "
        "soft sharpened targets), the mean-entropy regulariser, and a prototype separation term that pushes "
        "every prototype away from the others. paperzoo adds DAPL as a drop-in for SimGCD's distillation term, "
        "the separation term as an extra GCD term, and the classical number-of-classes estimate with a pluggable "
        "score (the paper's own Prototype Score is unconfirmed and not provided), and the OOD scores of the paper's "
        "outlier-detection extension."
    ),
    components=(
        "paperzoo.discovery.prototypes.AdaptivePseudoLabelDistillation",
        "paperzoo.discovery.prototypes.adaptive_pseudo_label_distillation",
        "paperzoo.discovery.prototypes.dapl_targets",
        "paperzoo.discovery.prototypes.ratio_schedule",
        "paperzoo.discovery.prototypes.ProtoGCDLoss",
        "paperzoo.discovery.prototypes.PrototypeSeparationTerm",
        "paperzoo.discovery.prototypes.prototype_separation",
        "paperzoo.discovery.prototypes.protogcd_objective",
        "paperzoo.discovery.prototypes.estimate_num_classes",
        "paperzoo.discovery.prototypes.mean_prototype_cosine",
        "paperzoo.discovery.prototypes.ood_scores",
        "paperzoo.discovery.prototypes.ood_metrics",
    ),
    usage="""\
import torch
from paperzoo.discovery.heads import DINOHead
from paperzoo.discovery.prototypes import protogcd_objective
from paperzoo.discovery.trainer import GCDBatch
head = DINOHead(32, 5, hidden=64, bottleneck=16)
z, logits = head(torch.randn(16, 32))  # 2 views x 8 images
labels = torch.tensor([0, 1, 2, 0, -1, -1, -1, -1])
objective = protogcd_objective(head.classifier, epochs=200)  # DAPL ramp over 100 epochs, separation 0.1
terms = objective(GCDBatch(views=None, z=z, logits=logits, labels=labels, mask_lab=labels >= 0), epoch=50)
terms["total"].backward()
assert {"cls_unsup", "me_max", "proto_sep"} <= set(terms)
""",
    paper_result=(
        "With a DINO ViT-B/16 (last block fine-tuned), the paper reports state-of-the-art and more balanced "
        "All / Old / New accuracy than SimGCD on CIFAR-10/100, ImageNet-100, CUB, Stanford Cars, FGVC-Aircraft "
        "and Herbarium-19, plus competitive OOD detection; the table values are unconfirmed here"
    ),
    methods=(
        Method(
            "protogcd",
            "gcd",
            "paperzoo.discovery.prototypes:protogcd_objective",
            {"teacher_temp": 0.05},
            "ProtoGCD (Ma et al., TPAMI 2025): SimGCD with dual-level adaptive pseudo-labels (teacher 0.05, hard-label "
            "share 0 -> 1 over half of the epochs) and prototype separation (weight 0.1)",
        ),
    ),
)
