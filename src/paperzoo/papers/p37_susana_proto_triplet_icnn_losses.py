"""Record of paper 37, the Proto-Triplet and ICNN few-shot losses (Mendez-Ruiz et al., 2023)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=37,
    summary=(
        "Two distance-based losses added to the Prototypical-Network cross-entropy inside each few-shot episode: "
        "Proto-Triplet, a triplet hinge from a query to its own prototype against the nearest other prototype, and "
        "the ICNN loss, -log of a nearest-neighbour score that rewards tight same-class and far different-class "
        "neighbourhoods. Here both are pytorch-metric-learning losses (episode form via ref_emb) that match the "
        "authors' reference values, plus the episode combination of the reference's --losses flag."
    ),
    components=(
        "paperzoo.losses.ProtoTripletLoss",
        "paperzoo.losses.ICNNLoss",
        "paperzoo.losses.FewShotLossCombo",
        "paperzoo.losses.SusanaDistance",
        "paperzoo.losses.proto_triplet_loss",
        "paperzoo.losses.icnn_score",
        "paperzoo.losses.icnn_loss",
        "paperzoo.losses.episode_prototypes",
        "paperzoo.losses.protonet_logits",
    ),
    usage="""\
import torch
from paperzoo.losses import FewShotLossCombo, ICNNLoss, ProtoTripletLoss
support, query = torch.randn(25, 64, requires_grad=True), torch.randn(75, 64)  # 5-way 5-shot, 15 queries
s_labels, q_labels = torch.arange(5).repeat_interleave(5), torch.arange(5).repeat_interleave(15)
loss = FewShotLossCombo(("cross", "prototriplet", "fullicnn"))(support, s_labels, query, q_labels)
loss.backward()
pt = ProtoTripletLoss(margin=0.5)(query, q_labels, ref_emb=support, ref_labels=s_labels)  # prototypes = means
icnn = ICNNLoss(k=4)(torch.cat([support, query]), torch.cat([s_labels, q_labels]))  # -log score on the batch
""",
    paper_result=(
        "about 2% higher few-shot accuracy on miniImageNet than other metric-based methods with the losses added to "
        "ProtoNet training, competitive cross-domain results on CUB, Stanford Dogs and Cars (per-setting numbers and "
        "the loss combination behind them unconfirmed)"
    ),
    methods=(
        Method(
            "prototriplet",
            "retrieval",
            "paperzoo.losses:ProtoTripletLoss",
            {},
            "Proto-Triplet loss, prototypes = class means of the batch (margin 0.5)",
        ),
        Method("icnn", "retrieval", "paperzoo.losses:ICNNLoss", {}, "ICNN loss -log score on the batch (k = 4)"),
    ),
    bench=(
        LossBench(
            "ProtoTripletLoss",
            "metric",
            "paperzoo.losses:ProtoTripletLoss",
            reference="paperzoo.losses.proto_triplet_icnn:pml_batch_hard_triplet",
            reference_name="PML TripletMarginLoss (margin 0.5) + BatchHardMiner",
            target_ratio=1.0,
            target_min_batch=512,
            notes="paper 37; batch form (prototypes = class means of the batch), margin 0.5",
        ),
        LossBench(
            "ICNNLoss",
            "metric",
            "paperzoo.losses:ICNNLoss",
            reference="paperzoo.losses.proto_triplet_icnn:pml_nca",
            reference_name="PML NCALoss",
            target_ratio=1.0,
            target_min_batch=512,
            notes="paper 37; batch form (targets = the batch), k = 4",
        ),
    ),
)
