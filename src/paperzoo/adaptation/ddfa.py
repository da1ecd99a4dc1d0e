"""DDFA (Discriminate, Discretize, Factorize, Adjust) from Roberts, Mani, Garg & Lipton (NeurIPS 2022),
"Unsupervised Learning under Latent Label Shift".

Latent label shift: unlabelled data come from ``r`` domains whose label marginals p_d(y) differ
while p(x | y) is shared. Then, with uniform domain sizes, p(d | x) = sum_y p(d | y) p(y | x): the
domain posterior is a mixture of the K columns of Q = p(d | y), and the classes are identified
(up to a permutation) from which inputs "shift together" across domains. For a finite input space
this is a topic model (inputs = words, domains = documents, classes = topics) and an anchor input
per class makes it identifiable. The pipeline, as composable steps (the official code's order):

1. Discriminate: :func:`train_domain_discriminator`, a softmax domain classifier g(x) ~ p(d | x)
   trained with cross-entropy on the domain index (on :func:`paperzoo.engine.fit`; Adam,
   ``ExponentialLR(0.97)`` per epoch, the epoch with the lowest validation loss is kept).
2. Discretize: :func:`discretize`, k-means with ``m`` clusters on the vectors g(x).
3. Factorize: :func:`domain_histogram` (p(cluster | d), m x r) and
   :func:`factorize_domain_histogram` into p(y | d) (K x r) and p(cluster | y) (m x K), either
   with scikit-learn's NMF (``"nmf"``, the official choice) or with the successive projection
   algorithm on the anchor rows (``"spa"``, the anchor-word argument made an algorithm; not in
   the official code).
4. Adjust: :func:`posterior_from_domain_posterior` (p(y | x) = Q^+ g(x)) and
   :func:`domain_adjusted_posterior` (p_d(y | x) proportional to p(y | x) p(d | y)).

:class:`DDFA` chains the four steps; :func:`naive_cluster_posterior` is the official "naive"
read-out (the cluster alone); :func:`class_prior_error` and :func:`hungarian_accuracy` are the
evaluation (Hungarian matching through :func:`paperzoo.metrics.cluster_accuracy`).
All steps are vectorised numpy / torch; the discriminator is the only trained part.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from paperzoo._validation import Interval, Options, validate_params

__all__ = [
    "DDFA",
    "DiscriminatorConfig",
    "class_prior_error",
    "discretize",
    "domain_adjusted_posterior",
    "domain_histogram",
    "factorize_domain_histogram",
    "hungarian_accuracy",
    "naive_cluster_posterior",
    "posterior_from_domain_posterior",
    "predict_domain_posterior",
    "successive_projection",
    "topic_model_view",
    "train_domain_discriminator",
]

_EPS = 1e-8


# --------------------------------------------------------------------------- input checks
def _matrix(a: Any, name: str, *, nonneg: bool = False) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    if nonneg and (arr < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return arr


def _domains(domains: Any, n: int, n_domains: int, name: str = "domains") -> np.ndarray:
    d = np.asarray(domains)
    if d.ndim != 1 or d.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {d.shape}")
    if d.size and not np.issubdtype(d.dtype, np.integer):
        raise ValueError(f"{name} must be integer domain ids, got dtype {d.dtype}")
    if d.size and (d.min() < 0 or d.max() >= n_domains):
        raise ValueError(f"{name} must lie in [0, {n_domains - 1}] (n_domains={n_domains}), got [{d.min()}, {d.max()}]")
    return d.astype(np.int64)


# --------------------------------------------------------------------------- 1. discriminate
@dataclass(frozen=True)
class DiscriminatorConfig:
    """How the domain discriminator is trained (defaults: the official optimiser, shorter).

    Attributes:
        hidden: widths of the MLP's hidden layers (``()`` = multinomial logistic regression).
        epochs: passes over the training data; the epoch with the lowest validation loss is kept.
        lr: Adam learning rate (official 1e-3).
        gamma: ``ExponentialLR`` factor per epoch (official 0.97).
        batch_size: official 32.
        weight_decay: Adam weight decay.
        dropout: dropout after each hidden layer (the official ResNet uses dropout blocks).
    """

    hidden: tuple[int, ...] = (256,)
    epochs: int = 20
    lr: float = 1e-3
    gamma: float = 0.97
    batch_size: int = 32
    weight_decay: float = 0.0
    dropout: float = 0.0


def _mlp(in_dim: int, out_dim: int, cfg: DiscriminatorConfig) -> nn.Module:
    from paperzoo.models import MLP

    return MLP(in_dim, hidden=cfg.hidden, out_dim=out_dim, dropout=cfg.dropout)


def train_domain_discriminator(
    x: Any,
    domains: Any,
    n_domains: int,
    *,
    x_valid: Any | None = None,
    domains_valid: Any | None = None,
    config: DiscriminatorConfig | None = None,
    model: nn.Module | None = None,
    seed: int = 0,
) -> nn.Module:
    """Step 1: a domain classifier g with softmax(g(x)) ~ p(d | x), trained with cross-entropy on
    the domain index by :func:`paperzoo.engine.fit`, one epoch per call (Adam, exponential decay
    per epoch). With a validation split, the weights of the epoch with the lowest validation loss
    are returned (the official model selection); without one, those of the last epoch.

    Args:
        x: (N, ...) inputs (array or tensor, flattened by the default MLP).
        domains: (N,) domain ids in ``0..n_domains-1``.
        n_domains: r.
        x_valid, domains_valid: optional validation split for model selection.
        config: :class:`DiscriminatorConfig`.
        model: a module mapping x to r logits (default: an MLP of ``config.hidden``).
        seed: seed of the initialisation and of the batch order.
    """
    from torch.utils.data import TensorDataset

    from paperzoo.engine import TrainConfig, fit, make_loader, seed_everything

    cfg = config or DiscriminatorConfig()
    validate_params(
        {"n_domains": [Interval(int, 1, math.inf, closed="left")]},
        {"n_domains": n_domains},
        owner="train_domain_discriminator",
    )
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).flatten(1)
    if xt.shape[0] == 0:
        raise ValueError("x must not be empty")
    dt = torch.as_tensor(_domains(domains, xt.shape[0], n_domains))
    seed_everything(seed)
    net = model if model is not None else _mlp(xt.shape[1], n_domains, cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
    has_valid = x_valid is not None and domains_valid is not None
    if has_valid:
        xv = torch.as_tensor(np.asarray(x_valid, dtype=np.float32)).flatten(1)
        dv = torch.as_tensor(_domains(domains_valid, xv.shape[0], n_domains, "domains_valid"))
    ce = nn.CrossEntropyLoss()
    best, best_state = math.inf, None
    for epoch in range(cfg.epochs):
        loader = make_loader(TensorDataset(xt, dt), cfg.batch_size, seed=seed + epoch)
        fit(net, ce, loader, opt, TrainConfig(epochs=1, seed=seed + epoch, progress=False, desc="domain disc."))
        sched.step()
        if has_valid:
            net.eval()
            with torch.no_grad():
                loss = float(ce(net(xv), dv))
            net.train()
            if loss < best:
                best, best_state = loss, copy.deepcopy(net.state_dict())
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval()


def predict_domain_posterior(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: Any, batch_size: int = 4096
) -> np.ndarray:
    """(N, r) softmax domain posterior of ``model`` on ``x`` (float64, rows sum to 1)."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).flatten(1)
    if isinstance(model, nn.Module):
        model.eval()
    with torch.no_grad():
        out = [torch.softmax(model(xt[i : i + batch_size]).double(), dim=1) for i in range(0, xt.shape[0], batch_size)]
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------- 2. discretize
def discretize(
    features: Any, n_clusters: int, *, seed: int = 0, n_init: int = 5, max_iter: int = 100
) -> tuple[np.ndarray, Any]:
    """Step 2: k-means with ``n_clusters`` clusters on the domain-posterior vectors (official:
    faiss k-means, 100 iterations, 5 restarts; here scikit-learn's ``KMeans``, same settings).

    Returns:
        (labels (N,), the fitted ``KMeans``; ``.predict`` discretises new inputs).
    """
    from sklearn.cluster import KMeans

    f = _matrix(features, "features")
    validate_params(
        {
            "n_clusters": [Interval(int, 1, math.inf, closed="left")],
            "n_init": [Interval(int, 1, math.inf, closed="left")],
        },
        {"n_clusters": n_clusters, "n_init": n_init},
        owner="discretize",
    )
    if n_clusters > f.shape[0]:
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of samples ({f.shape[0]})")
    km = KMeans(n_clusters=n_clusters, n_init=n_init, max_iter=max_iter, random_state=seed).fit(f)
    return km.labels_.astype(np.int64), km


