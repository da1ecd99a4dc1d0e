"""Record of paper 51, GPAM: Gaussian prototypes and adaptive margin for few-shot open relation extraction."""

from paperzoo.papers import Method, Record

RECORD = Record(
    number=51,
    summary=(
        "Few-shot classification with 'none-of-the-above' (NOTA) queries: each class of an episode is a diagonal "
        "Gaussian (class mean, variance shrunk towards the episode's), distances are Gaussian negative "
        "log-likelihoods, a small network gives each class an adaptive radius trained with margin losses on known "
        "and NOTA queries, and a query outside every radius is NOTA; semi-factual (masked) views debias the "
        "representations. Here as a design from the abstract (the equations were not available), with an "
        "open-set episode sampler."
    ),
    components=(
        "paperzoo.losses.GPAMLoss",
        "paperzoo.losses.gaussian_prototypes",
        "paperzoo.losses.gaussian_distance",
        "paperzoo.losses.AdaptiveBoundary",
        "paperzoo.losses.boundary_margin_loss",
        "paperzoo.losses.nota_predict",
        "paperzoo.losses.nota_scores",
        "paperzoo.losses.SemiFactualAugmenter",
        "paperzoo.losses.semi_factual_views",
        "paperzoo.data.nota_episodes.NOTAEpisodeSampler",
    ),
    usage="""\
import torch
from paperzoo.losses import NOTA, GPAMLoss
gpam = GPAMLoss(dim=64, k_shot=5)  # boundary MLP + NOTA logit: train them with the encoder
support = torch.randn(25, 64, requires_grad=True)  # 5-way 5-shot
query = torch.randn(21, 64, requires_grad=True)  # 15 known queries, 6 NOTA queries
s_labels = torch.arange(5).repeat_interleave(5)
q_labels = torch.cat([torch.arange(5).repeat_interleave(3), torch.full((6,), NOTA)])
gpam(support, s_labels, query, q_labels).backward()
pred = gpam.eval().predict(support.detach(), s_labels, query.detach())  # class ids, or -1 for NOTA
""",
    paper_result=(
        "surpasses previous prototype methods and reaches state-of-the-art accuracy on FewRel few-shot relation "
        "extraction with NOTA queries, BERT encoder (numbers unconfirmed)"
    ),
    methods=(
        Method(
            "gpam",
            "fewshot",
            "paperzoo.losses:GPAMLoss",
            {},
            "GPAM episode loss (Gaussian prototypes, adaptive boundary, NOTA distance), P x K batches as episodes",
        ),
    ),
)
