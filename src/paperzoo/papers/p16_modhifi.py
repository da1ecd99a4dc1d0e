"""Record of paper 16, ModHiFi: Identifying High Fidelity predictive components for Model
Modification (Kashyap, Murti, Nayak, Narshana & Bhattacharyya, NeurIPS 2025)."""

from paperzoo.papers import Method, Record

RECORD = Record(
    number=16,
    summary=(
        "ModHiFi scores the components of a layer (the input channels of a conv, the input units of a linear "
        "layer) by how much of each output channel they reconstruct after an optimal least-squares rescaling "
        "(subset fidelity), from forward passes on unlabelled synthetic data only: no labels, loss or gradients. "
        "The component similarity matrices follow from the Gram matrix of the layer's input patches; the singleton "
        "fidelity, RowSum, alpha and Cholesky scores, the closed-form compensation, k-MFS (greedy, Monte Carlo, "
        "brute force) and HiFi sets are exact float64 linear algebra. ModHiFi-P prunes the channels outside the "
        "HiFi sets (union rule, or a matched channel budget) through torch-pruning's dependency graph, compensates "
        "the surviving weights and re-estimates BatchNorm; ModHiFi-U zeroes (or negates) the HiFi components of "
        "the class to forget."
    ),
    components=(
        "paperzoo.pruning.modhifi.CalibrationStats",
        "paperzoo.pruning.modhifi.component_similarity",
        "paperzoo.pruning.modhifi.singleton_fidelity",
        "paperzoo.pruning.modhifi.rowsum_saliency",
        "paperzoo.pruning.modhifi.alpha_scores",
        "paperzoo.pruning.modhifi.cholesky_rownorm_scores",
        "paperzoo.pruning.modhifi.subset_fidelity",
        "paperzoo.pruning.modhifi.optimal_compensation",
        "paperzoo.pruning.modhifi.naive_kmfs",
        "paperzoo.pruning.modhifi.kmfs_monte_carlo",
        "paperzoo.pruning.modhifi.bruteforce_kmfs",
        "paperzoo.pruning.modhifi.hifi_sets",
        "paperzoo.pruning.modhifi.hifi_membership",
        "paperzoo.pruning.modhifi.ModHiFiImportance",
        "paperzoo.pruning.modhifi.ModHiFiPruner",
        "paperzoo.pruning.modhifi.L2StructuredPruner",
        "paperzoo.pruning.modhifi.synthetic_like",
        "paperzoo.pruning.modhifi.local_global_error_ratio",
        "paperzoo.unlearning.modhifi.ModHiFiUnlearner",
        "paperzoo.unlearning.modhifi.modhifi_unlearn",
    ),
    usage="""\
import torch
from torch import nn
from paperzoo.pruning.modhifi import ModHiFiPruner
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
calibration = torch.rand(128, 1, 8, 8)  # unlabelled (synthetic) inputs
pruner = ModHiFiPruner(score="fidelity")
small = pruner.prune(model, 0.5, calibration)  # channels removed, compensated, BN re-estimated
assert small[0].out_channels < 16 and pruner.last_report["sparsity"] >= 0.5
""",
    paper_result=(
        "ResNet-50 on ImageNet (with post-training): ModHiFi-P 76.70 % top-1 at 2.17x fewer FLOPs and a 1.69x CPU "
        "speed-up (unpruned 76.1 %, DFPC 75.9 %); ResNet-50 on CIFAR-10 from synthetic data only: 91.02 % at 4.07x "
        "FLOPs where L2 pruning falls to 15.91 %; ModHiFi-U on CIFAR-10 ResNet-50 without fine-tuning: 0.20 % "
        "forget-class and 92.98 % remaining accuracy in 10 s (gradient ascent 6.59 % / 93.44 %)"
    ),
    methods=(
        Method(
            "modhifi-p",
            "pruning",
            "paperzoo.pruning.modhifi:ModHiFiPruner",
            {"score": "fidelity"},
            "ModHiFi-P: structured pruning of the channels in the fewest HiFi sets (singleton fidelity, uniform "
            "channel budget), least-squares compensation, BatchNorm re-estimation; unlabelled calibration only",
        ),
        Method(
            "modhifi-u",
            "unlearning",
            "paperzoo.unlearning.modhifi:ModHiFiUnlearner",
            {"fraction": 0.1},
            "ModHiFi-U: zero the top 10 % components (RowSum on the forget inputs, centred on all training inputs) "
            "of every output of the last third of the layers; reads no labels, no training",
        ),
    ),
)
