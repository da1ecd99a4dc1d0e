import pytest
import torch

from paperzoo.models.vit import TinyViT


def test_shapes_and_tokens():
    torch.manual_seed(0)
    model = TinyViT(image_size=28, patch_size=7, dim=32, depth=2, heads=2, out_dim=5)
    x = torch.rand(3, 1, 28, 28)
    cls, patches = model.tokens(x)
    assert cls.shape == (3, 32) and patches.shape == (3, 16, 32)
    assert model(x).shape == (3, 5)
    assert TinyViT(image_size=32, patch_size=8, in_channels=3, dim=16, heads=2, out_dim=0)(
        torch.rand(2, 3, 32, 32)
    ).shape == (2, 16)


def test_trains_and_is_deterministic():
    def step(seed):
        torch.manual_seed(seed)
        model = TinyViT(image_size=8, patch_size=4, dim=16, depth=1, heads=2, out_dim=2)
        x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 2, (8,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss.item(), model.patch_embed.weight.grad.clone()

    (a, ga), (b, gb) = step(0), step(0)
    assert a == b and torch.equal(ga, gb) and ga.abs().sum() > 0


def test_patch_order_matters_through_position_embeddings():
    torch.manual_seed(0)
    model = TinyViT(image_size=8, patch_size=4, dim=16, depth=1, heads=2, out_dim=0).eval()
    x = torch.rand(1, 1, 8, 8)
    flipped = torch.flip(x, dims=[-1])
    assert not torch.allclose(model(x), model(flipped))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 30, "patch_size": 4}, "divisible"),
        ({"dim": 30, "heads": 4}, "heads"),
        ({"depth": 0}, "depth"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TinyViT(**kwargs)


def test_bad_input_shape():
    with pytest.raises(ValueError, match="expects input of shape"):
        TinyViT(image_size=8, patch_size=4, dim=16, heads=2)(torch.rand(2, 1, 9, 9))
