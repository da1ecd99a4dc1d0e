"""Model soup (paper 43): a soup of identical models is the model; the soup is the mean."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paperzoo.embeddings.model_soup import uniform_soup


def net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))


def test_identical_models_and_mean() -> None:
    a = net(0)
    soup = uniform_soup([a, net(0), a.state_dict()])
    for k, v in a.state_dict().items():
        assert torch.allclose(soup[k], v) and soup[k].dtype == v.dtype
    models = [net(s) for s in range(3)]
    for m, s in zip(models, (1, 2, 3)):
        m[1].num_batches_tracked.fill_(s)
    soup = uniform_soup(models)
    w = uniform_soup(models, weights=[2.0, 1.0, 1.0])
    for k in soup:
        vals = torch.stack([m.state_dict()[k].double() for m in models])
        if k.endswith("num_batches_tracked"):
            assert soup[k].item() == 1  # integer buffers come from the first model
        else:
            assert torch.allclose(soup[k].double(), vals.mean(0), atol=1e-6)
            assert torch.allclose(w[k].double(), (0.5 * vals[0] + 0.25 * vals[1] + 0.25 * vals[2]), atol=1e-6)
    fresh = net(9)
    fresh.load_state_dict(soup)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        uniform_soup([])
    with pytest.raises(ValueError, match="weights"):
        uniform_soup([net(0), net(1)], weights=[1.0])
    with pytest.raises(ValueError, match="weights"):
        uniform_soup([net(0), net(1)], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="keys"):
        uniform_soup([net(0), nn.Linear(4, 6)])
    with pytest.raises(ValueError, match="shape"):
        uniform_soup([nn.Linear(4, 6), nn.Linear(4, 7)])
