"""Record of paper 47, one step of GD is the optimal in-context learner of one linear
self-attention layer (Mahankali, Hashimoto & Ma, ICLR 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=47,
    summary=(
        "On random linear-regression prompts, the prediction of one layer of linear self-attention collapses to "
        "m^T Gamma x_q in the prompt's cross-moment m = (1/n) sum y_i x_i, so its pre-training loss is a convex "
        "quadratic in Gamma whose global minimiser is one step of gradient descent from w = 0: plain GD with step "
        "n/(n + d + 1 + s2) for isotropic Gaussian data, GD preconditioned by Sigma^-1 when x ~ N(0, Sigma) and "
        "w ~ N(0, Sigma^-1), and still plain GD for a family of nonlinear responses. Here: the LSA layer (token-level "
        "and a fast query-only prediction), the closed-form optimum and loss, the prompt generator and the one-step "
        "GD, ridge and least-squares predictors."
    ),
    components=(
        "paperzoo.analysis.in_context.LinearSelfAttention",
        "paperzoo.analysis.in_context.LinearRegressionPrompts",
        "paperzoo.analysis.in_context.optimal_gamma",
        "paperzoo.analysis.in_context.optimal_step_size",
        "paperzoo.analysis.in_context.population_loss",
        "paperzoo.analysis.in_context.optimal_loss",
        "paperzoo.analysis.in_context.best_scalar_gd_step",
        "paperzoo.analysis.in_context.monte_carlo_optimal_gamma",
        "paperzoo.analysis.in_context.one_step_gd_predict",
        "paperzoo.analysis.in_context.ridge_posterior_mean_predict",
        "paperzoo.analysis.in_context.least_squares_predict",
        "paperzoo.analysis.in_context.compare_lsa_to_gd",
    ),
    usage="""\
import torch
from paperzoo.analysis.in_context import LinearRegressionPrompts, LinearSelfAttention, compare_lsa_to_gd
Sigma = torch.diag(torch.tensor([2.0, 1.0, 0.5, 0.25], dtype=torch.float64))
prompts = LinearRegressionPrompts(4, 20, Sigma, torch.linalg.inv(Sigma), noise_std=0.5)  # x ~ N(0, S), w ~ N(0, S^-1)
gamma_star = prompts.optimal_gamma()  # = n/(n + d + 1 + s2) * Sigma^-1: one step of preconditioned GD
lsa = LinearSelfAttention.from_gamma(gamma_star)  # the LSA weights of the global minimiser
print(compare_lsa_to_gd(lsa, prompts, n_eval=2000))  # gamma_rel_error 0, pred_rel_mse 0
""",
    paper_result=(
        "Theory, no experiments retrieved: for noisy linear regression with x ~ N(0, I), w ~ N(0, I) the global "
        "minimiser of a one-layer LSA's pre-training loss implements one step of GD on the least-squares loss; with "
        "x ~ N(0, Sigma), w ~ N(0, Sigma^-1) one step of GD preconditioned by Sigma^-1; with nonlinear responses "
        "(family's exact conditions unconfirmed) still one step of plain GD"
    ),
)
