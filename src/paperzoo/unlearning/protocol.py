"""One protocol that every unlearning method here runs through.

For a seed, the protocol trains the *original* model on forget + retain and the *oracle* (the
retrain-from-scratch reference) on retain only, with the same recipe (``model_fn`` + ``train_fn``),
and caches both. A method starts from a copy of the original model; the unlearned model is then
measured on each split and against the oracle:

- ``forget acc`` / ``retain acc`` / ``test acc``: top-1 accuracy on each split;
- ``MIA AUC``: a loss-based membership-inference attack separating forget samples from test
  samples (:func:`membership_inference_auc`; 0.5 means the attacker cannot tell them apart);
- ``forget gap`` and ``MIA gap``: the absolute differences to the oracle's forget accuracy and
  MIA AUC: an exact unlearner scores 0 on both, up to the noise of retraining;
- ``oracle KL``: the mean KL divergence from the oracle's predicted distribution to the model's
  on the forget samples;
- ``time s``: the method's wall time (``run`` only).

The oracle is an upper bound on cost, not a method: a ``Retrain`` run (an independent retrain,
from another seed) shows the gaps that retraining noise alone produces.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from paperzoo.engine import seed_everything
from paperzoo.unlearning.base import TrainFn, Unlearner, UnlearningContext, UnlearningData

__all__ = [
    "METHOD_SEED_OFFSET",
    "UnlearningProtocol",
    "membership_inference_auc",
    "per_sample_losses",
    "predict_logits",
]

#: A method's randomness is drawn from ``seed + METHOD_SEED_OFFSET``, so that a retrain inside a
#: method is an independent draw from the oracle (which is trained from ``seed``).
METHOD_SEED_OFFSET = 100_003


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``model(x)`` in evaluation mode, in chunks of ``chunk`` rows (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + chunk]) for i in range(0, len(x), chunk)])
    model.train(was_training)
    return out


def per_sample_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each sample (N,) under ``model`` in evaluation mode."""
    return F.cross_entropy(predict_logits(model, x), y, reduction="none")


