"""Explicit seeding: the one helper every reproduction and test uses."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's global generators and return a fresh
    ``torch.Generator`` seeded with ``seed`` for code that takes an explicit generator.

    On CPU, PyTorch's kernels used in this project are deterministic, so a run seeded with
    this helper repeats exactly.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """The seeds of a reproduction as a list of distinct non-negative ints (at least one)."""
    out = [int(s) for s in seeds]
    if not out:
        raise ValueError("give at least one seed")
    if min(out) < 0 or len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct non-negative ints, got {out}")
    return out
