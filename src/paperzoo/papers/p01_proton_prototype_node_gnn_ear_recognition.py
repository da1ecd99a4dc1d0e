"""Record of paper 1, ProtoN: a prototype-node graph network for multi-impression ear recognition (Peddi et al.,
2025)."""

from paperzoo.papers import Method, Record

RECORD = Record(
    number=1,
    summary=(
        "Each identity of a few-shot episode becomes a small graph: its impressions plus a learnable prototype node. "
        "A Prototype GNN layer refines both by dual-path message passing (impressions attend to each other and "
        "receive the prototype; the prototype attends to the impressions), a cross-graph alignment loss pulls "
        "impressions to their prototype and pushes prototypes apart, and a hybrid loss adds a global cosine "
        "classifier over all training identities to the episodic prototype loss. Only the abstract was available: "
        "the layer and losses here are a design that follows it."
    ),
    components=(
        "paperzoo.models.proton.ProtoNHead",
        "paperzoo.models.proton.PrototypeGraphLayer",
        "paperzoo.losses.proton.HybridEpisodicGlobalLoss",
        "paperzoo.losses.proton.CrossGraphAlignmentLoss",
        "paperzoo.losses.proton.cross_graph_alignment_loss",
        "paperzoo.losses.proton.episodic_prototype_loss",
    ),
    usage="""\
import torch
from paperzoo.losses.proton import HybridEpisodicGlobalLoss
from paperzoo.models.proton import ProtoNHead
head, loss_fn = ProtoNHead(64, n_layers=2), HybridEpisodicGlobalLoss(num_classes=20, dim=64)
support, queries = torch.randn(5, 3, 64), torch.randn(15, 64)  # 5 identities x 3 impressions, 15 queries
impressions, prototypes = head(support)  # refined (5, 3, 64) and (5, 64)
q_labels, global_labels = torch.arange(5).repeat_interleave(3), torch.randint(0, 20, (15,))
loss = loss_fn(queries, q_labels, impressions, prototypes, queries, global_labels)
loss.backward()
""",
    paper_result=(
        "Rank-1 identification up to 99.60% and EER as low as 0.025 on five ear benchmarks (data sets, per-set "
        "numbers and baselines unconfirmed: only the abstract was available)"
    ),
    methods=(
        Method(
            "proton",
            "fewshot",
            "paperzoo.losses:ProtoNEpisodeLoss",
            {},
            "ProtoN graph head + hybrid episodic / global / alignment loss, P x K batches as episodes",
        ),
    ),
)
