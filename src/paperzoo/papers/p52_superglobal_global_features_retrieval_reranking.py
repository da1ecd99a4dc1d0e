"""Record of paper 52, SuperGlobal: Global Features are All You Need for Image Retrieval and Reranking
(Shao et al., ICCV 2023)."""

from paperzoo.papers import Record

RECORD = Record(
    number=52,
    summary=(
        "SuperGlobal keeps image retrieval global end to end. At test time it swaps a network's learned GeM pooling "
        "for GeM+ (a fixed larger exponent), Regional-GeM (a local power-mean filter on the feature map) and "
        "Scale-GeM (an element-wise max over input scales), and it re-ranks each query's top-M shortlist by "
        "refining every candidate with its K nearest neighbours inside the shortlist and the query with the max "
        "of the best refined candidates, at M x M cost per query. Here the pooling modules are nn.Modules over "
        "CNN feature maps and the re-ranker is a vectorised, chunked torch function over an exact k-NN search."
    ),
    components=(
        "paperzoo.models.superglobal.GeM",
        "paperzoo.models.superglobal.GeMPlus",
        "paperzoo.models.superglobal.RegionalGeM",
        "paperzoo.models.superglobal.ScaleGeM",
        "paperzoo.models.superglobal.ReLUPlus",
        "paperzoo.models.superglobal.multiscale_descriptor",
        "paperzoo.retrieval.superglobal.knn_search",
        "paperzoo.retrieval.superglobal.superglobal_rerank",
        "paperzoo.retrieval.superglobal.SuperGlobalReranker",
        "paperzoo.retrieval.superglobal.refine_descriptors",
    ),
    usage="""\
import torch
import torch.nn.functional as F
from paperzoo.models.superglobal import GeMPlus, RegionalGeM
from paperzoo.retrieval.superglobal import SuperGlobalReranker, knn_search
fmap = torch.rand(8, 32, 7, 7)  # (B, C, H, W) post-ReLU feature maps
desc = F.normalize(GeMPlus(p=4.6)(RegionalGeM(p=2.5, kernel_size=5)(fmap)), dim=1)  # (8, 32)
gallery, queries = F.normalize(torch.randn(2000, 32), dim=1), desc
_, ranks = knn_search(gallery, queries, k=100)  # exact inner-product top-100, (8, 100)
new_ranks = SuperGlobalReranker(M=100, K=9, beta=0.15)(gallery, queries, ranks)  # (8, 100)
""",
    paper_result=(
        "ROxford+1M Hard: SuperGlobal extraction alone +7.1% mAP over the previous best single-stage method, and "
        "with SuperGlobal re-ranking +3.7% over the previous best two-stage system with a 64,865x faster "
        "re-ranking stage (CVNet ResNet-50/101 trained on GLDv2)"
    ),
)
