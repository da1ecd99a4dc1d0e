"""Record of paper 46, DDFA for latent label shift (Roberts, Mani, Garg & Lipton, NeurIPS 2022)."""

from paperzoo.papers import Record

RECORD = Record(
    number=46,
    summary=(
        "Under latent label shift, unlabelled domains share p(x|y) and differ only in p_d(y), so inputs whose "
        "classes shift together across domains group together. DDFA recovers p_d(y|x) without labels: train a "
        "domain discriminator p(d|x), discretise its outputs with k-means, factorise the cluster x domain "
        "histogram (NMF, a topic model with anchor clusters) into p(y|d) and p(cluster|y), then combine "
        "p(y|x) = Q^+ p(d|x) with p(d|y) by Bayes' rule. Here: the four steps as functions on paperzoo.engine.fit, "
        "scikit-learn and numpy, an anchor-based (SPA) factorisation besides the official NMF, the latent-label-"
        "shift data generator, and Hungarian-matched evaluation."
    ),
    components=(
        "paperzoo.adaptation.ddfa.DDFA",
        "paperzoo.adaptation.ddfa.DiscriminatorConfig",
        "paperzoo.adaptation.ddfa.train_domain_discriminator",
        "paperzoo.adaptation.ddfa.predict_domain_posterior",
        "paperzoo.adaptation.ddfa.discretize",
        "paperzoo.adaptation.ddfa.domain_histogram",
        "paperzoo.adaptation.ddfa.factorize_domain_histogram",
        "paperzoo.adaptation.ddfa.successive_projection",
        "paperzoo.adaptation.ddfa.topic_model_view",
        "paperzoo.adaptation.ddfa.posterior_from_domain_posterior",
        "paperzoo.adaptation.ddfa.domain_adjusted_posterior",
        "paperzoo.adaptation.ddfa.naive_cluster_posterior",
        "paperzoo.adaptation.ddfa.hungarian_accuracy",
        "paperzoo.adaptation.ddfa.class_prior_error",
        "paperzoo.data.latent_label_shift.make_latent_label_shift",
        "paperzoo.data.latent_label_shift.sample_domain_priors",
    ),
    usage="""\
import numpy as np
from paperzoo.adaptation.ddfa import DDFA, DiscriminatorConfig, class_prior_error, hungarian_accuracy
from paperzoo.data.latent_label_shift import make_latent_label_shift
rng = np.random.default_rng(0)
y = np.repeat(np.arange(3), 400)
x = rng.normal(size=(1200, 8)) + 3.0 * np.eye(8)[y]  # shared p(x|y)
lls = make_latent_label_shift(y, 6, alpha=0.5, max_cond=6.0, seed=0)
xs, d, ys = x[lls.index], lls.domain, y[lls.index]
disc = DiscriminatorConfig(hidden=(), epochs=5, batch_size=128, lr=1e-2)  # logistic regression
model = DDFA(n_classes=3, n_domains=6, n_clusters=9, factorize="spa", discriminator=disc, seed=0)
model.fit(xs, d)
print(hungarian_accuracy(ys, model.predict(xs, d)), class_prior_error(lls.class_given_domain, model.class_priors_))
""",
    paper_result=(
        "On semi-synthetic CIFAR-10, CIFAR-20, ImageNet-50 and FieldGuide with Dirichlet(alpha/K) domain priors, DDFA "
        "(especially initialised from SCAN) beats competitive unsupervised classification (SCAN) when domains shift "
        "strongly (small alpha), and succeeds on FieldGuide where feature similarity does not indicate the classes "
        "and standard unsupervised methods fail (per-setting numbers unconfirmed)"
    ),
)
