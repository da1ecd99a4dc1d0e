"""Record of paper 45, Attribute-to-Delete: Machine Unlearning via Datamodel Matching (Georgiev et al., 2024)."""

from paperzoo.papers import Method, Record

RECORD = Record(
    number=45,
    summary=(
        "Unlearning as matching the retrain-from-scratch model's outputs: Oracle Matching fine-tunes the trained "
        "model towards an oracle's logits on the forget points plus a few retain points; Datamodel Matching "
        "replaces the oracle by a datamodel's prediction (original logits minus the summed attributions of the "
        "forget set), fitted once and reused for every request. KLoM compares, per example, the distribution of "
        "margins of unlearned models to that of oracles."
    ),
    components=(
        "paperzoo.unlearning.matching.OracleMatching",
        "paperzoo.unlearning.matching.DatamodelMatching",
        "paperzoo.unlearning.matching.DatamodelDirect",
        "paperzoo.unlearning.matching.finetune_indices",
        "paperzoo.unlearning.datamodels.RegressionDatamodel",
        "paperzoo.unlearning.datamodels.SubsetTrainingPlan",
        "paperzoo.unlearning.datamodels.margins",
        "paperzoo.unlearning.datamodels.coherent_forget_sets",
        "paperzoo.unlearning.datamodels.nearest_neighbour_forget_set",
        "paperzoo.unlearning.klom.klom",
        "paperzoo.unlearning.klom.binned_kl",
        "paperzoo.unlearning.klom.klom_summary",
        "paperzoo.unlearning.klom.klom_noise_floor",
        "paperzoo.training.batched.BatchedMLP",
        "paperzoo.training.batched.train_subset_models",
    ),
    usage="""\
import numpy as np
import torch
from paperzoo.unlearning.datamodels import margins
from paperzoo.unlearning.klom import klom, klom_summary
unlearned, oracles = torch.randn(40, 3, 50, 10), torch.randn(40, 3, 50, 10)
labels = torch.randint(0, 10, (50,))
per_example = klom(margins(unlearned[:, 0], labels), margins(oracles[:, 0], labels))
summary = klom_summary(per_example, {"forget": np.arange(10), "retain": np.arange(10, 50)})
assert 0 <= summary["forget"]["p95"] <= np.log(1e5)
""",
    paper_result=(
        "CIFAR-10 / ResNet-9 and Living-17 / ResNet-18, random and coherent forget sets, N = 100 models per arm: "
        "Datamodel Matching reaches low KLoM on forget, retain and validation points at a small fraction of "
        "retraining cost, approaching Oracle Matching, while gradient ascent / descent and SCRUB either leave "
        "forget-set KLoM near its maximum or damage retain / validation KLoM (per-set values unconfirmed)"
    ),
    methods=(
        Method(
            "oracle-matching",
            "unlearning",
            "paperzoo.unlearning.matching:OracleMatching",
            {"epochs": 20, "lr": 1e-3, "batch_size": 512, "lr_gamma": 0.95},
            "Oracle Matching: MSE to the oracle's logits on F + 3|F| retain points (needs the oracle; a reference)",
        ),
        Method(
            "datamodel-matching",
            "unlearning",
            "paperzoo.unlearning.matching:DatamodelMatching",
            {"num_models": 60, "epochs": 20, "lr": 1e-3, "batch_size": 512, "lr_gamma": 0.95},
            "Datamodel Matching: ridge datamodel from 60 half-subset models of the task's recipe (fitted on the "
            "first request, its time counted; far too few models for ~1,400 training points, so expect results "
            "close to the original model), then MSE to the predicted oracle logits",
        ),
    ),
)
