"""Record of paper 21, FedLD: tackling data heterogeneity in federated learning via loss
decomposition (Zeng et al., MICCAI 2024)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=21,
    summary=(
        "FedLD splits the global loss of the aggregated model into the clients' local loss, a distribution-shift "
        "loss and an aggregation loss, and attacks the last two: clients add a margin-control term "
        "lam * log(1 + ||softmax(Z)||_F^2) over the batch to cross-entropy, and the server aggregates each tensor's "
        "client updates by projecting them onto the top principal directions of the update matrix (rescaled by "
        "the direction's share of variance and the client's update norm). Here as a Flower strategy "
        "(FedLDStrategy, a FedAvg subclass), Flower apps, the pure-torch rule and loss, and the decomposition as "
        "an analysis tool."
    ),
    components=(
        "paperzoo.federated.fedld.MarginControlLoss",
        "paperzoo.federated.fedld.margin_control_loss",
        "paperzoo.federated.fedld.principal_gradient_aggregate",
        "paperzoo.federated.fedld.principal_gradient_revise",
        "paperzoo.federated.fedld.aggregate_state_updates",
        "paperzoo.federated.fedld.FedLDStrategy",
        "paperzoo.federated.fedld.fedld_apps",
        "paperzoo.federated.fedld.loss_decomposition",
        "paperzoo.federated.fedld.decomposition_from_losses",
    ),
    usage="""\
import torch
from paperzoo.federated.fedld import MarginControlLoss, principal_gradient_aggregate
logits, target = torch.randn(50, 10), torch.randint(0, 10, (50,))
loss = MarginControlLoss(lam=0.1)(logits, target)  # CE + 0.1 * log(1 + ||softmax||_F^2)
updates = torch.randn(5, 1000)  # 5 clients' updates of one tensor
step = principal_gradient_aggregate(updates, k_prop=0.8)  # (1000,)
assert step.shape == (1000,)
same = torch.randn(1000).expand(5, 1000)
assert torch.allclose(principal_gradient_aggregate(same), same[0], atol=1e-5)
""",
    paper_result=(
        "Retina (2 classes, 5 clients, three heterogeneity levels) and COVID-FL (3 classes, 12 real clients), "
        "ImageNet-pretrained ResNet-50: FedLD is more accurate and more robust than FedAvg, FedProx, FedBN, FedPAC "
        "and FedGH at every heterogeneity level, and ablations show both components contribute (numbers "
        "unconfirmed)"
    ),
    methods=(
        Method(
            "fedld-margin",
            "classification",
            "paperzoo.federated.fedld:MarginControlLoss",
            {"lam": 0.1},
            "FedLD's client loss: cross-entropy + 0.1 * log(1 + ||softmax(Z)||_F^2) over the batch",
        ),
    ),
    bench=(
        LossBench(
            "MarginControlLoss",
            "classification",
            "paperzoo.federated.fedld:MarginControlLoss",
            reference="paperzoo.federated.fedld:_reference_margin_control_loss",
            reference_name="official MarginalLogLoss (F.cross_entropy + softmax norm)",
            floor_target=3.0,
            notes="paper 21; a batch-level term (the batch's softmax Frobenius norm), one softmax pass for both terms",
        ),
    ),
)
