"""Record of paper 10, neural collapse in deep linear networks (Dang et al., ICML 2023)."""

from paperzoo.papers import Record

RECORD = Record(
    number=10,
    summary=(
        "Puts M linear layers between free last-layer features and the output (a deep linear unconstrained-"
        "features model) and characterises every global minimiser under weight decay: neural collapse at every "
        "layer for balanced data (orthogonal frame for bias-free MSE, simplex ETF with a bias or for CE), and for "
        "imbalanced data with bias-free MSE an orthogonal frame whose lengths depend on the class sizes, with "
        "classes below a size threshold collapsing to zero. Ships vectorised NC1-NC3 metrics for any model, the "
        "closed-form geometry, the model, and a deep linear head with the paper's sep_decay loss."
    ),
    components=(
        "paperzoo.analysis.neural_collapse.nc_metrics",
        "paperzoo.analysis.neural_collapse.nc_metrics_reference",
        "paperzoo.analysis.neural_collapse.predict_dlufm_geometry",
        "paperzoo.analysis.neural_collapse.NCGeometry",
        "paperzoo.analysis.neural_collapse.solve_x",
        "paperzoo.analysis.neural_collapse.beta_crit",
        "paperzoo.analysis.neural_collapse.minority_collapse_threshold",
        "paperzoo.analysis.neural_collapse.dlufm_objective",
        "paperzoo.analysis.neural_collapse.DeepLinearHead",
        "paperzoo.analysis.neural_collapse.DeepLinearUFM",
        "paperzoo.analysis.neural_collapse.fit_ufm",
    ),
    usage="""\
import torch
from paperzoo.analysis.neural_collapse import DeepLinearUFM, fit_ufm, nc_metrics, predict_dlufm_geometry
n = (200, 100, 50, 50)  # imbalanced classes
geo = predict_dlufm_geometry(n, lambda_W=5e-4, lambda_H=5e-4, M=3)  # closed-form minimiser
model = DeepLinearUFM(n, d=16, M=3, generator=torch.Generator().manual_seed(0))
fit_ufm(model, sgd_iters=0, lbfgs_iters=200)
m = nc_metrics(model.H, model.labels, model.head.end_to_end(), target="gof", prediction=geo)
print(geo.classifier_norms2.round(3), (m["classifier_norms"] ** 2).numpy().round(3), round(m["NC2_W"], 6))
""",
    paper_result=(
        "On the deep linear unconstrained-features model (K = 4, M in {1, 3, 6, 9}) every NC metric decays towards "
        "0, matching the orthogonal frame / simplex ETF (balanced) and the n_k-dependent orthogonal frame "
        "(imbalanced, bias-free MSE); MLP, VGG and ResNet with deep linear heads on CIFAR-10 show the same trends, "
        "approaching but not reaching 0; figure values unconfirmed"
    ),
)