# --------------------------------------------------------------------------- 3. factorize
def domain_histogram(clusters: Any, domains: Any, n_clusters: int, n_domains: int) -> np.ndarray:
    """(m, r) p(cluster | d): the (cluster x domain) count matrix with columns normalised.

    Raises:
        ValueError: a cluster id outside ``0..n_clusters-1``, a domain id out of range, or a
            domain without samples.
    """
    c = np.asarray(clusters)
    d = _domains(domains, c.shape[0], n_domains)
    if c.ndim != 1 or (c.size and (c.min() < 0 or c.max() >= n_clusters)):
        raise ValueError(f"clusters must be a 1-D array of ids in [0, {n_clusters - 1}]")
    h = np.zeros((n_clusters, n_domains))
    np.add.at(h, (c.astype(np.int64), d), 1.0)
    tot = h.sum(axis=0)
    if (tot == 0).any():
        raise ValueError(f"domains {np.flatnonzero(tot == 0).tolist()} have no samples")
    return h / tot


def successive_projection(m: Any, k: int) -> np.ndarray:
    """Indices of ``k`` anchor rows of ``m`` (n x r) by the successive projection algorithm:
    repeatedly the row of largest residual norm, then project every row off its direction."""
    r = _matrix(m, "m").copy()
    if k > r.shape[0]:
        raise ValueError(f"k={k} is larger than the number of rows ({r.shape[0]})")
    out = []
    for _ in range(k):  # k steps, each vectorised over rows
        j = int(np.argmax((r * r).sum(axis=1)))
        out.append(j)
        u = r[j] / max(np.linalg.norm(r[j]), 1e-300)
        r -= np.outer(r @ u, u)
    return np.asarray(out, dtype=np.int64)


