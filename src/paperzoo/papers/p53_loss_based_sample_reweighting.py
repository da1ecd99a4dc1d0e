"""Record of paper 53, dynamic loss-based sample reweighting (Sow et al., ICLR 2025)."""

from paperzoo.papers import LossBench, Method, Record

RECORD = Record(
    number=53,
    summary=(
        "Online instance reweighting for pre-training: each mini-batch's per-sample losses are min-max normalised "
        "to [-delta, delta], shaped by a strategy (LinUpper down-weights the lowest-loss samples and caps the "
        "highest, Quadratic favours mid-range losses, Extremes both ends) and turned into weights by a "
        "KL-regularised softmax with temperature r, after a uniform burn-out phase. No reference model, no "
        "per-sample history. Offered as an engine hook: LossReweighter + ReweightedObjective wrap any per-sample "
        "loss into the compute_loss that engine.fit drives."
    ),
    components=(
        "paperzoo.training.reweighting.LossReweighter",
        "paperzoo.training.reweighting.ReweightedObjective",
        "paperzoo.training.reweighting.ReweightedCrossEntropy",
        "paperzoo.training.reweighting.loss_based_weights",
        "paperzoo.training.reweighting.normalize_losses",
        "paperzoo.training.reweighting.reweighted_loss",
        "paperzoo.training.reweighting.per_sequence_lm_loss",
        "paperzoo.training.reweighting.STRATEGIES",
        "paperzoo.models.tiny_lm.TinyCausalLM",
        "paperzoo.data.text.load_bbc_news",
    ),
    usage="""\
import torch
from paperzoo.training.reweighting import LossReweighter, ReweightedObjective, loss_based_weights
losses = torch.tensor([2.0, 3.5, 1.2, 4.8, 2.9, 3.0])
w = loss_based_weights(losses, "linupper", r=1.0)  # sums to 1; low-loss samples down-weighted
assert abs(float(w.sum()) - 1) < 1e-6 and w[2] == w.min()
objective = ReweightedObjective.classification(LossReweighter("linupper", r=1.0, warmup_steps=0))
model = torch.nn.Linear(4, 3)
loss = objective(model, (torch.randn(8, 4), torch.randint(0, 3, (8,))))  # compute_loss for engine.fit
""",
    paper_result=(
        "Pre-training GPT-2-style (124M-684M) and Llama-style 1.4B/7B models on SlimPajama: loss-based "
        "reweighting (LinUpper in particular) converges faster in validation perplexity and raises average "
        "few-shot downstream accuracy over uniform sampling, with gains growing with model size; on a toy linear "
        "regression LinUpper converges fastest and Quadratic also beats uniform (exact numbers unconfirmed)"
    ),
    methods=(
        Method(
            "reweight-linupper",
            "classification",
            "paperzoo.training.reweighting:ReweightedCrossEntropy",
            {"strategy": "linupper", "r": 1.0, "warmup_steps": 40},
            "cross-entropy with LinUpper online instance weights (r = 1; uniform for the first 40 steps)",
        ),
        Method(
            "reweight-quadratic",
            "classification",
            "paperzoo.training.reweighting:ReweightedCrossEntropy",
            {"strategy": "quadratic", "r": 1.0, "warmup_steps": 40},
            "cross-entropy with Quadratic online instance weights (r = 1; uniform for the first 40 steps)",
        ),
    ),
    bench=(
        LossBench(
            "ReweightedCrossEntropy",
            "classification",
            "paperzoo.training.reweighting:_linupper_after_burn_out",
            floor_target=2.0,
            notes="paper 53; per-example cross-entropy + LinUpper weights, past the burn-out phase",
        ),
    ),
)
