"""Tests of the tiny decoder-only language model."""

from __future__ import annotations

import pytest
import torch

from paperzoo.models.tiny_lm import TinyCausalLM


def test_shapes_and_causality() -> None:
    torch.manual_seed(0)
    model = TinyCausalLM(30, d_model=16, n_layers=2, n_heads=4, max_len=10).eval()
    tokens = torch.randint(0, 30, (3, 10))
    logits = model(tokens)
    assert logits.shape == (3, 10, 30)
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 7) % 30
    assert torch.allclose(model(changed)[:, :6], logits[:, :6], atol=1e-6)
    assert not torch.allclose(model(changed)[:, 6:], logits[:, 6:])
    assert torch.allclose(model(tokens[:, :4]), logits[:, :4], atol=1e-6)  # shorter inputs are prefixes


def test_initial_loss_is_near_uniform() -> None:
    torch.manual_seed(0)
    model = TinyCausalLM(50, d_model=32, n_layers=2, n_heads=2, max_len=16)
    tokens = torch.randint(0, 50, (8, 16))
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(tokens)[:, :-1].reshape(-1, 50), tokens[:, 1:].reshape(-1))
    assert abs(float(loss) - float(torch.log(torch.tensor(50.0)))) < 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 1}, "vocab_size"),
        ({"vocab_size": 10, "d_model": 10, "n_heads": 3}, "divisible"),
        ({"vocab_size": 10, "dropout": 1.0}, "dropout"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TinyCausalLM(**kwargs)


def test_bad_tokens() -> None:
    model = TinyCausalLM(10, d_model=8, n_heads=2, max_len=4)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens must be an integer tensor"):
        model(torch.zeros(1, 3))
