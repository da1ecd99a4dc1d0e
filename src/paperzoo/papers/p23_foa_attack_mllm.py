"""Record of paper 23, FOA-Attack: Feature Optimal Alignment transfer attacks (Jia et al., 2025)."""

from paperzoo.papers import Record

RECORD = Record(
    number=23,
    summary=(
        "A targeted transfer attack for robustness evaluation: x_adv = x + delta (||delta||_inf <= eps) is pushed, "
        "by iterative FGSM over random-resized crops of both images, to match a target image's features in an "
        "ensemble of white-box surrogate encoders: global cosine (the M-Attack objective) plus a local term, "
        "k-means centres of the local tokens matched by entropic optimal transport (the official Sinkhorn), with "
        "the surrogates re-weighted each step by a softmax of their loss ratios. Works over any list of nn.Module "
        "encoders (global, tokens); success rates and perturbation norms against held-out victims, optionally "
        "behind an input-smoothing defence."
    ),
    components=(
        "paperzoo.attacks.foa.foa_attack",
        "paperzoo.attacks.foa.m_attack",
        "paperzoo.attacks.foa.attackvlm_like",
        "paperzoo.attacks.foa.FOALoss",
        "paperzoo.attacks.foa.DynamicEnsembleWeights",
        "paperzoo.attacks.foa.ot_similarity",
        "paperzoo.attacks.foa.sinkhorn_plan",
        "paperzoo.attacks.foa.batched_kmeans_centers",
        "paperzoo.attacks.foa.random_resized_crop",
        "paperzoo.attacks.foa.ViTSurrogate",
        "paperzoo.attacks.foa.ConvSurrogate",
        "paperzoo.attacks.evaluation.targeted_transfer_success",
        "paperzoo.attacks.evaluation.perturbation_norms",
        "paperzoo.attacks.evaluation.InputSmoothingDefence",
    ),
    usage="""\
import torch
from torch import nn
from paperzoo.attacks.foa import ConvSurrogate, ViTSurrogate, foa_attack
from paperzoo.models import TinyViT
encoders = [ViTSurrogate(TinyViT(16, 4, 1, dim=16, depth=1, heads=2)), ConvSurrogate(nn.Conv2d(1, 8, 3, stride=2))]
x, x_t = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
x_adv = foa_attack(x, x_t, encoders, eps=16 / 255, alpha=1 / 255, steps=5, n_clusters=3)
assert (x_adv - x).abs().max() <= 16 / 255 + 1e-6
""",
    paper_result=(
        "With an ensemble of three CLIP image encoders (ViT-B/16, ViT-B/32, LAION ViT-bigG/14) as surrogates, "
        "eps = 16/255 and 300 steps, FOA-Attack gives higher keyword-matching rates and GPT-4o-judged attack "
        "success rates than M-Attack and earlier transfer attacks on open-source MLLMs and on GPT-4o, "
        "Claude-3.5-Sonnet and Gemini-2.0-flash, and each of its three components (global, local OT, dynamic "
        "weighting) contributes in the ablation (per-table numbers unconfirmed)"
    ),
)
