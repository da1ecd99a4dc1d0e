"""Record of paper 40, UniME-V2: MLLM-as-a-Judge for universal multimodal embedding learning (Gu et al., 2025)."""

from paperzoo.papers import LossBench, Record

RECORD = Record(
    number=40,
    summary=(
        "An MLLM judge scores each (query, candidate) pair with its Yes-probability. The scores mine hard negatives "
        "(retrieve the top 50, drop candidates as similar as the positive, drop likely false negatives whose judge "
        "score is within beta = 0.01 of the positive's, cyclically sample 10) and supervise training: the model's "
        "softmax over [positive + hard negatives] is aligned with the softmax of the judge scores by a symmetric KL "
        "(SymmetricSoftLabelKLLoss; JudgeSoftLabelKLLoss for sentence-transformers). Offline the judge is an oracle "
        "over known scene slots, a teacher encoder or a cross-encoder (JudgeMiner and the judges); a score-based "
        "pairwise + listwise reranking loss stands in for the generative reranker."
    ),
    components=(
        "paperzoo.losses.SymmetricSoftLabelKLLoss",
        "paperzoo.losses.symmetric_soft_label_kl",
        "paperzoo.losses.symmetric_soft_label_kl_parts",
        "paperzoo.losses.interleave_reference_layout",
        "paperzoo.losses.deinterleave_reference_layout",
        "paperzoo.embeddings.judge_mining.JudgeMiner",
        "paperzoo.embeddings.judge_mining.StructuredOracleJudge",
        "paperzoo.embeddings.judge_mining.TeacherSimilarityJudge",
        "paperzoo.embeddings.judge_mining.CrossEncoderJudge",
        "paperzoo.embeddings.judge_mining.cyclic_sample",
        "paperzoo.embeddings.judge_mining.rowwise_spearman",
        "paperzoo.embeddings.judge_mining.ndcg_at_k",
        "paperzoo.embeddings.judge_soft_label.JudgeSoftLabelKLLoss",
        "paperzoo.embeddings.pair_reranker.PairwiseListwiseRerankLoss",
        "paperzoo.embeddings.pair_reranker.PairReranker",
    ),
    usage="""\
import torch
from paperzoo.losses import SymmetricSoftLabelKLLoss
model_scores = torch.randn(8, 9).tanh()              # cosines of each query to [positive, 8 hard negatives]
judge_scores = torch.rand(8, 9)                      # the judge's Yes-probabilities of the same candidates
loss = SymmetricSoftLabelKLLoss(temperature=0.02)(model_scores, judge_scores)
assert loss.item() >= 0
assert SymmetricSoftLabelKLLoss()(judge_scores + 0.3, judge_scores).abs().item() < 1e-6
""",
    paper_result=(
        "MMEB (36 datasets, Precision@1), fine-tuned on MMEB-train: UniME-V2 Qwen2-VL-2B 63.6 overall vs UniME 60.6 "
        "and VLM2Vec 60.1 (Qwen2-VL-7B 68.0 vs 67.4; LLaVA-OneVision-7B 71.2 vs 70.7), with the Qwen2.5-VL-7B judge "
        "(InternVL3-14B 63.2, InternVL3-8B 58.5)"
    ),
    bench=(
        LossBench(
            "SymmetricSoftLabelKLLoss",
            "distillation",
            "paperzoo.losses:SymmetricSoftLabelKLLoss",
            reference="paperzoo.losses.soft_label_kl:_bench_reference",
            reference_name="the official SoftLabelSoftKLContrastiveLoss arithmetic, written naively",
            notes=(
                "paper 40; model scores vs judge scores at the paper's tau = 0.02 (two softmax pairs and two "
                "log(. + eps) passes: about 3-5x the floor, 0.4-0.8x the naive reference; no floor target)"
            ),
        ),
    ),
)
