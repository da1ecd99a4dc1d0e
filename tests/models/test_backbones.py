import pytest
import torch

from paperzoo.models import MLP, ConvNet, CosineHead, EmbeddingHead


def test_shapes() -> None:
    x = torch.rand(5, 1, 28, 28)
    assert MLP(784, (32,), 7)(x).shape == (5, 7)
    assert ConvNet(1, 8, 16)(x).shape == (5, 16)
    z = EmbeddingHead(16, 4)(torch.randn(5, 16))
    assert torch.allclose(z.norm(dim=1), torch.ones(5))
    logits = CosineHead(16, 3, scale=10.0)(torch.randn(5, 16))
    assert logits.shape == (5, 3) and logits.abs().max() <= 10.0 + 1e-5


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="784 input features"):
        MLP(784)(torch.rand(2, 10))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ConvNet()(torch.rand(2, 784))
