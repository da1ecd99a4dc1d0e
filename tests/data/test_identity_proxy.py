"""The offline identity proxy of paper 36 (several fixed views per base image = one identity)."""

from __future__ import annotations

import numpy as np
import pytest

from paperzoo.data.identity_proxy import make_identity_proxy, multilabel_attributes


@pytest.fixture(scope="module")
def proxy():
    return make_identity_proxy("digits", views=4, noise=0.35, seed=0)


def test_shapes_and_identity_layout(proxy):
    assert proxy.x.shape == (1797 * 4, 1, 8, 8) and proxy.x.dtype == np.float32
    assert np.array_equal(proxy.identity, np.repeat(np.arange(1797), 4))
    assert proxy.num_classes == 10 and np.array_equal(proxy.y, proxy.base_label)
    # the label is the base image's, shared by every view of an identity and by many identities
    assert (proxy.y.reshape(-1, 4) == proxy.y[::4, None]).all()
    assert len(np.unique(proxy.identity)) > 100 * len(np.unique(proxy.y))


def test_views_are_shifted_scaled_noisy_copies(proxy):
    from paperzoo.data import load_digits

    base = load_digits().x
    zero = make_identity_proxy("digits", views=4, noise=0.0, seed=0)
    # without noise every view is a roll of its base image by at most one pixel, times a contrast in [0.8, 1.2]
    for i in (0, 7, 1000):
        for v in range(4):
            view = zero.x[4 * i + v, 0]
            ok = False
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    rolled = np.roll(base[i, 0], (dy, dx), axis=(0, 1))
                    if rolled.sum() > 0:
                        c = view.sum() / rolled.sum()
                        ok |= 0.8 <= c <= 1.2 and np.allclose(view, c * rolled, atol=1e-5)
            assert ok, (i, v)
    resid = proxy.x - zero.x  # the same draws: the difference is the noise
    assert abs(resid.std() - 0.35) < 0.01


def test_deterministic_in_seed(proxy):
    assert np.array_equal(make_identity_proxy("digits", views=4, seed=0).x, proxy.x)
    assert not np.array_equal(make_identity_proxy("digits", views=4, seed=1).x, proxy.x)


def test_subsample_and_multilabel():
    p = make_identity_proxy("digits", views=2, seed=0, n_identities=50, task="multilabel")
    assert p.x.shape == (100, 1, 8, 8) and p.y.shape == (100, 3) and p.num_classes == 3
    assert np.array_equal(p.y, multilabel_attributes(p.base_label))
    assert np.array_equal(multilabel_attributes(np.array([0, 5, 7])), [[0, 1, 1], [1, 0, 0], [1, 0, 0]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="base must be"):
        make_identity_proxy("faces")
    with pytest.raises(ValueError, match="views must be"):
        make_identity_proxy(views=0)
    with pytest.raises(ValueError, match="n_identities must be at most 1797"):
        make_identity_proxy(n_identities=2000)
    with pytest.raises(ValueError, match="task must be"):
        make_identity_proxy(task="regression")
