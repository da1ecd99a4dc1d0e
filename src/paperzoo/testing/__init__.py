"""Check suites for paperzoo's components, public like scikit-learn's estimator checks.

* :func:`check_classification_loss` / :func:`classification_loss_checks`: classification
  losses ``forward(logits (B, C), target (B,), weight=None)`` and their functional form;
* :func:`check_multilabel_loss` / :func:`multilabel_loss_checks`: multi-label losses
  ``forward(logits (B, C), targets (B, C) multi-hot, weight=None)``;
* :func:`check_metric_loss` / :func:`metric_loss_checks`: pytorch-metric-learning-compatible
  metric losses;
* :func:`check_unlearner` / :func:`unlearner_checks`: unlearning methods
  (:class:`paperzoo.unlearning.Unlearner`), on :func:`toy_unlearning_problem`.

``check_*`` runs a whole suite and raises one ``AssertionError`` naming each failed check;
``*_checks`` returns the ``(name, check)`` pairs, for ``pytest.mark.parametrize``::

    CHECKS = classification_loss_checks(ZLoss, z_loss)

    @pytest.mark.parametrize("name, check", CHECKS, ids=[name for name, _ in CHECKS])
    def test_suite(name, check):
        check()

This is a test-helper package: it imports torch and pytorch-metric-learning.
"""

from __future__ import annotations

from paperzoo.testing._classification import check_classification_loss, classification_loss_checks
from paperzoo.testing._metric import check_metric_loss, metric_loss_checks
from paperzoo.testing._multilabel import check_multilabel_loss, multilabel_loss_checks
from paperzoo.testing._unlearning import check_unlearner, toy_unlearning_problem, unlearner_checks

__all__ = [
    "check_classification_loss",
    "check_metric_loss",
    "check_multilabel_loss",
    "check_unlearner",
    "classification_loss_checks",
    "metric_loss_checks",
    "multilabel_loss_checks",
    "toy_unlearning_problem",
    "unlearner_checks",
]
