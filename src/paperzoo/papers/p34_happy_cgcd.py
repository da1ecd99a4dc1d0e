"""Record of Happy (Ma et al., NeurIPS 2024): continual generalized category discovery."""

from paperzoo.papers import Record

RECORD = Record(
    number=34,
    summary=(
        "Happy: continual generalized category discovery. After a labelled stage on the known classes, the model "
        "receives unlabelled sessions that mix old classes with new ones, storing no past images. Against the "
        "prediction bias (new samples absorbed by old classes) it initialises the new classifier rows from k-means "
        "centroids least similar to any known class and replaces SimGCD's mean-entropy regulariser by a soft, "
        "group-wise one (seen vs new mass, and uniformity within each group); against the hardness bias (hard old "
        "classes are forgotten first) it rehearses Gaussian pseudo-features drawn around stored class prototypes, "
        "sampling hard classes (close to others) more often, and distils the previous session's features. paperzoo "
        "builds the session protocol (any labelled array) and each new piece as an extra term of the SimGCD "
        "foundation's objective; a session loop with switches per component runs Happy or SimGCD session by session."
    ),
    components=(
        "paperzoo.data.continual_gcd.make_cgcd_sessions",
        "paperzoo.data.continual_gcd.CGCDSessions",
        "paperzoo.discovery.happy.group_entropy_terms",
        "paperzoo.discovery.happy.GroupEntropyRegularizer",
        "paperzoo.discovery.happy.PrototypeBank",
        "paperzoo.discovery.happy.PrototypeSamplingTerm",
        "paperzoo.discovery.happy.feature_distillation_loss",
        "paperzoo.discovery.happy.FeatureDistillationTerm",
        "paperzoo.discovery.happy.FeatureNet",
        "paperzoo.discovery.happy.init_new_classifier_rows",
        "paperzoo.discovery.happy.HappyConfig",
        "paperzoo.discovery.happy.run_continual",
        "paperzoo.discovery.happy.train_stage",
    ),
    usage="""\
import numpy as np
import torch
from paperzoo.data.continual_gcd import make_cgcd_sessions
from paperzoo.discovery.happy import PrototypeBank, group_entropy_terms

s = make_cgcd_sessions(np.repeat(np.arange(10), 50), old_classes=range(4), n_sessions=3, novel_unseen=40)
assert s.session_classes == ((4, 5), (6, 7), (8, 9)) and s.n_seen(2) == 6
terms = group_entropy_terms(torch.randn(16, 6), n_seen=4)  # old_new, old_in, new_in, each >= 0
bank = PrototypeBank(8).fit_offline(torch.randn(30, 8), torch.arange(3).repeat(10))
pseudo, labels = bank.sample(16)  # hard classes (close to the others) drawn more often
""",
    paper_result=(
        "With a DINO ViT-B/16 whose last block is fine-tuned, over 5 continual sessions Happy beats the best prior "
        "continual GCD method on CIFAR-100, TinyImageNet, ImageNet-100, CUB, Cars and Aircraft, e.g. by 7.5 points "
        "of final-session All accuracy on ImageNet-100 (abstract; the per-session tables are unconfirmed)"
    ),
)
