"""Record of paper 19, wide and deep networks achieve optimality for classification
(Radhakrishnan, Belkin & Uhler, 2022)."""

from paperzoo.papers import Record

RECORD = Record(
    number=19,
    summary=(
        "Infinitely wide networks trained to interpolation are kernel machines (NNGP / NTK); as the depth also "
        "grows, the classifier tends to 1-NN, the majority vote or a singular kernel rule ||x - z||^-alpha, decided "
        "by the activation's dual alone (alpha = 2 ln(1/xi'(0)) / ln xi'(1)). With alpha = the data's intrinsic "
        "dimension the rule is the Hilbert estimate, which is Bayes-consistent: explicit activations make "
        "infinitely wide and deep networks consistent classifiers; ReLU networks tend to the majority vote."
    ),
    components=(
        "paperzoo.analysis.wide_deep_kernels.nngp_kernel",
        "paperzoo.analysis.wide_deep_kernels.ntk_kernel",
        "paperzoo.analysis.wide_deep_kernels.kernel_pair",
        "paperzoo.analysis.wide_deep_kernels.dual_activation",
        "paperzoo.analysis.wide_deep_kernels.from_hermite_coeffs",
        "paperzoo.analysis.wide_deep_kernels.alpha_exponent",
        "paperzoo.analysis.wide_deep_kernels.regime",
        "paperzoo.analysis.wide_deep_kernels.optimal_activation",
        "paperzoo.analysis.wide_deep_kernels.koenigs_function",
        "paperzoo.analysis.wide_deep_kernels.kernel_interpolation_classifier",
        "paperzoo.analysis.wide_deep_kernels.deep_kernel_classifier",
        "paperzoo.analysis.wide_deep_kernels.singular_kernel_classifier",
        "paperzoo.analysis.wide_deep_kernels.hilbert_estimate",
        "paperzoo.analysis.wide_deep_kernels.one_nn",
        "paperzoo.analysis.wide_deep_kernels.majority_vote",
        "paperzoo.analysis.wide_deep_kernels.dirichlet_sphere_data",
        "paperzoo.analysis.wide_deep_kernels.dirichlet_bayes_classifier",
        "paperzoo.analysis.wide_deep_kernels.DeepFCNet",
        "paperzoo.analysis.wide_deep_kernels.empirical_nngp",
        "paperzoo.analysis.wide_deep_kernels.empirical_ntk",
        "paperzoo.analysis.wide_deep_kernels.HermiteActivation",
        "paperzoo.analysis.wide_deep_kernels.SineActivation",
    ),
    usage="""\
from paperzoo.analysis.wide_deep_kernels import (
    agreement, alpha_exponent, deep_kernel_classifier, dirichlet_sphere_data, hilbert_estimate, one_nn, regime,
)
a1, a2 = (0.5, 0.5, 2.5), (2.5, 0.1, 0.5)  # the official d = 3 Dirichlet setting
X, y, _ = dirichlet_sphere_data(100, a1, a2, prior1=0.4, seed=0)
Xt, yt, _ = dirichlet_sphere_data(500, a1, a2, prior1=0.4, seed=1)
print(regime("3d_opt"), regime("relu").kind, alpha_exponent("sine_2.676"))  # singular alpha=2, majority, ~2
deep = deep_kernel_classifier(X, y, Xt, "3d_opt", depth=100)  # infinitely wide, 100 hidden layers, NNGP
print(agreement(deep, hilbert_estimate(X, y, Xt, alpha=2.0)), (deep == yt).mean(), (one_nn(X, y, Xt) == yt).mean())
""",
    paper_result=(
        "Infinitely wide and deep networks tend, depending on the activation, to 1-NN, the majority vote (ReLU) or a "
        "singular kernel classifier, and explicit activations make them Bayes-consistent (the Hilbert estimate); "
        "shown on Dirichlet data on spheres (d = 2, 3, 5, 9; 10^4 train and test points); the accuracies of the "
        "paper's figures are unconfirmed"
    ),
)
