"""Record of paper 43, KaLM-Embedding-V2 (Zhao et al., 2025)."""

from paperzoo.papers import Record

RECORD = Record(
    number=43,
    summary=(
        "KaLM-Embedding-V2 turns Qwen2-0.5B (causal mask removed, mean pooling) into a general text embedder: "
        "InfoNCE pre-training on weak pairs, then multi-task fine-tuning with instructions, hard negatives from "
        "ranks 50-100 of the previous model with ranking-consistency filtering, semi-homogeneous task batches and "
        "Matryoshka dimensions, plus two V2 objective changes, a focal weight (1 - p)^gamma on each query's InfoNCE "
        "term and online hard-negative mixing, and a final model soup. Here these are sentence-transformers "
        "pieces: a focal/mixing MultipleNegativesRankingLoss subclass, the miner's filter, a task batch sampler "
        "and a state-dict soup."
    ),
    components=(
        "paperzoo.embeddings.focal_infonce.FocalMultipleNegativesRankingLoss",
        "paperzoo.embeddings.focal_infonce.focal_infonce",
        "paperzoo.embeddings.hard_negative_mixing.HardNegativeMixer",
        "paperzoo.embeddings.hard_negative_mixing.mix_negatives",
        "paperzoo.embeddings.hard_negative_mining.ranking_consistency_filter",
        "paperzoo.embeddings.hard_negative_mining.sample_hard_negatives",
        "paperzoo.embeddings.hard_negative_mining.mine_and_filter",
        "paperzoo.embeddings.semi_homogeneous_sampler.SemiHomogeneousBatchSampler",
        "paperzoo.embeddings.model_soup.uniform_soup",
        "paperzoo.embeddings.matryoshka_infonce.KaLMMatryoshkaInfoNCE",
        "paperzoo.embeddings.matryoshka_infonce.kalm_matryoshka_infonce",
        "paperzoo.data.wordnet.term_definition_task",
    ),
    usage="""\
import torch
from paperzoo.embeddings.focal_infonce import FocalMultipleNegativesRankingLoss
from paperzoo.embeddings.hard_negative_mixing import HardNegativeMixer
q, pos, neg = torch.randn(8, 32), torch.randn(8, 32), torch.randn(8, 32)
loss = FocalMultipleNegativesRankingLoss(None, scale=20.0, gamma=1.0, mixing=HardNegativeMixer(n_query_mix=1))
value = loss.compute_loss_from_embeddings([q, pos, neg])  # forward(sentence_features, labels) with a model
assert torch.isfinite(value)
""",
    paper_result=(
        "KaLM-embedding-mini-instruct-V2 (494M parameters, 896-d) reaches 67.47 mean over tasks on MTEB English v1 "
        "and 68.15 on MTEB Chinese v1, above V1 (64.94 / 63.78) and above or level with embedders 3-26x larger "
        "(e.g. gte-Qwen2-1.5B-instruct 67.19 / 67.12); the per-technique gains of the focal weight, the mixing "
        "and the soup are unconfirmed"
    ),
)