def factorize_domain_histogram(
    h: Any, n_classes: int, *, method: str = "nmf", seed: int = 0, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: factorise p(cluster | d) (m x r) = p(cluster | y) p(y | d).

    ``"nmf"`` (official): scikit-learn ``NMF(n_components=K, init="random")`` on H^T, then the
    columns of the cluster factor are normalised to p(cluster | y) and their mass moved into the
    domain factor, whose columns are normalised to p(y | d). NMF is not unique: it reaches the
    right reconstruction but need not recover p(y | d) without anchors being found.
    ``"spa"``: anchors by :func:`successive_projection` on the rows of p(d | cluster) (uniform
    p(d)); Q = p(d | y) = the anchor rows; p(y | cluster) = Q^+ p(d | cluster) (clipped at 0,
    renormalised); p(y) = sum_c p(c) p(y | c); p(y | d) = p(d | y) p(y) r. Exact under the
    anchor condition.

    Returns:
        (p(y | d) (K, r), columns sum to 1; p(cluster | y) (m, K), columns sum to 1).
    """
    hm = _matrix(h, "h", nonneg=True)
    validate_params(
        {"n_classes": [Interval(int, 1, math.inf, closed="left")], "method": [Options(("nmf", "spa"))]},
        {"n_classes": n_classes, "method": method},
        owner="factorize_domain_histogram",
    )
    m, r = hm.shape
    if n_classes > m:
        raise ValueError(f"n_classes={n_classes} is larger than the number of clusters ({m})")
    if method == "nmf":
        from sklearn.decomposition import NMF

        nmf = NMF(n_components=n_classes, init="random", random_state=seed, max_iter=max_iter)
        w = nmf.fit_transform(hm.T).T  # (K, r)
        c = nmf.components_.T  # (m, K)
        s = c.sum(axis=0)
        s = np.where(s > 0, s, _EPS)
        c = c / s
        w = w * s[:, None]
        p_y_d = w / np.where(w.sum(axis=0) > 0, w.sum(axis=0), _EPS)
        return p_y_d, c
    p_c = hm.mean(axis=1)  # p(cluster) with p(d) = 1/r
    keep = p_c > 0
    p_d_c = np.zeros_like(hm)
    p_d_c[keep] = hm[keep] / hm[keep].sum(axis=1, keepdims=True)
    anchors = successive_projection(p_d_c, n_classes)
    q = p_d_c[anchors].T  # (r, K), p(d | y)
    p_y_c = (np.linalg.pinv(q) @ p_d_c.T).T.clip(min=0.0)  # (m, K)
    p_y_c /= np.where(p_y_c.sum(axis=1, keepdims=True) > 0, p_y_c.sum(axis=1, keepdims=True), 1.0)
    p_y = p_c @ p_y_c  # (K,)
    p_y_d = (q * p_y[None, :] * r).T  # (K, r)
    p_y_d /= np.where(p_y_d.sum(axis=0) > 0, p_y_d.sum(axis=0), _EPS)
    p_c_y = p_y_c * p_c[:, None] / np.where(p_y > 0, p_y, _EPS)[None, :]
    return p_y_d, p_c_y


def topic_model_view(
    counts: Any, n_classes: int, *, method: str = "spa", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's isomorphism for a finite input space: the (input x domain) count or
    probability matrix is a topic model's word-document matrix, factorised directly
    (p(y | d) (K, r), p(x | y) (n_inputs, K)). Same as :func:`factorize_domain_histogram` on the
    column-normalised counts."""
    h = _matrix(counts, "counts", nonneg=True)
    tot = h.sum(axis=0)
    if (tot == 0).any():
        raise ValueError(f"counts: domains {np.flatnonzero(tot == 0).tolist()} have no mass")
    return factorize_domain_histogram(h / tot, n_classes, method=method, seed=seed)


# --------------------------------------------------------------------------- 4. adjust
def _q_from_priors(p_y_d: np.ndarray) -> np.ndarray:
    """Q = p(d | y) (r, K): p(y | d)^T normalised over d (zero columns guarded)."""
    q = p_y_d.T
    s = q.sum(axis=0)
    return q / np.where(s > 0, s, _EPS)


def posterior_from_domain_posterior(p_d_x: Any, p_y_d: Any) -> np.ndarray:
    """Pooled p(y | x) (N, K) = (Q^+ p(d | x))^T with Q = p(d | y) from p(y | d) (K, r); no
    clipping (the official read-out; entries may be slightly negative)."""
    pdx = _matrix(p_d_x, "p_d_x")
    pyd = _matrix(p_y_d, "p_y_d", nonneg=True)
    if pdx.shape[1] != pyd.shape[1]:
        raise ValueError(f"p_d_x has {pdx.shape[1]} domains but p_y_d has {pyd.shape[1]}")
    return pdx @ np.linalg.pinv(_q_from_priors(pyd)).T


def domain_adjusted_posterior(p_y_x: Any, p_y_d: Any, domains: Any) -> np.ndarray:
    """p_d(y | x) (N, K): p(y | x) times p(d | y) at each sample's domain, renormalised over y."""
    pyx = _matrix(p_y_x, "p_y_x")
    pyd = _matrix(p_y_d, "p_y_d", nonneg=True)
    if pyx.shape[1] != pyd.shape[0]:
        raise ValueError(f"p_y_x has {pyx.shape[1]} classes but p_y_d has {pyd.shape[0]}")
    d = _domains(domains, pyx.shape[0], pyd.shape[1])
    out = pyx * _q_from_priors(pyd)[d]
    s = out.sum(axis=1, keepdims=True)
    return out / np.where(np.abs(s) > 0, s, _EPS)


def naive_cluster_posterior(clusters: Any, domains: Any, p_c_y: Any, p_y_d: Any) -> np.ndarray:
    """The official naive read-out: p(y | cluster, d) proportional to p(cluster | y) p(y | d)."""
    pcy = _matrix(p_c_y, "p_c_y", nonneg=True)
    pyd = _matrix(p_y_d, "p_y_d", nonneg=True)
    c = np.asarray(clusters, dtype=np.int64)
    d = _domains(domains, c.shape[0], pyd.shape[1])
    out = pcy[c] * pyd.T[d]
    s = out.sum(axis=1, keepdims=True)
    return out / np.where(s > 0, s, _EPS)


# --------------------------------------------------------------------------- evaluation
def hungarian_accuracy(y_true: Any, y_pred: Any) -> float:
    """Accuracy after the best one-to-one matching of predicted to true classes
    (:func:`paperzoo.metrics.cluster_accuracy`, all samples)."""
    from paperzoo.metrics import cluster_accuracy

    y = np.asarray(y_true)
    return float(cluster_accuracy(y, np.asarray(y_pred), np.ones(y.shape[0], dtype=bool))["all"])


def class_prior_error(p_true: Any, p_est: Any) -> float:
    """L1 error sum_{y,d} |p_true(y|d) - p_est(pi(y)|d)| of (K, r) class priors, at the class
    permutation pi that minimises it (Hungarian matching on the K x K L1 costs)."""
    t = _matrix(p_true, "p_true")
    e = _matrix(p_est, "p_est")
    if t.shape != e.shape:
        raise ValueError(f"p_true and p_est must have the same shape, got {t.shape} and {e.shape}")
    cost = np.abs(t[:, None, :] - e[None, :, :]).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


# --------------------------------------------------------------------------- the pipeline
@dataclass
class DDFA:
    """Discriminate, Discretize, Factorize, Adjust.

    Args:
        n_classes: K.
        n_domains: r (>= K for identifiability).
        n_clusters: m, the k-means clusters of the domain posteriors (official: 3K for CIFAR-10,
            CIFAR-20 60).
        factorize: ``"nmf"`` (official) or ``"spa"`` (anchor rows).
        discriminator: :class:`DiscriminatorConfig` for the default MLP discriminator.
        seed: seed of the discriminator, k-means and NMF.

    After :meth:`fit`: ``class_priors_`` p(y | d) (K, r), ``cluster_given_class_`` (m, K),
    ``discriminator_``, ``kmeans_``.
    """

    n_classes: int
    n_domains: int
    n_clusters: int
    factorize: str = "nmf"
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    kmeans_n_init: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        validate_params(
            {
                "n_classes": [Interval(int, 1, math.inf, closed="left")],
                "n_domains": [Interval(int, 1, math.inf, closed="left")],
                "n_clusters": [Interval(int, 1, math.inf, closed="left")],
                "factorize": [Options(("nmf", "spa"))],
                "seed": [Interval(int, 0, math.inf, closed="left")],
            },
            {
                "n_classes": self.n_classes,
                "n_domains": self.n_domains,
                "n_clusters": self.n_clusters,
                "factorize": self.factorize,
                "seed": self.seed,
            },
            owner="DDFA",
        )
        if self.n_clusters < self.n_classes:
            raise ValueError(f"DDFA: n_clusters={self.n_clusters} must be >= n_classes={self.n_classes}")

    def fit(self, x: Any, domains: Any, x_valid: Any | None = None, domains_valid: Any | None = None) -> DDFA:
        """Train the discriminator on (x, domains) (model selection on the validation split),
        then discretise and factorise on valid + train (the official ``estimate_prior_valid_train``)."""
        self.discriminator_ = train_domain_discriminator(
            x, domains, self.n_domains, x_valid=x_valid, domains_valid=domains_valid,
            config=self.discriminator, seed=self.seed,
        )  # fmt: skip
        xs = [np.asarray(x, dtype=np.float32).reshape(len(x), -1)]
        ds = [np.asarray(domains)]
        if x_valid is not None and domains_valid is not None:
            xs.insert(0, np.asarray(x_valid, dtype=np.float32).reshape(len(x_valid), -1))
            ds.insert(0, np.asarray(domains_valid))
        return self.fit_factorization(
            predict_domain_posterior(self.discriminator_, np.concatenate(xs)), np.concatenate(ds)
        )

    def fit_factorization(self, p_d_x: Any, domains: Any) -> DDFA:
        """Steps 2-3 from given domain posteriors (e.g. an external discriminator's)."""
        pdx = _matrix(p_d_x, "p_d_x")
        if pdx.shape[1] != self.n_domains:
            raise ValueError(f"p_d_x must have n_domains={self.n_domains} columns, got {pdx.shape[1]}")
        d = _domains(domains, pdx.shape[0], self.n_domains)
        clusters, self.kmeans_ = discretize(pdx, self.n_clusters, seed=self.seed, n_init=self.kmeans_n_init)
        h = domain_histogram(clusters, d, self.n_clusters, self.n_domains)
        self.class_priors_, self.cluster_given_class_ = factorize_domain_histogram(
            h, self.n_classes, method=self.factorize, seed=self.seed
        )
        return self

    def domain_posterior(self, x: Any) -> np.ndarray:
        """(N, r) p(d | x) from the trained discriminator."""
        return predict_domain_posterior(self.discriminator_, x)

    def predict_proba(self, x: Any, domains: Any, *, p_d_x: Any | None = None) -> np.ndarray:
        """Step 4: p_d(y | x) (N, K) for inputs of known domains."""
        pdx = self.domain_posterior(x) if p_d_x is None else _matrix(p_d_x, "p_d_x")
        return domain_adjusted_posterior(
            posterior_from_domain_posterior(pdx, self.class_priors_), self.class_priors_, domains
        )

    def predict(self, x: Any, domains: Any, *, p_d_x: Any | None = None) -> np.ndarray:
        """argmax_y p_d(y | x) (cluster ids, matched to classes only by evaluation)."""
        return self.predict_proba(x, domains, p_d_x=p_d_x).argmax(axis=1)

    def predict_naive(self, x: Any, domains: Any, *, p_d_x: Any | None = None) -> np.ndarray:
        """The official naive baseline: argmax_y p(cluster | y) p(y | d) of the input's cluster."""
        pdx = self.domain_posterior(x) if p_d_x is None else _matrix(p_d_x, "p_d_x")
        clusters = self.kmeans_.predict(pdx)
        return naive_cluster_posterior(clusters, domains, self.cluster_given_class_, self.class_priors_).argmax(axis=1)
