"""Generated "outfits" of Fashion-MNIST images for the OutfitTransformer reproduction (paper 02; Sarkar et al.,
WACV 2023). A stand-in for Polyvore Outfits: the compatibility rule is hidden, known here, and set-level.

Each Fashion-MNIST class belongs to one *slot* and is either a plain or a *statement* piece:

======  ===========================  =================
slot    plain classes                statement class
======  ===========================  =================
top     T-shirt (0), Shirt (6)       Pullover (2)
bottom  Trouser (1)                  Dress (3)
shoes   Sandal (5), Sneaker (7)      Ankle boot (9)
extra   Coat (4)                     Bag (8)
======  ===========================  =================

A **compatible** outfit has exactly one item in each of top, bottom and shoes, at most one extra (so 3 or 4
items, padded to 4 with a mask) and **exactly one** statement piece. An **incompatible** outfit is a compatible
one with one item replaced so that one rule breaks: either the slot rule (an item of another slot: a duplicate
or a missing slot) or the statement rule (a plain piece swapped for its slot's statement piece, giving two, or
the statement piece swapped for a plain one, giving none). Items are images drawn from a given pool, so the
model must recognise the class from pixels. Fill-in-the-blank (FITB) queries blank one item of a compatible
outfit and offer the true image plus distractors whose class would make the outfit incompatible.
All sampling is vectorised NumPy from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SLOT_OF_CLASS",
    "STATEMENT",
    "FitbSet",
    "OutfitSet",
    "is_compatible",
    "make_fitb",
    "make_outfits",
]

N_SLOTS, MAX_ITEMS = 4, 4
SLOT_OF_CLASS = np.array([0, 1, 0, 1, 3, 2, 0, 2, 3, 2])  # class -> slot (top, bottom, shoes, extra)
STATEMENT = np.array([0, 0, 1, 1, 0, 0, 0, 0, 1, 1], dtype=bool)  # class -> statement piece?
_PLAIN = [np.array([0, 6]), np.array([1]), np.array([5, 7]), np.array([4])]
_STATEMENT_OF_SLOT = np.array([2, 3, 9, 8])


@dataclass
class OutfitSet:
    """``idx`` (n, 4) pool indices of the items, ``mask`` (n, 4) real items, ``classes`` (n, 4), ``y`` (n,) 1 =
    compatible, ``broken`` (n,): 0 none, 1 slot rule, 2 statement rule."""

    idx: np.ndarray
    mask: np.ndarray
    classes: np.ndarray
    y: np.ndarray
    broken: np.ndarray


@dataclass
class FitbSet:
    """``partial`` (n, 3) pool indices with ``mask`` (n, 3), ``candidates`` (n, K) pool indices, ``answer`` (n,)."""

    partial: np.ndarray
    mask: np.ndarray
    candidates: np.ndarray
    answer: np.ndarray


def is_compatible(classes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The hidden rule, per outfit: one top, one bottom, one shoes, <= 1 extra, exactly one statement piece."""
    slot = np.where(mask, SLOT_OF_CLASS[np.clip(classes, 0, 9)], N_SLOTS)
    counts = (slot[..., None] == np.arange(N_SLOTS)).sum(1)  # (n, 4)
    n_statement = (STATEMENT[np.clip(classes, 0, 9)] & mask).sum(1)
    return (counts[:, :3] == 1).all(1) & (counts[:, 3] <= 1) & (n_statement == 1)


