"""Record of paper 42, Label-Agnostic Forgetting (LAF; Shen et al., ICLR 2024)."""

from paperzoo.papers import Method, Record

#: LAF with the official CNN random-data-removal preset (latent 8, 20 epochs, tau 5) and the
#: step-count rule (learning rates scaled to the official Fashion-MNIST run's 7,500 steps); epochs
#: set here so that the compare task's training budget does not replace them.
_LAF = {
    "latent_dim": 8,
    "epochs": 20,
    "lr_ue": 5e-5,
    "lr_ra": 1e-4,
    "temperature": 5.0,
    "reference_steps": 7500,
}

RECORD = Record(
    number=42,
    summary=(
        "Label-Agnostic Forgetting unlearns a forget set from a trained classifier without any label: two small "
        "VAEs model the frozen representations of the whole training set and of the forget set; the feature "
        "extractor is then updated so that remaining representations stay well reconstructed while forget "
        "representations become badly reconstructed (bounded exp(m/(m+1)) errors), alternating with a contrastive "
        "alignment that keeps remaining representations close to the original ones and pushes forget "
        "representations away. The head is untouched; LAF+R fine-tunes only the head when a few labels exist."
    ),
    components=(
        "paperzoo.unlearning.laf.LAFUnlearner",
        "paperzoo.unlearning.laf.LAFPlusR",
        "paperzoo.unlearning.laf.LAF_PRESETS",
        "paperzoo.unlearning.laf.EmbeddingVAE",
        "paperzoo.unlearning.laf.vae_loss",
        "paperzoo.unlearning.laf.fit_embedding_vae",
        "paperzoo.unlearning.laf.laf_bounded_recon_term",
        "paperzoo.unlearning.laf.laf_extractor_unlearning_loss",
        "paperzoo.unlearning.laf.laf_representation_alignment_loss",
        "paperzoo.unlearning.laf.supervised_head_repair",
        "paperzoo.unlearning.laf.SplitModel",
        "paperzoo.unlearning.laf.LAFSmallCNN",
        "paperzoo.unlearning.laf.as_split_model",
        "paperzoo.unlearning.attacks.mia_sorted_softmax_attack",
        "paperzoo.unlearning.attacks.attack_sorted_softmax",
        "paperzoo.unlearning.attacks.mia_splits",
    ),
    usage="""\
import torch
from torch import nn
from paperzoo.unlearning.laf import LAFUnlearner
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))  # head: the last linear layer
forget, retain = torch.randn(40, 10), torch.randn(200, 10)
head = [p.clone() for p in model[2].parameters()]
laf = LAFUnlearner(epochs=2, vae_epochs=2, lr_ue=1e-3, lr_ra=2e-3)
model = laf.unlearn_inputs(model, forget, retain, seed=0)  # inputs only: no labels anywhere
assert all(torch.equal(a, b) for a, b in zip(head, model[2].parameters()))  # the head is never updated
assert len(laf.history) == 2 and laf.steps == 4
""",
    paper_result=(
        "Without any labels, LAF is comparable to fully supervised unlearning methods on data removal, class "
        "removal and noisy-label removal (MNIST, Fashion-MNIST with a small CNN; CIFAR-10, SVHN with ResNet-18), "
        "judged by closeness to the retrained model on remaining / forget / test accuracy and attack success rate; "
        "with a few labels LAF+R beats the supervised baselines in semi-supervised settings (per-table numbers "
        "unconfirmed)"
    ),
    methods=(
        Method(
            "laf",
            "unlearning",
            "paperzoo.unlearning.laf:LAFUnlearner",
            _LAF,
            "Label-Agnostic Forgetting, no labels (official CNN data-removal preset, lr x steps of the official run)",
        ),
        Method(
            "laf-r",
            "unlearning",
            "paperzoo.unlearning.laf:LAFPlusR",
            {**_LAF, "labelled_fraction": 0.1},
            "LAF then the head fine-tuned on the labels of 10% of the retain set (LAF+R)",
        ),
    ),
)
