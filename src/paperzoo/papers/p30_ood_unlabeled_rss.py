"""Record of paper 30, Out-Of-Domain Unlabeled Data Improves Generalization (Saberi et al., ICLR 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=30,
    summary=(
        "Robust self-supervised training (RSS): minimise a Wasserstein distributionally robust loss on m labelled "
        "samples plus lambda times the robust loss of n unlabelled, possibly out-of-domain samples at their own "
        "predicted labels; for a two-Gaussian mixture the authors bound the error and show that n >> m unlabelled "
        "samples from a mixture shifted by a small alpha beat ERM's (d/m)^(1/2) rate. Here: the closed-form robust "
        "ramp loss of a linear model, a generic robust loss by inner gradient ascent (WRM), the RSS objective as an "
        "engine.fit compute_loss, the linear Gaussian-mixture estimator, the shifted-mixture generator and the "
        "mixture's closed-form accuracies."
    ),
    components=(
        "paperzoo.training.rss.robust_ramp_linear",
        "paperzoo.training.rss.ramp_loss",
        "paperzoo.training.rss.WassersteinRobustLoss",
        "paperzoo.training.rss.RSSObjective",
        "paperzoo.training.rss.fit_linear_rss",
        "paperzoo.training.rss.rss_linear_objective",
        "paperzoo.training.rss.mean_estimator",
        "paperzoo.data.shifted_gmm.make_shifted_gmm",
        "paperzoo.analysis.rss_gmm.linear_gmm_accuracy",
        "paperzoo.analysis.rss_gmm.mean_estimator_accuracy",
        "paperzoo.analysis.rss_gmm.shifted_direction_accuracy",
        "paperzoo.analysis.rss_gmm.bayes_accuracy",
    ),
    usage="""\
from paperzoo.analysis.rss_gmm import linear_gmm_accuracy
from paperzoo.data.shifted_gmm import make_shifted_gmm
from paperzoo.training.rss import fit_linear_rss, mean_estimator
data = make_shifted_gmm(d=50, m=5, n=2000, alpha=0.3, n_test=0, seed=0)  # unlabelled mixture shifted by 0.3
erm = mean_estimator(data.x, data.y)
rss = fit_linear_rss(data.x, data.y, data.x_unlabelled, lam=1.0, gamma=1.0, steps=100)
print(f"{linear_gmm_accuracy(erm, data.mu0).item():.3f} -> {linear_gmm_accuracy(rss, data.mu0).item():.3f}")
""",
    paper_result=(
        "Simulated isotropic Gaussian mixture, d = 200: with m = 10 labelled samples ERM reaches 0.59 test accuracy "
        "and RSS with 10,000 unlabelled samples 0.82 (in-domain unlabelled data) or 0.81 (unlabelled mixture shifted "
        "by alpha = 0.5 ||mu_0||), against 0.83 for ERM with 10,000 labelled samples; on histopathology "
        "(NCT-CRC-HE-100K labelled, PatchCamelyon unlabelled) 2,000 out-of-domain unlabelled images raise accuracy "
        "from 0.78 to 0.81 with 25 labelled ones"
    ),
)