def membership_inference_auc(
    model: nn.Module,
    x_members: torch.Tensor,
    y_members: torch.Tensor,
    x_nonmembers: torch.Tensor,
    y_nonmembers: torch.Tensor,
    *,
    seed: int = 0,
    folds: int = 5,
) -> float:
    """ROC AUC of a loss-based membership-inference attack, cross-validated.

    The attacker is a logistic regression on the per-sample cross-entropy (scikit-learn), trained
    to tell ``members`` (e.g. the forget set) from ``nonmembers`` (samples never trained on). The
    larger group is subsampled (seeded) to the size of the smaller, so 0.5 is chance; the AUC is the
    mean over ``folds`` stratified folds. High values mean the model still treats the members as
    training data.

    Raises:
        ValueError: either group has fewer than ``folds`` samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    n = min(len(x_members), len(x_nonmembers))
    if n < folds:
        raise ValueError(
            f"membership_inference_auc: members and non-members need at least folds={folds} samples each, got "
            f"{len(x_members)} and {len(x_nonmembers)}"
        )
    rng = np.random.default_rng(seed)
    m = rng.choice(len(x_members), n, replace=False)
    u = rng.choice(len(x_nonmembers), n, replace=False)
    loss_m = per_sample_losses(model, x_members[m], y_members[m])
    loss_u = per_sample_losses(model, x_nonmembers[u], y_nonmembers[u])
    # a diverged model (NaN or inf outputs) gets the largest loss: it cannot be told apart by its loss
    losses = torch.nan_to_num(torch.cat([loss_m, loss_u]), nan=1e4, posinf=1e4).clamp(max=1e4)
    features = losses.double().unsqueeze(1).numpy()
    member = np.r_[np.ones(n), np.zeros(n)]
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(1):  # a one-feature regression: BLAS threads only contend on a busy machine
        scores = cross_val_score(LogisticRegression(), features, member, cv=cv, scoring="roc_auc")
    return float(np.mean(scores))


class UnlearningProtocol:
    """The shared unlearning protocol on ``data``: ``model_fn()`` builds a fresh model (drawn from
    torch's global generator) and ``train_fn(model, x, y, seed)`` trains it in place.

    ``original(seed)`` and ``oracle(seed)`` are trained once per seed and cached (copies are
    returned). ``run(method, seed)`` applies ``method`` to a copy of the original model and
    measures it; a method with ``needs_oracle`` gets the oracle through its context, no other does.
    """

    def __init__(self, data: UnlearningData, model_fn: Callable[[], nn.Module], train_fn: TrainFn) -> None:
        self.data = data
        self.model_fn = model_fn
        self.train_fn = train_fn
        self._states: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
        self._oracle_values: dict[int, tuple[float, float, torch.Tensor]] = {}

    def _trained(self, kind: str, seed: int) -> nn.Module:
        key = (kind, seed)
        if key not in self._states:
            seed_everything(seed)
            model = self.model_fn()
            idx = self.data.train_idx if kind == "original" else self.data.retain_idx
            self.train_fn(model, self.data.x[idx], self.data.y[idx], seed)
            self._states[key] = copy.deepcopy(model.state_dict())
        model = self.model_fn()
        model.load_state_dict(self._states[key])
        return model

    def original(self, seed: int) -> nn.Module:
        """A copy of the model trained on forget + retain from ``seed``."""
        return self._trained("original", seed)

    def oracle(self, seed: int) -> nn.Module:
        """A copy of the model retrained from scratch on the retain set from ``seed``."""
        return self._trained("oracle", seed)

    def context(self, seed: int, *, with_oracle: bool = False) -> UnlearningContext:
        """What a method gets besides the model and the data; the oracle only ``with_oracle``."""
        oracle = (lambda: self.oracle(seed)) if with_oracle else None
        return UnlearningContext(self.model_fn, self.train_fn, seed + METHOD_SEED_OFFSET, oracle)

    def _oracle_reference(self, seed: int) -> tuple[float, float, torch.Tensor]:
        if seed not in self._oracle_values:
            oracle = self.oracle(seed)
            logits = predict_logits(oracle, self.data.x_forget)
            acc = float((logits.argmax(1) == self.data.y_forget).double().mean())
            mia = self._mia(oracle, seed)
            self._oracle_values[seed] = (acc, mia, F.log_softmax(logits, dim=1))
        return self._oracle_values[seed]

    def _mia(self, model: nn.Module, seed: int) -> float:
        d = self.data
        return membership_inference_auc(model, d.x_forget, d.y_forget, d.x_test, d.y_test, seed=seed)

    def evaluate(self, model: nn.Module, seed: int) -> dict[str, float]:
        """Accuracy on each split, MIA AUC, and the gaps and KL divergence to the oracle of ``seed``."""
        d = self.data
        forget_logits = predict_logits(model, d.x_forget)
        values = {
            "forget acc": float((forget_logits.argmax(1) == d.y_forget).double().mean()),
            "retain acc": float((predict_logits(model, d.x_retain).argmax(1) == d.y_retain).double().mean()),
            "test acc": float((predict_logits(model, d.x_test).argmax(1) == d.y_test).double().mean()),
            "MIA AUC": self._mia(model, seed),
        }
        oracle_acc, oracle_mia, oracle_logp = self._oracle_reference(seed)
        values["forget gap"] = abs(values["forget acc"] - oracle_acc)
        values["MIA gap"] = abs(values["MIA AUC"] - oracle_mia)
        logp = F.log_softmax(forget_logits, dim=1)
        values["oracle KL"] = float(F.kl_div(logp, oracle_logp, log_target=True, reduction="batchmean"))
        return values

    def run(self, method: Unlearner, seed: int) -> dict[str, float]:
        """Unlearn a copy of ``original(seed)`` with ``method`` and :meth:`evaluate` it, with its wall time."""
        if not isinstance(method, Unlearner):
            raise TypeError(f"method must be an Unlearner, got {type(method).__name__}")
        model = self.original(seed)
        context = self.context(seed, with_oracle=method.needs_oracle)
        if method.needs_oracle:
            self.oracle(seed)  # trained before the clock starts: the oracle is given, not computed
        seed_everything(context.seed)
        start = time.perf_counter()
        model = method.unlearn(model, self.data, context)
        elapsed = time.perf_counter() - start
        return {**self.evaluate(model, seed), "time s": elapsed}
