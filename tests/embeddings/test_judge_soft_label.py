"""UniME-V2's loss as a sentence-transformers loss (a DistillKLDivLoss subclass)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.models.text_encoders import minilm_available

pytestmark = pytest.mark.skipif(not minilm_available(), reason="needs the 'text' extra (sentence-transformers)")


class _TinyST(nn.Module):
    """Stands in for a SentenceTransformer: features {"x": (B, D)} -> {"sentence_embedding"}."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 4)

    def forward(self, features):
        return {"sentence_embedding": self.lin(features["x"])}


def test_matches_functional_and_trains():
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

    from paperzoo.embeddings.judge_soft_label import JudgeSoftLabelKLLoss
    from paperzoo.losses import symmetric_soft_label_kl

    torch.manual_seed(0)
    model = _TinyST()
    loss = JudgeSoftLabelKLLoss(model, temperature=0.1)
    assert isinstance(loss, DistillKLDivLoss)
    cols = [{"x": torch.randn(6, 5)} for _ in range(2 + 4)]  # anchor, positive, 4 negatives
    labels = torch.rand(6, 5)
    value = loss(cols, labels)
    emb = [F.normalize(model(c)["sentence_embedding"], dim=1) for c in cols]
    scores = torch.stack([(emb[0] * e).sum(1) for e in emb[1:]], dim=1)
    assert torch.allclose(value, symmetric_soft_label_kl(scores, labels, 0.1), atol=1e-6)
    value.backward()
    assert model.lin.weight.grad is not None and torch.isfinite(model.lin.weight.grad).all()
    assert loss.get_config_dict()["temperature"] == 0.1 and "UniME-V2" in loss.citation
    with pytest.raises(ValueError, match="labels must hold one judge score per candidate"):
        loss(cols, torch.rand(6, 3))
    with pytest.raises(ValueError, match="JudgeSoftLabelKLLoss: temperature"):
        JudgeSoftLabelKLLoss(model, temperature=0.0)
