import pytest
import torch

from paperzoo._validation import check_embeddings_labels, check_logits_target, check_reduction


def test_logits_target() -> None:
    check_logits_target(torch.zeros(3, 4), torch.tensor([0, 3, 1]))
    with pytest.raises(ValueError, match=r"shape \(B, C\)"):
        check_logits_target(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="empty batch"):
        check_logits_target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        check_logits_target(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="NaN"):
        check_logits_target(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(TypeError, match="integer"):
        check_logits_target(torch.zeros(2, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        check_logits_target(torch.zeros(2, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="floating-point"):
        check_logits_target(torch.zeros(2, 4, dtype=torch.long), torch.tensor([0, 1]))


def test_embeddings_labels_and_reduction() -> None:
    check_embeddings_labels(torch.zeros(3, 2), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="empty batch"):
        check_embeddings_labels(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="infinite"):
        check_embeddings_labels(torch.tensor([[float("inf"), 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="reduction"):
        check_reduction("avg")
