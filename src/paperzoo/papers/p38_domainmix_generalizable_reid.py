"""Record of paper 38, DomainMix (Wang, Liao, Zhao, Cui & Shao, BMVC 2021)."""

from paperzoo.papers import Record

RECORD = Record(
    number=38,
    summary=(
        "DomainMix trains one re-identification model from a labelled synthetic data set plus an unlabelled real "
        "one: each epoch the real images are clustered (DBSCAN on the k-reciprocal Jaccard distance) into "
        "pseudo-identities, unreliable clusters are dropped (independence / compactness measured by re-clustering "
        "at tighter and looser radii), synthetic identities and pseudo-identities share one classifier "
        "(label-smoothed CE on logits / 2) plus a soft-margin batch-hard triplet loss, and a domain discriminator "
        "is fooled by a domain balance loss (the negative entropy of its prediction), with alternating updates. "
        "Here: the Jaccard distance, the reliable DBSCAN pseudo-labels, the balance loss, the discriminator, the "
        "soft triplet (a PML wrapper) and an engine.fit objective."
    ),
    components=(
        "paperzoo.training.domainmix.jaccard_distance",
        "paperzoo.training.domainmix.reliability_scores",
        "paperzoo.training.domainmix.reliable_dbscan_pseudo_labels",
        "paperzoo.training.domainmix.domain_balance_loss",
        "paperzoo.training.domainmix.DomainBalanceLoss",
        "paperzoo.training.domainmix.DomainDiscriminator",
        "paperzoo.training.domainmix.soft_triplet_loss",
        "paperzoo.training.domainmix.DomainMixObjective",
    ),
    usage="""\
import numpy as np
import torch
from paperzoo.training.domainmix import domain_balance_loss, jaccard_distance, reliable_dbscan_pseudo_labels
rng = np.random.default_rng(0)
feats = np.concatenate([rng.normal(c, 0.05, size=(20, 8)) for c in np.eye(8)[:3]])  # 3 tight groups
labels, threshold = reliable_dbscan_pseudo_labels(jaccard_distance(feats, k1=10, k2=3), eps=0.6)
assert labels.max() + 1 == 3
loss = domain_balance_loss(torch.zeros(4, 2))  # 50/50 prediction: the minimum 1 - ln 2
assert abs(loss.item() - (1 - np.log(2))) < 1e-6
""",
    paper_result=(
        "RandPerson (labelled synthetic) + unlabelled MSMT17, tested directly on Market-1501: 43.5 mAP with "
        "ResNet-50 (45.7 with IBN-ResNet-50), which the abstract calls more or less comparable to training on the "
        "fully labelled real set (README numbers; arXiv id unconfirmed)"
    ),
)
