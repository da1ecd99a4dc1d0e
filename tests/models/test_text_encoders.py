import numpy as np
import pytest

from paperzoo.models.text_encoders import MINILM_DIM, load_minilm, minilm_available, minilm_embeddings

pytestmark = pytest.mark.skipif(not minilm_available(), reason="the 'text' extra is not installed")


def test_embeddings_are_normalised_and_semantic():
    emb = minilm_embeddings(["a red dress", "a crimson dress", "the stock market fell"])
    assert emb.shape == (3, MINILM_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path))
    first = minilm_embeddings(["one", "two"], cache_key="t")
    files = list(tmp_path.glob("minilm-t-*.npy"))
    assert len(files) == 1
    np.testing.assert_array_equal(minilm_embeddings(["one", "two"], cache_key="t"), first)
    minilm_embeddings(["one", "three"], cache_key="t")
    assert len(list(tmp_path.glob("minilm-t-*.npy"))) == 2


def test_frozen_model_is_shared_and_trainable_is_fresh():
    frozen = load_minilm()
    assert frozen is load_minilm()
    assert not any(p.requires_grad for p in frozen.parameters())
    trainable = load_minilm(trainable=True)
    assert trainable is not frozen and all(p.requires_grad for p in trainable.parameters())


@pytest.mark.parametrize(
    ("texts", "error", "match"),
    [("one string", TypeError, "single string"), ([], ValueError, "empty"), (["a", 3], TypeError, "entry 1")],
)
def test_bad_texts(texts, error, match):
    with pytest.raises(error, match=match):
        minilm_embeddings(texts)


def test_bad_cache_key_and_batch_size():
    with pytest.raises(ValueError, match="cache_key"):
        minilm_embeddings(["a"], cache_key="a/b")
    with pytest.raises(ValueError, match="batch_size"):
        minilm_embeddings(["a"], batch_size=0)
