"""Record of paper 35, towards exact computation of inductive bias (Boopathy, Yue, Hwang, Iyer & Fiete,
IJCAI 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=35,
    summary=(
        "The inductive bias a task requires is the information needed to single out a hypothesis that reaches "
        "test error eps: I(eps) = -log P(e(h) <= eps) over hypotheses that fit the training data. The paper samples "
        "hypotheses (an interpolating Gaussian process, or neural networks trained from random initialisations), "
        "fits a scaled non-central chi-squared to their test errors and reads I off its lower tail. For the GP the "
        "error law is a generalised chi-squared, so I can also be computed exactly, and the fit checked against it."
    ),
    components=(
        "paperzoo.analysis.inductive_bias.inductive_bias_from_errors",
        "paperzoo.analysis.inductive_bias.fit_ncx2",
        "paperzoo.analysis.inductive_bias.sankaran_z",
        "paperzoo.analysis.inductive_bias.GeneralizedChi2",
        "paperzoo.analysis.inductive_bias.GPHypothesisSampler",
        "paperzoo.analysis.inductive_bias.exact_inductive_bias_gp",
        "paperzoo.analysis.inductive_bias.reference_sample_errors",
        "paperzoo.analysis.inductive_bias.NeuralHypothesisSampler",
        "paperzoo.analysis.inductive_bias.MLPEnsemble",
        "paperzoo.analysis.inductive_bias.inductive_bias_curve",
        "paperzoo.analysis.inductive_bias.encoded_bias",
        "paperzoo.analysis.inductive_bias.rbf_kernel",
    ),
    usage="""\
import numpy as np
from paperzoo.analysis.inductive_bias import GPHypothesisSampler, encoded_bias, inductive_bias_from_errors
rng = np.random.default_rng(0)
X, Xt = rng.standard_normal((60, 4)), rng.standard_normal((40, 4))
f = lambda x: np.sin(x.sum(1, keepdims=True))
gp = GPHypothesisSampler(lengthscale=2.0).fit(X, f(X))
errors = gp.sample_errors(Xt, f(Xt), 1000, generator=0)  # test MSE of 1000 sampled interpolating hypotheses
exact = gp.error_distribution(Xt, f(Xt))  # its exact law: a generalised chi-squared
print(inductive_bias_from_errors(errors, 0.02, units="nats").value, exact.inductive_bias(0.02, units="nats"))
print(encoded_bias(exact, errors, [0.02, 0.05], units="bits"))  # exact minus fitted, in bits
""",
    paper_result=(
        "Inductive bias estimated from sampled hypotheses on MNIST, CIFAR-10, 5-way 1-shot Omniglot and "
        "inverted-pendulum control: higher-dimensional tasks require more inductive bias, and neural networks "
        "encode massive amounts of inductive bias relative to kernel hypothesis spaces; the numbers, units and "
        "error-bound constants are unconfirmed"
    ),
)
