"""Record of paper 03, Concept-Centric Transformers (Hong, Park & Pavlic, WACV 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=3,
    summary=(
        "A Concept Transformer (CT) classifies by cross-attending from image tokens to concept embeddings, the "
        "attention over concepts being a supervisable explanation. CCT replaces CT's static concepts by a shared "
        "working memory: a slot-attention module (SA, implicit SA or BO-QSA) writes the image into concept slots, "
        "the tokens read from them, and the read-out goes straight to class logits; trained with cross-entropy, "
        "CT's explanation loss (attention-to-annotation MSE) and an entropy sparsity penalty."
    ),
    components=(
        "paperzoo.models.concept_transformer.ConceptCentricHead",
        "paperzoo.models.concept_transformer.ConceptTransformerHead",
        "paperzoo.models.concept_transformer.ConceptSlotAttention",
        "paperzoo.models.concept_transformer.ConceptISA",
        "paperzoo.models.concept_transformer.ConceptBOQSA",
        "paperzoo.models.concept_transformer.ConceptCrossAttention",
        "paperzoo.models.concept_transformer.CompactConvEncoder",
        "paperzoo.models.concept_transformer.ConceptClassifier",
        "paperzoo.losses.CCTLoss",
        "paperzoo.losses.concept_explanation_loss",
        "paperzoo.losses.spatial_concept_explanation_loss",
        "paperzoo.losses.concept_attention_entropy",
        "paperzoo.losses.concept_accuracy",
        "paperzoo.losses.spatial_concept_accuracy",
        "paperzoo.data.shapes_grid.make_shapes_grid",
    ),
    usage="""\
import torch
from paperzoo.data.shapes_grid import make_shapes_grid
from paperzoo.losses import CCTLoss, spatial_concept_accuracy
from paperzoo.models.concept_transformer import ConceptCentricHead, ConceptClassifier
from paperzoo.models.vit import TinyViT
data = make_shapes_grid(64, seed=0)  # 4x4 grid of shapes, per-cell concept targets
model = ConceptClassifier(TinyViT(32, 8, 1, 32, 1, 2, out_dim=0),
                          ConceptCentricHead(32, 4, n_concepts=4, n_spatial_concepts=4, memory="sa"))
out = model(data.x)  # logits (64, 4), concept_attn (64, 4), spatial_concept_attn (64, 16, 4)
loss = CCTLoss(expl_lambda=1.0, sparsity_lambda=0.5)(out, data.y, data.concepts, data.spatial)
loss.total.backward()
print(spatial_concept_accuracy(out.spatial_concept_attn.detach(), data.spatial))
""",
    paper_result=(
        "CIFAR-100 super-classes (ViT-T), CUB-200-2011 (ViT-L, Swin-L, ConvNeXt-L) and ImageNet-200 (ViT-S): CCT "
        "with any of its three memories has lower test error than CT and the other concept-based models, with "
        "sparser concept explanations that match the annotations more often (numbers unconfirmed; on the v1 MNIST "
        "odd/even task CCT ~86.7% vs CT ~82.3% at 100 training images, read off a figure)"
    ),
)
