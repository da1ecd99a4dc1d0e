"""Record of paper 29, CFCD: coarse-to-fine compact discriminative representation (Zhu et al., ICCV 2023)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=29,
    summary=(
        "Single-stage retrieval with one global descriptor, trained coarse-to-fine. The coarse objective, MadaCos, "
        "is a cosine softmax whose scale and margin are recomputed every batch from the median target cosine so "
        "that the median sample's target probability is a fixed rho; both grow as training tightens the classes. "
        "Here MadaCos is a pytorch-metric-learning CosFaceLoss subclass plus a functional form, and the fine stage "
        "is the attentive local triplet loss (reciprocal-NN, Lowe-ratio and attention-matched local descriptors, "
        "nearest negative per hard-negative image), a plain module with a functional form."
    ),
    components=(
        "paperzoo.losses.MadaCosLoss",
        "paperzoo.losses.cfcd_local.AttentiveLocalTripletLoss",
        "paperzoo.losses.cfcd_local.attentive_local_triplet_loss",
        "paperzoo.losses.cfcd_local.match_local_descriptors",
        "paperzoo.losses.cfcd_local.maps_to_tuples",
        "paperzoo.losses.madacos.madacos_logits",
        "paperzoo.losses.madacos.madacos_loss",
    ),
    usage="""\
import torch
from paperzoo.losses import MadaCosLoss
from paperzoo.losses.madacos import madacos_logits
loss_fn = MadaCosLoss(num_classes=10, embedding_size=64)  # rho=0.02, s >= 32, K=9999999
emb, labels = torch.randn(128, 64, requires_grad=True), torch.randint(0, 10, (128,))
loss = loss_fn(emb, labels)
loss.backward()
print(loss_fn.scale, loss_fn.margin, loss_fn.median_cos)  # this batch's adaptive s, m
logits, s, m = madacos_logits(torch.rand(8, 5) * 2 - 1, torch.arange(8) % 5)
""",
    paper_result=(
        "single-stage state of the art on Revisited Oxford and Paris (Medium/Hard, +-1M distractors) with "
        "ResNet-50/101 trained on GLDv2-clean; exact table values unconfirmed"
    ),
    methods=(
        Method(
            "madacos",
            "retrieval",
            "paperzoo.losses:MadaCosLoss",
            {},
            "MadaCos adaptive-scale, adaptive-margin cosine softmax head (rho=0.02; one proxy per training class)",
        ),
    ),
    bench=(
        LossBench(
            "MadaCosLoss",
            "metric",
            "paperzoo.losses.madacos:_madacos_bench",
            reference="paperzoo.losses.madacos:_pml_cosface_bench",
            reference_name="PML CosFaceLoss (s=30, m=0.35)",
            target_ratio=1.0,
            target_min_batch=512,
            notes="paper 29; 128-d embeddings, 1024 classes; rho=0.02",
        ),
    ),
)
