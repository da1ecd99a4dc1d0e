"""Machine unlearning: remove the influence of a forget set from a trained model.

Every method is an :class:`~paperzoo.unlearning.base.Unlearner` and runs through one protocol,
:class:`~paperzoo.unlearning.protocol.UnlearningProtocol` (original and retrain-from-scratch
models, accuracy on forget / retain / test, membership inference, distance to the oracle, wall
time), which ``paperzoo compare --task unlearning`` uses too. The simple baselines are in
:mod:`paperzoo.unlearning.baselines`; the methods of the papers are modules of this package,
imported by their module path.
"""

from paperzoo.unlearning.base import TrainFn, Unlearner, UnlearningContext, UnlearningData
from paperzoo.unlearning.baselines import FinetuneRetain, GradientAscent, Original, RandomLabels, Retrain
from paperzoo.unlearning.protocol import (
    UnlearningProtocol,
    membership_inference_auc,
    per_sample_losses,
    predict_logits,
)

__all__ = [
    "FinetuneRetain",
    "GradientAscent",
    "Original",
    "RandomLabels",
    "Retrain",
    "TrainFn",
    "Unlearner",
    "UnlearningContext",
    "UnlearningData",
    "UnlearningProtocol",
    "membership_inference_auc",
    "per_sample_losses",
    "predict_logits",
]
