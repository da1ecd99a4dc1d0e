"""Record of paper 33, DatasetEquity (Shrivastava, Zhang, Nagesh & Parchami, ICCV 2023 Workshops)."""

from paperzoo.papers import LossBench, Record

RECORD = Record(
    number=33,
    summary=(
        "Imbalance hides in appearance, not only in labels. DatasetEquity embeds every training image with a "
        "pretrained CNN, reduces the embeddings to 3-D with t-SNE, clusters them with DBSCAN and gives each sample "
        "the likelihood p = its cluster's size / the largest cluster's size. Its loss is scaled by "
        "w(p) = (eta + (1 - p)^gamma) / (eta + 1), so common-looking samples count less. Here: the likelihood "
        "pipeline on scikit-learn (t-SNE/PCA, DBSCAN/k-means/HDBSCAN) and the weighted classification loss."
    ),
    components=(
        "paperzoo.losses.DatasetEquityLoss",
        "paperzoo.losses.dataset_equity_loss",
        "paperzoo.losses.dataset_equity_weight",
        "paperzoo.analysis.dataset_equity.SampleLikelihoodEstimator",
        "paperzoo.analysis.dataset_equity.likelihood_from_labels",
        "paperzoo.analysis.dataset_equity.cluster_sizes",
        "paperzoo.analysis.dataset_equity.auto_eps",
        "paperzoo.analysis.dataset_equity.embed_images",
        "paperzoo.analysis.dataset_equity.embed_loader",
        "paperzoo.analysis.dataset_equity.estimate_likelihood",
        "paperzoo.analysis.dataset_equity.plot_likelihood",
    ),
    usage="""\
import numpy as np
import torch
from paperzoo.analysis.dataset_equity import SampleLikelihoodEstimator
from paperzoo.losses import DatasetEquityLoss
emb = np.random.default_rng(0).normal(size=(300, 16))  # embeddings of the training images
p = SampleLikelihoodEstimator(reducer="pca", clusterer="kmeans", n_clusters=8, random_state=0).fit_likelihood(emb)
logits, target = torch.randn(300, 10, requires_grad=True), torch.randint(0, 10, (300,))
DatasetEquityLoss(eta=1.0, gamma=5.0)(logits, target, likelihood=torch.from_numpy(p)).backward()
""",
    paper_result=(
        "DatasetEquity's weighting (ResNet-101 embeddings, t-SNE + DBSCAN likelihood, eta 0.5-1, gamma 5) improves "
        "state-of-the-art 3-D detectors on KITTI (DD3D) and nuScenes (BEVFormer, BEVFusion): higher NDS and mAP, "
        "over 200 % relative AP gain on the under-represented Cyclist class on KITTI, largest for small data sets "
        "and rare classes (per-method numbers unconfirmed)"
    ),
    bench=(
        LossBench(
            "DatasetEquityLoss",
            "classification",
            "paperzoo.losses.dataset_equity:bench_dataset_equity",
            reference="paperzoo.losses.dataset_equity:bench_reference",
            reference_name="the weight formula times F.cross_entropy(reduction='none'), naive torch",
            notes="paper 33; eta=1, gamma=5, one likelihood per sample looked up from the target",
        ),
    ),
)
