"""Record of paper 11, AnyLoss (Han, Moniz & Chawla, ECML-PKDD 2024)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=11,
    summary=(
        "AnyLoss turns any confusion-matrix metric into a loss: each predicted probability p is pushed towards 0/1 "
        "by the approximation function A(p) = sigmoid(L (p - 0.5)) (L = 73), the batch's soft confusion matrix is "
        "built from these near-binary values and the loss is 1 - metric (accuracy, F-beta, G-mean, balanced "
        "accuracy, MCC or any callable). Binary as in the paper; one-vs-rest macro averaging for C classes."
    ),
    components=(
        "paperzoo.losses.AnyLoss",
        "paperzoo.losses.any_loss",
        "paperzoo.losses.anyloss_binary",
        "paperzoo.losses.soft_confusion_matrix",
        "paperzoo.losses.approximation",
    ),
    usage="""\
import torch
from paperzoo.losses import AnyLoss, anyloss_binary
p, y = torch.tensor([0.9, 0.2, 0.6, 0.45]), torch.tensor([1.0, 0.0, 1.0, 0.0])
loss = anyloss_binary(p, y, metric="f1")  # the paper's binary loss on probabilities
logits, target = torch.randn(64, 10), torch.randint(0, 10, (64,))
macro = AnyLoss(metric="f1")(logits, target)  # one-vs-rest, macro-averaged
assert 0.0 <= float(loss) <= 1.0 and 0.0 <= float(macro) <= 1.0
""",
    paper_result=(
        "On 102 imbalanced binary tabular datasets with an MLP, AnyLoss optimising F1 / G-mean / balanced accuracy "
        "ranks best on its target metric against MSE, BCE and weighted BCE, with the largest gains on highly "
        "imbalanced data, and trains about as fast as BCE (exact table values unconfirmed)"
    ),
    methods=(
        Method(
            "anyloss-f1",
            "classification",
            "paperzoo.losses:AnyLoss",
            {"metric": "f1", "L": 73.0},
            "AnyLoss, 1 - macro-F1 of the one-vs-rest soft confusion matrices (L = 73; batch-level)",
        ),
        Method(
            "anyloss-bacc",
            "classification",
            "paperzoo.losses:AnyLoss",
            {"metric": "balanced_accuracy", "L": 73.0},
            "AnyLoss, 1 - mean one-vs-rest balanced accuracy (L = 73; batch-level)",
        ),
    ),
    bench=(
        LossBench(
            "AnyLoss",
            "classification",
            "paperzoo.losses:AnyLoss",
            reference="paperzoo.losses.anyloss:_reference_anyloss",
            reference_name="naive dense one-hot F1 AnyLoss (reference-code formulas)",
            floor_target=3.0,
            notes="paper 11; batch-level surrogate, hand-written backward over the (B, C) logits",
        ),
    ),
)
