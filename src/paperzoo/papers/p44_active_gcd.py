"""Record of Active Generalized Category Discovery (Ma, Zhu, Zhong, Zhang & Liu, CVPR 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=44,
    summary=(
        "Active GCD: a SimGCD model trained on few labels queries an oracle for the labels of a small, actively "
        "chosen set of unlabelled samples over several rounds. What to query: only samples predicted as new classes, "
        "an equal quota from every predicted new cluster, ranked by the top-1/top-2 probability margin - confident "
        "samples in the first round, uncertain ones afterwards. How to use the answers: the classifier's new-class "
        "indices are arbitrary cluster ids, so ground-truth labels are mapped into the classifier's label space by a "
        "Hungarian matching computed every epoch with an EMA copy of the model, then trained with cross-entropy and "
        "SupCon. paperzoo builds the strategies (vectorised over the pool), the mapping, the EMA active-label term "
        "(an extra term of the GCD objective) and the rounds on the SimGCD foundation, with an oracle simulated from "
        "ground truth."
    ),
    components=(
        "paperzoo.discovery.active.novel_margin_adaptive",
        "paperzoo.discovery.active.novel_margin_query",
        "paperzoo.discovery.active.novel_random_query",
        "paperzoo.discovery.active.random_query",
        "paperzoo.discovery.active.margin_query",
        "paperzoo.discovery.active.entropy_query",
        "paperzoo.discovery.active.least_confidence_query",
        "paperzoo.discovery.active.STRATEGIES",
        "paperzoo.discovery.active.stable_label_mapping",
        "paperzoo.discovery.active.map_labels",
        "paperzoo.discovery.active.novelty_metrics",
        "paperzoo.discovery.active.ActiveLabelTerm",
        "paperzoo.discovery.active.SimulatedOracle",
        "paperzoo.discovery.active.active_gcd",
        "paperzoo.metrics.cluster_mapping",
    ),
    usage="""\
import numpy as np
import torch
from paperzoo.discovery.active import novel_margin_adaptive, stable_label_mapping
probs = torch.softmax(torch.randn(100, 6) / 0.1, dim=1)  # softmax(logits / 0.1) of 100 candidates, K = 6
ids = np.arange(100, 200)                                # their ids in the unlabelled pool
picked = novel_margin_adaptive(probs, ids, round=1, n=6, n_old=3)  # 2 per predicted new cluster, confident first
assert picked.size == 6 and (probs[picked - 100].argmax(1) >= 3).all()
mapping = stable_label_mapping(pred=[0, 1, 4, 4, 5], target=[0, 1, 3, 3, 4], n_classes=6)  # true label -> index
assert mapping[3] == 4 and mapping[4] == 5
""",
    paper_result=(
        "On CIFAR-10/100, ImageNet-100, CUB, Stanford Cars, FGVC-Aircraft and Herbarium-19 (DINO ViT-B/16, SimGCD "
        "base, 5 rounds of queries), the adaptive novel-margin strategy with the stable label mapping gives the best "
        "All / New accuracy among the active-learning strategies (random, entropy, margin, core-set, BADGE, ...); the "
        "table values are unconfirmed here"
    ),
)
