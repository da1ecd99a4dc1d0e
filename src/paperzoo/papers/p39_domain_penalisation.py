"""Record of paper 39, Domain Penalisation (Jena, Rajendran, Seemakurthy, A, M & Poornachari, 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=39,
    summary=(
        "Domain Penalisation weights every training sample's loss by its source domain's weight and, after each "
        "epoch, resets the weights to the softmax of the domains' average losses, so the domains the model "
        "currently does worst on count more in the next epoch (the first epoch is ERM). A memoryless, per-epoch "
        "cousin of GroupDRO that needs only a per-sample loss and a domain id per sample. Here: the weighting "
        "(DomainPenalisation), online GroupDRO with the same interface (GroupDROWeights) and an engine.fit "
        "objective that applies either and updates the weights at the epoch boundaries (DomainWeightedObjective)."
    ),
    components=(
        "paperzoo.training.domain_penalisation.DomainPenalisation",
        "paperzoo.training.domain_penalisation.GroupDROWeights",
        "paperzoo.training.domain_penalisation.DomainWeightedObjective",
        "paperzoo.training.domain_penalisation.domain_penalisation_weights",
        "paperzoo.training.domain_penalisation.domain_weighted_loss",
        "paperzoo.training.domain_penalisation.domain_loss_sums",
    ),
    usage="""\
import torch
import torch.nn.functional as F
from paperzoo.training.domain_penalisation import DomainPenalisation
dp = DomainPenalisation(num_domains=3)
logits, y = torch.randn(8, 5, requires_grad=True), torch.randint(0, 5, (8,))
domain = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
loss = dp(F.cross_entropy(logits, y, reduction="none"), domain)  # weighted sum, weights all 1 in epoch 1
loss.backward()
w = dp.end_epoch()  # after each epoch: softmax of the domains' average losses
assert torch.isclose(w.sum(), torch.tensor(1.0))
""",
    paper_result=(
        "WILDS GlobalWheat (GWHD 2021), training on source domains and testing on unseen ones: Domain Penalisation "
        "beats the best of ERM and GroupDRO by +0.3 (OOD validation) and +0.5 (OOD test) average-domain-accuracy "
        "points with Faster R-CNN and by +1.3 / +1.4 points with FCOS, and narrows the ID-OOD gap (absolute "
        "numbers unconfirmed)"
    ),
)
