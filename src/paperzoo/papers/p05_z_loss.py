"""Record of paper 05, the Z-loss (de Brébisson & Vincent, 2016)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=5,
    summary=(
        "Z-loss standardises the logits across classes and applies a scaled softplus to the target's z-score, "
        "making it shift- and scale-invariant and dependent only on (o_c, sum o, sum o^2). That places it in the "
        "spherical family, whose output-layer SGD step costs O(d^2) per example whatever the number of classes "
        "(SphericalLinear)."
    ),
    components=(
        "paperzoo.losses.ZLoss",
        "paperzoo.losses.z_loss",
        "paperzoo.losses.z_loss_from_stats",
        "paperzoo.losses.spherical_stats",
        "paperzoo.losses.SphericalLinear",
    ),
    usage="""\
import torch
from paperzoo.losses import ZLoss
logits, target = torch.randn(8, 100), torch.randint(0, 100, (8,))
loss = ZLoss(a=1.0, b=1.0)(logits, target)
assert torch.allclose(loss, ZLoss()(3 * logits - 5, target), atol=1e-5)
""",
    paper_result=(
        "Word-level language modelling (Penn Treebank; One Billion Word, ~800k words): Z-loss is significantly "
        "better than the other spherical losses (MSE, log-Taylor-softmax), beats log-softmax on top-k for larger k "
        "(top-1 can be slightly worse), and trains ~40x faster than log-softmax on One Billion Word (per-table "
        "numbers unconfirmed)"
    ),
    methods=(
        Method(
            "zloss",
            "classification",
            "paperzoo.losses:ZLoss",
            {"a": 1.0, "b": 1.0},
            "Z-loss with the toolkit default (a, b) = (1, 1)",
        ),
    ),
    bench=(
        LossBench(
            "ZLoss",
            "classification",
            "paperzoo.losses:ZLoss",
            floor_target=2.0,
            notes="paper 05; no library implements it",
        ),
    ),
)
