"""Small backbones, heads, and classical estimators."""

from paperzoo.models.backbones import MLP, ConvNet
from paperzoo.models.gaussian_nb import SharedVarianceGaussianNB
from paperzoo.models.heads import CosineHead, EmbeddingHead, LinearHead

__all__ = ["MLP", "ConvNet", "CosineHead", "EmbeddingHead", "LinearHead", "SharedVarianceGaussianNB"]
