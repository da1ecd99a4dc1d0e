"""Multiclass Gaussian naive Bayes with a class-shared diagonal covariance.

Zheng et al., "Revisiting Discriminative vs. Generative Classifiers: Theory and Implications"
(ICML 2023): the model studied in the paper (official code ``models/gaussnb.py``, which pools
the per-class variances with the class priors). It is the generative counterpart of multinomial
logistic regression: a *linear* classifier, unlike scikit-learn's ``GaussianNB`` (per-class
variances, quadratic) and cheaper than ``LinearDiscriminantAnalysis`` (full shared covariance).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from paperzoo._validation import Constraint, Interval, validate_params

__all__ = ["SharedVarianceGaussianNB"]


class SharedVarianceGaussianNB(ClassifierMixin, BaseEstimator):
    """Gaussian naive Bayes whose diagonal covariance is shared by all classes, as in the paper.

    With ``m_k`` training rows of class ``k`` out of ``m``:

    * priors ``pi_k = m_k / m`` and means ``mu_k`` (class-wise averages);
    * per-class biased variances ``v_kj = (1/m_k) sum_{i: y_i=k} (x_ij - mu_kj)^2 + eps``
      with ``eps = var_smoothing`` (an *absolute* amount, as the paper's ``val_epsilon``;
      scikit-learn's ``GaussianNB`` scales it by the largest feature variance instead);
    * the pooled variance ``sigma_j^2 = sum_k pi_k v_kj``;
    * scores ``s_k(x) = log pi_k - 1/2 sum_j (x_j - mu_kj)^2 / sigma_j^2``
      (:meth:`class_scores`; the class-independent ``log 2 pi sigma^2`` term is dropped) and
      prediction ``argmax_k s_k(x)``.

    Equivalent linear form: ``s_k(x) = x . coef_[k] + intercept_[k] - 1/2 sum_j x_j^2/sigma_j^2``
    with ``coef_ = mu / sigma^2`` and ``intercept_ = log pi - 1/2 sum_j mu_kj^2 / sigma_j^2``, so
    ``argmax(X @ coef_.T + intercept_)`` gives the same predictions.

    :meth:`partial_fit` merges counts, means and within-class sums of squares exactly (Chan et
    al.'s pairwise update), so fitting two halves one after the other equals fitting the whole.
    A feature whose pooled variance is exactly 0 (possible only with ``var_smoothing=0``) is
    ignored by the scores.

    Args:
        var_smoothing: ``eps >= 0`` added to every per-class variance.

    Attributes:
        classes_: (K,) class labels, sorted.
        class_count_: (K,) training rows per class.
        class_prior_: (K,) priors ``pi_k``.
        theta_: (K, n) class means ``mu_k``.
        class_var_: (K, n) per-class variances ``v_kj`` (smoothing included).
        var_: (n,) pooled variance ``sigma_j^2``.
        coef_: (K, n) ``mu / sigma^2``.
        intercept_: (K,) ``log pi_k - 1/2 sum_j mu_kj^2 / sigma_j^2``.
        n_features_in_: number of features seen in ``fit``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "var_smoothing": [Interval(float, 0, math.inf, closed="left")],
    }

    def __init__(self, var_smoothing: float = 1e-9) -> None:
        self.var_smoothing = var_smoothing

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any) -> SharedVarianceGaussianNB:
        """Fit from scratch on ``X`` (m, n) and labels ``y`` (m,)."""
        for attr in ("classes_", "class_count_", "theta_", "_ssd"):
            if hasattr(self, attr):
                delattr(self, attr)
        return self._update(X, y, classes=None, first=True)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> SharedVarianceGaussianNB:
        """Update the fit with another batch ``(X, y)``.

        ``classes`` lists every class the batches will contain; it may be given on the first
        call (classes absent from that batch then get prior 0 until they appear) and is
        otherwise taken from the first batch's labels. Later batches must use known classes.
        """
        first = not hasattr(self, "classes_")
        return self._update(X, y, classes=classes, first=first)

    def _update(self, X: Any, y: Any, classes: Any, first: bool) -> SharedVarianceGaussianNB:
        # parameters are checked when fitting, as scikit-learn estimators do
        validate_params(self._parameter_constraints, self.get_params(), owner=type(self).__name__)
        eps = float(self.var_smoothing)
        X, y = validate_data(self, X, y, reset=first, dtype=np.float64, y_numeric=False)
        check_classification_targets(y)
        if first:
            all_classes = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if all_classes.size == 0:
                raise ValueError("classes must not be empty")
            self.classes_ = all_classes
            k, n = all_classes.size, X.shape[1]
            self.class_count_ = np.zeros(k)
            self.theta_ = np.zeros((k, n))
            self._ssd = np.zeros((k, n))  # within-class sums of squared deviations
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(
                f"classes {np.unique(np.asarray(classes)).tolist()} differ from those of the first call {self.classes_.tolist()}"
            )
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, self.classes_.size - 1)
        unknown = self.classes_[idx] != y
        if unknown.any():
            raise ValueError(
                f"y contains labels {np.unique(y[unknown]).tolist()} not in classes {self.classes_.tolist()}"
            )

        onehot = np.zeros((X.shape[0], self.classes_.size))
        onehot[np.arange(X.shape[0]), idx] = 1.0
        count_b = onehot.sum(axis=0)  # (K,)
        safe_b = np.where(count_b > 0, count_b, 1.0)[:, None]
        mean_b = (onehot.T @ X) / safe_b  # (K, n); rows of absent classes are 0
        ssd_b = onehot.T @ (X - mean_b[idx]) ** 2

        count_a, mean_a = self.class_count_, self.theta_
        total = count_a + count_b
        safe_t = np.where(total > 0, total, 1.0)[:, None]
        delta = mean_b - mean_a
        self.theta_ = mean_a + delta * (count_b[:, None] / safe_t)
        self._ssd = self._ssd + ssd_b + delta**2 * (count_a * count_b)[:, None] / safe_t
        self.class_count_ = total
        self._finish(eps)
        return self

    def _finish(self, eps: float) -> None:
        """Priors, per-class and pooled variances and the linear form from the running sums."""
        count = self.class_count_
        self.class_prior_ = count / count.sum()
        safe = np.where(count > 0, count, 1.0)[:, None]
        self.class_var_ = self._ssd / safe + eps
        self.var_ = self.class_prior_ @ self.class_var_
        self._inv_var = np.divide(1.0, self.var_, out=np.zeros_like(self.var_), where=self.var_ > 0)
        with np.errstate(divide="ignore"):
            self._log_prior = np.log(self.class_prior_)  # -inf for a declared class not seen yet
        self.coef_ = self.theta_ * self._inv_var
        self.intercept_ = self._log_prior - 0.5 * (self.theta_**2 * self._inv_var).sum(axis=1)

    # ------------------------------------------------------------------ prediction
    def _validated(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        return validate_data(self, X, reset=False, dtype=np.float64)

    def _scores(self, X: np.ndarray) -> np.ndarray:
        # one pass per class (K is small): the centred form avoids cancellation
        out = np.empty((X.shape[0], self.classes_.size))
        for k in range(self.classes_.size):
            out[:, k] = -0.5 * ((X - self.theta_[k]) ** 2) @ self._inv_var
        return out + self._log_prior

    def class_scores(self, X: Any) -> np.ndarray:
        """Scores ``s_k(x) = log pi_k - 1/2 sum_j (x_j - mu_kj)^2 / sigma_j^2``, shape (N, K)."""
        return self._scores(self._validated(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """:meth:`class_scores` (N, K); for two classes, ``s_1 - s_0`` (N,) as scikit-learn does."""
        s = self.class_scores(X)
        return s[:, 1] - s[:, 0] if s.shape[1] == 2 else s

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Posterior log-probabilities ``log p(k | x)`` (N, K) of the shared-variance model."""
        s = self.class_scores(X)
        return s - logsumexp(s, axis=1, keepdims=True)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probabilities ``p(k | x)`` (N, K)."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[argmax_k s_k(x)]`` (N,)."""
        scores = self.class_scores(X)
        return self.classes_[np.argmax(scores, axis=1)]