def _sample_images(labels: np.ndarray, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random pool index of the given class for every entry of ``classes`` (any shape)."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=10)
    if (counts == 0).any():
        raise ValueError(f"labels: the pool needs images of all 10 classes, missing {np.flatnonzero(counts == 0)}")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = starts[classes] + (rng.random(classes.shape) * counts[classes]).astype(np.int64)
    return order[pick]


def _compatible_classes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask = np.ones((n, MAX_ITEMS), dtype=bool)
    mask[:, 3] = rng.random(n) < 0.5  # the extra slot is optional
    n_real = mask.sum(1)
    statement_slot = (rng.random(n) * n_real).astype(np.int64)  # real slots come first
    classes = np.stack([p[(rng.random(n) * len(p)).astype(np.int64)] for p in _PLAIN], 1)
    rows = np.arange(n)
    classes[rows, statement_slot] = _STATEMENT_OF_SLOT[statement_slot]
    return classes, mask


def make_outfits(labels: np.ndarray, n: int, seed: int, p_compatible: float = 0.5) -> OutfitSet:
    """``n`` outfits over the image pool with class ``labels``; a ``p_compatible`` share compatible, the rest with
    one rule broken (half the slot rule, half the statement rule)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, mask = _compatible_classes(n, rng)
    y = (rng.random(n) < p_compatible).astype(np.int64)
    broken = np.where(y == 1, 0, 1 + (rng.random(n) < 0.5)).astype(np.int64)
    rows = np.arange(n)
    j = (rng.random(n) * mask.sum(1)).astype(np.int64)  # the replaced item
    old = classes[rows, j]
    # statement rule: plain -> its slot's statement piece, statement -> a plain piece of its slot
    plain_pick = np.array([p[0] for p in _PLAIN])
    plain_alt = np.array([p[-1] for p in _PLAIN])
    coin = rng.random(n) < 0.5
    flip = np.where(STATEMENT[old], np.where(coin, plain_pick[j], plain_alt[j]), _STATEMENT_OF_SLOT[j])
    # slot rule: any class of another slot
    other = rng.integers(0, 10, size=n)
    bad = SLOT_OF_CLASS[other] == j
    while bad.any():  # resample the few draws of the same slot (rejection, vectorised)
        other[bad] = rng.integers(0, 10, size=int(bad.sum()))
        bad = SLOT_OF_CLASS[other] == j
    new = np.where(broken == 2, flip, other)
    classes[rows, j] = np.where(broken > 0, new, old)
    classes[~mask] = 0
    idx = _sample_images(labels, classes, rng)
    idx[~mask] = 0
    perm = np.argsort(rng.random((n, MAX_ITEMS)) + 2 * ~mask, axis=1)  # shuffle the real items, padding last
    return OutfitSet(
        np.take_along_axis(idx, perm, 1),
        np.take_along_axis(mask, perm, 1),
        np.take_along_axis(classes, perm, 1),
        y,
        broken,
    )


def make_fitb(labels: np.ndarray, n: int, seed: int, n_candidates: int = 4) -> FitbSet:
    """``n`` FITB queries: a compatible outfit with one item blanked; the true image and ``n_candidates - 1``
    distractors of classes that would make the completed outfit incompatible, in random order."""
    if n < 1 or n_candidates < 2:
        raise ValueError(f"n must be >= 1 and n_candidates >= 2, got {n}, {n_candidates}")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes, mask = _compatible_classes(n, rng)
    rows = np.arange(n)
    j = (rng.random(n) * mask.sum(1)).astype(np.int64)
    keep = np.ones((n, MAX_ITEMS), dtype=bool)
    keep[rows, j] = False
    part_cls = classes[keep].reshape(n, MAX_ITEMS - 1)
    part_mask = mask[keep].reshape(n, MAX_ITEMS - 1)
    # classes that complete the partial outfit compatibly; distractors come from the others
    cand = np.arange(10)
    full_cls = np.concatenate([np.repeat(part_cls[:, None], 10, 1), np.broadcast_to(cand, (n, 10))[..., None]], 2)
    full_mask = np.concatenate([np.repeat(part_mask[:, None], 10, 1), np.ones((n, 10, 1), dtype=bool)], 2)
    ok = is_compatible(full_cls.reshape(n * 10, -1), full_mask.reshape(n * 10, -1)).reshape(n, 10)
    keys = rng.random((n, 10)) + 2.0 * ok  # compatible classes sort last
    distract = np.argsort(keys, axis=1)[:, : n_candidates - 1]
    cand_cls = np.concatenate([classes[rows, j][:, None], distract], 1)
    cand_idx = _sample_images(labels, cand_cls, rng)
    order = np.argsort(rng.random((n, n_candidates)), axis=1)
    cand_idx = np.take_along_axis(cand_idx, order, 1)
    answer = np.argmax(order == 0, axis=1)
    part_idx = _sample_images(labels, part_cls, rng)
    part_idx[~part_mask] = 0
    return FitbSet(part_idx, part_mask, cand_idx, answer)
