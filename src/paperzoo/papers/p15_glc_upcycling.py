"""Record of paper 15, GLC: "Upcycling Models under Domain and Category Shift" (Qu et al., CVPR 2023)."""

from paperzoo.papers import Record

RECORD = Record(
    number=15,
    summary=(
        "Source-free universal domain adaptation: only a closed-set source classifier is available and the target "
        "may lack source classes and hold unknown ones. GLC adapts the feature extractor (classifier frozen) with "
        "global one-vs-all clustering pseudo-labels (per class a confident positive prototype against k-means "
        "negative prototypes; samples claimed by no class get a uniform target, i.e. 'unknown') plus a local k-NN "
        "consensus term, and rejects target-private samples by normalised entropy > 0.55; scored by the H-score."
    ),
    components=(
        "paperzoo.adaptation.glc.one_vs_all_pseudo_labels",
        "paperzoo.adaptation.glc.estimate_category_ratio",
        "paperzoo.adaptation.glc.KNNConsensusLoss",
        "paperzoo.adaptation.glc.FeatureBank",
        "paperzoo.adaptation.glc.entropy_rejection",
        "paperzoo.adaptation.glc.universal_da_scores",
        "paperzoo.adaptation.glc.adapt_glc",
        "paperzoo.adaptation.glc.train_source",
        "paperzoo.data.opda_shift.opda_split",
        "paperzoo.data.opda_shift.corrupt_images",
    ),
    usage="""\
import torch
from paperzoo.adaptation.glc import entropy_rejection, one_vs_all_pseudo_labels, universal_da_scores
feats, probs = torch.randn(120, 16), torch.randn(120, 4).softmax(1)
targets, unknown = one_vs_all_pseudo_labels(feats, probs, coeff=1.0)
pred, uncertainty = entropy_rejection(probs, threshold=0.55)  # label 4 = unknown
h, known_acc, unknown_acc, _ = universal_da_scores(probs, torch.randint(0, 5, (120,)), [0, 1, 2, 3], 4)
""",
    paper_result=(
        "Open-partial-set source-free universal DA (H-score): GLC 87.8 on Office-31, 75.6 on Office-Home, 73.1 on "
        "VisDA and 55.1 on DomainNet, above the source-free UMAD (87.0 / 70.1 / 58.3 / 47.1; +14.8 on VisDA) and "
        "the source-dependent OVANet, from an ImageNet ResNet-50 fine-tuned on the source"
    ),
)
