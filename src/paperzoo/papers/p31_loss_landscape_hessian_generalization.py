"""Record of paper 31, loss landscapes and Hessian criteria of generalisation (Gabdullin, 2024; LLA)."""

from paperzoo.papers import Record

RECORD = Record(
    number=31,
    summary=(
        "Loss Landscape Analysis (LLA): loss-landscape planes along random axes (five normalisations, filter "
        "normalisation included), Hessian axes (the top-2 eigenvectors, proposed for BatchNorm networks, where random "
        "plots can mislead) and Adam axes (the optimiser's moments, also as an Adam-update surface); the Hessian "
        "eigenvalue spectral density by stochastic Lanczos quadrature, whose 'typical' shape (positive outliers, a "
        "bulk at zero, a small negative part) appears across networks; and two criteria from it, re = |lambda_min / "
        "lambda_max| and Kh0.5 (negative vs positive SLQ mass), proposed as cheap estimates of generalisation: when "
        "the data set changes, their change should track the change in accuracy. Here: HVP-based top eigenpairs "
        "(power iteration, Lanczos), Hutchinson trace, SLQ and density on any nn.Module + loss + batch(es) with "
        "torch.func, checked against exact Hessians; every landscape mode on an exact grid; a data-shift report."
    ),
    components=(
        "paperzoo.analysis.hessian.HessianAnalyzer",
        "paperzoo.analysis.hessian.power_iteration",
        "paperzoo.analysis.hessian.lanczos",
        "paperzoo.analysis.hessian.lanczos_top_eigen",
        "paperzoo.analysis.hessian.slq",
        "paperzoo.analysis.hessian.hutchinson_trace",
        "paperzoo.analysis.hessian.hessian_criteria",
        "paperzoo.analysis.hessian.exact_hessian_criteria",
        "paperzoo.analysis.hessian.esd_density",
        "paperzoo.analysis.hessian.exact_hessian",
        "paperzoo.analysis.hessian.generalization_shift_report",
        "paperzoo.analysis.hessian.plot_esd",
        "paperzoo.analysis.landscape.random_directions",
        "paperzoo.analysis.landscape.hessian_directions",
        "paperzoo.analysis.landscape.adam_directions",
        "paperzoo.analysis.landscape.normalize_direction",
        "paperzoo.analysis.landscape.loss_surface_2d",
        "paperzoo.analysis.landscape.loss_line_1d",
        "paperzoo.analysis.landscape.adam_eq_surface",
        "paperzoo.analysis.landscape.landscape_plane",
        "paperzoo.analysis.landscape.plot_surface",
    ),
    usage="""\
import torch
from torch import nn
from paperzoo.analysis.hessian import HessianAnalyzer
from paperzoo.analysis.landscape import landscape_plane
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
ha = HessianAnalyzer(model, nn.CrossEntropyLoss(), (x, y))  # any nn.Module + loss + batch(es)
print(ha.top_eigen(2).values, ha.trace().trace)  # power iteration (largest |lambda|), Hutchinson
esd = ha.esd(m=40)  # stochastic Lanczos quadrature: nodes and weights
print(esd.criteria(0.5))  # (re, Kh0.5), the paper's Hessian criteria
surf = landscape_plane(model, nn.CrossEntropyLoss(), (x, y), axes="hessian", normalization=None, steps=9)
print(surf.loss.shape, surf.loss[4, 4].item() == surf.center_loss)
""",
    paper_result=(
        "On ImageNet-1K pretrained models and models trained for the study, evaluated on other ('in the wild') data "
        "sets: changes of re and Kh0.5 computed on the evaluation data correlate with changes in accuracy (criterion "
        "up, accuracy down), HESDs share a typical shape across networks, and Hessian axes give correct landscape "
        "plots for BatchNorm networks where random axes may not; per-model numbers and correlations unconfirmed"
    ),
)
