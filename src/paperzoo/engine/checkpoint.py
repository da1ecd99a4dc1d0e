"""Checkpoints: atomic saves, and loads restricted to tensors and plain containers
(``torch.load(..., weights_only=True)``)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from paperzoo.engine.io import atomic_write_bytes


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Serialise ``state`` (tensors, numbers, strings, lists, dicts) atomically to ``path``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} does not hold a dict")
    return state
