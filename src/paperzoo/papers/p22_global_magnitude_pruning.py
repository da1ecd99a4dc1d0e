"""Record of paper 22, Global Magnitude Pruning with a Minimum Threshold (Gupta et al., 2022)."""

from paperzoo.papers import Method, Record

RECORD = Record(
    number=22,
    summary=(
        "Global magnitude pruning (Global MP) ranks every conv/linear weight of a trained network in one pool by "
        "|w| and zeroes the smallest until the target sparsity, so layer-wise sparsities fall out of the ranking; "
        "a Minimum Threshold (MT) keeps at least T weights per layer against layer collapse, redistributing the "
        "freed budget in proportion to the Global-MP sparsities (computed here in closed form). Masked "
        "fine-tuning, the gradual cubic schedule, sparse-MAC accounting and measured CPU latency come with it."
    ),
    components=(
        "paperzoo.pruning.GlobalMagnitudePruner",
        "paperzoo.pruning.minimum_threshold_allocation",
        "paperzoo.pruning.UniformMagnitudePruner",
        "paperzoo.pruning.RandomPruner",
        "paperzoo.pruning.GradualGlobalPruner",
        "paperzoo.pruning.masked_finetune",
        "paperzoo.pruning.sparsity_report",
        "paperzoo.pruning.collapsed_layers",
        "paperzoo.pruning.latency_comparison",
        "paperzoo.pruning.sparsity_curve",
        "paperzoo.pruning.ChannelMagnitudePruner",
    ),
    usage="""\
import torch
from torch import nn
from paperzoo.pruning import GlobalMagnitudePruner, collapsed_layers, sparsity_report
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
GlobalMagnitudePruner(min_weights=0.002).prune(model, 0.95)  # Global MP + MT (T = 0.2 % of the weights)
report = sparsity_report(model, torch.randn(1, 64))
assert abs(report["sparsity"] - 0.95) < 1e-3 and not collapsed_layers(model, min_count=100)
""",
    paper_result=(
        "ResNet-50 on ImageNet, one-shot Global MP + fine-tuning from a 77.04 % dense model: 76.84 % top-1 at 80 % "
        "sparsity, 75.44 % at 90 %, 71.63 % at 95.3 %, 62.12 % at 98.05 % (MT costs <= 0.3 points there); the paper "
        "claims Global MP matches or beats SNIP, RigL, GMP, DNW, DPF, STR and others on ResNet-50, MobileNet-V1, "
        "WRN-28-8 and ResNet-32 (baseline numbers unconfirmed)"
    ),
    methods=(
        Method(
            "global-mp-mt",
            "pruning",
            "paperzoo.pruning:GlobalMagnitudePruner",
            {"min_weights": 0.01},
            "Global MP with a Minimum Threshold: every layer keeps at least 1 % of the prunable weights",
        ),
    ),
)
