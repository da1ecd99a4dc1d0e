"""Record of paper 26, Loki: geometry-aware adaptation (Roberts et al., NeurIPS 2023)."""

from paperzoo.papers import Record

RECORD = Record(
    number=26,
    summary=(
        "Loki replaces a classifier's argmax by the Fréchet mean of its observed classes under a metric on the "
        "label space, argmin_y sum_i P_i(x) d^2(y, lambda_i): post hoc, training-free, one (B, K) x (K, N) matrix "
        "product, so a model trained on K classes can predict classes it never saw (those in the locus of the "
        "observed set) and errs towards nearby classes. With tree metrics from WordNet, graph distances, "
        "text-embedding (self-derived) metrics, the exact locus (one LP per class; path union on trees), the "
        "active choice of the next class to observe and a straight-through head."
    ),
    components=(
        "paperzoo.adaptation.loki.loki_predict",
        "paperzoo.adaptation.loki.LokiHead",
        "paperzoo.adaptation.loki.argmax_predict",
        "paperzoo.adaptation.loki.observed_sq_distances",
        "paperzoo.adaptation.loki.embedding_sq_distances",
        "paperzoo.adaptation.loki.graph_sq_distances",
        "paperzoo.adaptation.loki.locus",
        "paperzoo.adaptation.loki.tree_locus",
        "paperzoo.adaptation.loki.next_class_to_observe",
        "paperzoo.adaptation.loki.expected_squared_distance",
        "paperzoo.data.wordnet_tree.wordnet_tree_sq_distances",
    ),
    usage="""\
import numpy as np, torch
from paperzoo.adaptation.loki import graph_sq_distances, loki_predict, locus
sq = graph_sq_distances(np.array([[0, 1], [1, 2], [2, 3], [3, 4]]))  # a path 0-1-2-3-4
probs = torch.tensor([[0.5, 0.5], [0.8, 0.2]], dtype=torch.float64)  # a classifier over classes {0, 4}
pred, variances = loki_predict(probs, sq[[0, 4]])
assert pred.tolist() == [2, 1] and locus(sq, [0, 4]).all()
""",
    paper_result=(
        "ImageNet with frozen SimCLR features + logistic regression on a subset of the classes and the WordNet "
        "metric: up to 29.7% lower expected squared distance than argmax; 10.5% for zero-shot models such as "
        "CLIP with a metric from class-name text embeddings (per-setting tables unconfirmed)"
    ),
)
