"""Record of paper 25, Dual-Head Knowledge Distillation (Yang et al., KDD 2025)."""

from paperzoo.papers import LossBench, Record

RECORD = Record(
    number=25,
    summary=(
        "A logit-level distillation loss (BinaryKL: per-class sigmoid KL to the teacher's logits, which also sees "
        "the per-sample logit shift softmax KD ignores) hurts when added to cross-entropy on the same linear "
        "classifier, whose two gradients conflict. DHKD gives the student a second, auxiliary head on the shared "
        "backbone: CE trains head 1 (used at inference), BinaryKL-Norm (a log-cosh logit matching) trains head 2, "
        "with an optional one-sided gradient projection (GA)."
    ),
    components=(
        "paperzoo.training.distillation.binary_kl_norm",
        "paperzoo.training.distillation.BinaryKLNormLoss",
        "paperzoo.training.distillation.binary_kl",
        "paperzoo.training.distillation.BinaryKLLoss",
        "paperzoo.training.distillation.hinton_kd",
        "paperzoo.training.distillation.HintonKDLoss",
        "paperzoo.training.distillation.DHKDLoss",
        "paperzoo.training.distillation.DHKDObjective",
        "paperzoo.training.distillation.HintonKDObjective",
        "paperzoo.training.distillation.align_gradients",
        "paperzoo.training.distillation.ga_backward",
        "paperzoo.training.distillation.aligned_surrogate",
        "paperzoo.training.distillation.gradient_cosine",
        "paperzoo.models.dual_head.DualHeadClassifier",
    ),
    usage="""\
import torch
from torch import nn
from torch.utils.data import TensorDataset
from paperzoo.engine import TrainConfig, fit, make_loader
from paperzoo.models.dual_head import DualHeadClassifier
from paperzoo.training.distillation import DHKDObjective, binary_kl_norm

x, y = torch.randn(64, 20), torch.randint(0, 5, (64,))
teacher = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))  # a trained teacher in practice
student = DualHeadClassifier(nn.Sequential(nn.Linear(20, 16), nn.ReLU()), feat_dim=16, num_classes=5)
objective = DHKDObjective(teacher, gamma=1.0, alpha=1.0, temperature=2.0)  # align=True adds GA
loader = make_loader(TensorDataset(x, y), batch_size=16)
fit(student, None, loader, torch.optim.Adam(student.parameters()), TrainConfig(epochs=1, progress=False),
    compute_loss=objective)
logits = student(x)  # eval mode after fit: head 1 only, (64, 5)
assert logits.shape == (64, 5) and set(objective.last) == {"ce", "kd", "total"}
assert torch.allclose(binary_kl_norm(logits + 3, logits.detach() + 3), torch.zeros(()))
""",
    paper_result=(
        "CIFAR-100 (RepDistiller teacher-student pairs, 240 epochs) and ImageNet (ResNet34 -> ResNet18): DHKD is on "
        "par with or slightly above KD, DKD, DIST and other logit methods (gains mostly +0.1-0.2% top-1); ablation: "
        "CE + BinaryKL on one head is worse than either loss alone, moving BinaryKL to an auxiliary head recovers "
        "and exceeds both (exact numbers unconfirmed)"
    ),
    bench=(
        LossBench(
            "BinaryKLNormLoss",
            "distillation",
            "paperzoo.training.distillation:BinaryKLNormLoss",
            reference="paperzoo.training.distillation:_bench_reference",
            reference_name="the official sigmoid / clamped-KL form, written naively",
            floor_target=2.0,
            notes="paper 25; log-cosh form with a hand-written backward",
        ),
        LossBench(
            "HintonKDLoss",
            "distillation",
            "paperzoo.training.distillation:HintonKDLoss",
            notes="paper 25's baseline (Hinton et al., 2015), T = 4",
        ),
    ),
)
