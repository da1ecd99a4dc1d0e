"""Record of LegoGCD (Cao et al., CVPR 2024): two extra terms for SimGCD against old-class forgetting."""

from paperzoo.papers import Method, Record

RECORD = Record(
    number=7,
    summary=(
        "LegoGCD: in SimGCD the accuracy on the old (labelled) classes rises early and then falls while the new "
        "classes improve, which the authors blame on the mean-entropy regulariser. Two parameter-free terms are "
        "added to SimGCD: Local Entropy Regularization (LER), a cross-entropy between a sharpened prediction and a "
        "logit-adjusted one (an EMA class prior as a margin) on the unlabelled views the classifier confidently "
        "assigns to an old class, and a dual-views KL (DKL) consistency term between the two views' predictions. "
        "paperzoo provides both as extra terms of the SimGCD objective (paperzoo.discovery.trainer.GCDObjective), "
        "DKL in the released code's form and in the paper's KL form, plus a per-epoch Old-accuracy probe for the "
        "paper's forgetting measure; `paperzoo compare --task gcd --methods legogcd,simgcd,kmeans` runs it."
    ),
    components=(
        "paperzoo.discovery.legogcd.DualViewKL",
        "paperzoo.discovery.legogcd.dual_view_kl",
        "paperzoo.discovery.legogcd.LocalEntropyRegularizer",
        "paperzoo.discovery.legogcd.local_entropy_regularizer",
        "paperzoo.discovery.legogcd.ema_prior_update",
        "paperzoo.discovery.legogcd.legogcd_objective",
        "paperzoo.discovery.legogcd.OldAccuracyProbe",
        "paperzoo.discovery.legogcd.forgetting",
    ),
    usage="""\
import torch
from paperzoo.discovery.legogcd import legogcd_objective
from paperzoo.discovery.trainer import GCDBatch
z, logits = torch.randn(16, 8), torch.randn(16, 5).tanh()  # 2 views x 8 images: projections, cosine logits
labels, mask_lab = torch.tensor([0, 1, 2, 0, -1, -1, -1, -1]), torch.arange(8) < 4
objective = legogcd_objective(num_classes=5, n_old=3)  # SimGCD + 0.65 DKL + 2 LER
terms = objective(GCDBatch(views=logits, z=z, logits=logits, labels=labels, mask_lab=mask_lab), epoch=0)
assert {"dkl", "ler", "total"} <= set(terms)
""",
    paper_result=(
        "With a DINO ViT-B/16 (last block fine-tuned), LegoGCD raises SimGCD's (authors' re-run) All / Old / New "
        "from 61.9 / 66.5 / 59.6 to 63.8 / 71.9 / 59.8 on CUB and from 79.0 / 77.9 / 81.5 to 81.8 / 81.4 / 82.5 on "
        "CIFAR-100, with the largest gains on the old classes"
    ),
    methods=(
        Method(
            "legogcd",
            "gcd",
            "paperzoo.discovery.legogcd:legogcd_objective",
            {},
            "LegoGCD (Cao et al., CVPR 2024): SimGCD + dual-views KL (official form) + 2 x local entropy "
            "regularisation on confident old-class views (delta 0.7)",
        ),
    ),
)
