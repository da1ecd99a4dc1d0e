"""Small backbones, heads, and classical estimators."""

from paperzoo.models.backbones import MLP, ConvNet
from paperzoo.models.gaussian_nb import SharedVarianceGaussianNB
from paperzoo.models.heads import CosineHead, EmbeddingHead, LinearHead
from paperzoo.models.vit import TinyViT

__all__ = ["MLP", "ConvNet", "CosineHead", "EmbeddingHead", "LinearHead", "SharedVarianceGaussianNB", "TinyViT"]
