"""Rule-based compositional hard negatives and the compositional / zero-shot evaluation protocols.

From Hu et al., "Decoupled Global-Local Alignment for Improving Compositional Understanding"
(DeGLA, ACM MM 2025). The paper has LLaMA-3 rewrite every COCO caption with five rules (its
negative-generation section and figure): *reshuffle order*, *swap nouns*, *swap adjectives*,
*replace adjectives* and *replace nouns*. Without an offline LLM, :class:`CompositionalNegativeGenerator`
applies the same five rules to *structured* captions, given as slot arrays
``(attribute_1, noun_1, attribute_2, noun_2)`` (integer ids), and renders them with a template;
every negative is guaranteed to differ from its positive.

:func:`compositional_pair_accuracy` is the ARO / SugarCrepe / VALSE protocol (an image is right
when it is closer to its caption than to the caption's negative), per negative type;
:func:`zero_shot_accuracy` is CLIP-style zero-shot classification with class prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from paperzoo._validation import Constraint, Interval, validate_params

__all__ = [
    "NEGATIVE_TYPES",
    "CompositionalNegativeGenerator",
    "compositional_pair_accuracy",
    "zero_shot_accuracy",
]

#: The five rewrite rules of the paper, in the order of its figure.
NEGATIVE_TYPES: tuple[str, ...] = (
    "reshuffle",
    "swap_nouns",
    "swap_adjectives",
    "replace_adjective",
    "replace_noun",
)


class CompositionalNegativeGenerator:
    """The five rewrite rules of DeGLA on structured captions ``(a1, n1, a2, n2)``.

    * ``reshuffle``: ``(a2, n2, a1, n1)`` (the two phrases change roles);
    * ``swap_nouns``: ``(a1, n2, a2, n1)``;
    * ``swap_adjectives``: ``(a2, n1, a1, n2)``;
    * ``replace_adjective``: one attribute replaced by one not in the caption;
    * ``replace_noun``: one noun replaced by one not in the caption.

    Captions must have two distinct attributes and two distinct nouns (then each rule yields a
    caption that differs from the positive and again has distinct attributes and nouns). With a
    NumPy generator, ``replace_*`` changes slot 1 or 2 at random to a random unused value;
    without one (``rng=None``) it changes slot 1 to the lowest-index unused value
    (deterministic test negatives). Vectorised over captions.

    Args:
        n_attributes: size of the attribute vocabulary (>= 3, so a replacement exists).
        n_nouns: size of the noun vocabulary (>= 3).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "n_attributes": [Interval(int, 3, math.inf, closed="left")],
        "n_nouns": [Interval(int, 3, math.inf, closed="left")],
    }
    types = NEGATIVE_TYPES

    def __init__(self, n_attributes: int, n_nouns: int) -> None:
        validate_params(
            self._parameter_constraints,
            {"n_attributes": n_attributes, "n_nouns": n_nouns},
            owner=type(self).__name__,
        )
        self.n_attributes = int(n_attributes)
        self.n_nouns = int(n_nouns)

    # ------------------------------------------------------------------ checks
    def check_slots(self, slots: Any) -> np.ndarray:
        """``slots`` as an int64 array (N, 4); raises ``ValueError`` naming ``slots`` otherwise."""
        s = np.asarray(slots)
        if s.ndim != 2 or s.shape[1] != 4:
            raise ValueError(f"slots must have shape (N, 4) = (a1, n1, a2, n2) per caption, got {s.shape}")
        if s.shape[0] == 0:
            raise ValueError("slots is empty: it has 0 captions")
        if not np.issubdtype(s.dtype, np.integer):
            raise TypeError(f"slots must hold integer ids, got dtype {s.dtype}")
        s = s.astype(np.int64)
        a, n = s[:, [0, 2]], s[:, [1, 3]]
        if a.min() < 0 or a.max() >= self.n_attributes:
            raise ValueError(f"slots: attribute ids must lie in [0, {self.n_attributes}), got [{a.min()}, {a.max()}]")
        if n.min() < 0 or n.max() >= self.n_nouns:
            raise ValueError(f"slots: noun ids must lie in [0, {self.n_nouns}), got [{n.min()}, {n.max()}]")
        bad = np.flatnonzero((a[:, 0] == a[:, 1]) | (n[:, 0] == n[:, 1]))
        if bad.size:
            raise ValueError(
                f"slots: every caption needs two distinct attributes and two distinct nouns (else a swap equals "
                f"the positive); row {bad[0]} is {s[bad[0]].tolist()}"
            )
        return s

    # ------------------------------------------------------------------ rules
    @staticmethod
    def _replace(values: np.ndarray, vocab: int, slot: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Put the ``r``-th value of ``[0, vocab)`` not in ``values`` (N, 2) into column ``slot``."""
        lo, hi = values.min(axis=1), values.max(axis=1)
        new = r + (r >= lo)
        new = new + (new >= hi)
        out = values.copy()
        out[np.arange(len(values)), slot] = new
        return out

    def make(self, slots: Any, neg_type: str, rng: np.random.Generator | None = None) -> np.ndarray:
        """Negatives of one type for every caption: int64 (N, 4)."""
        if neg_type not in NEGATIVE_TYPES:
            raise ValueError(f"neg_type must be one of {NEGATIVE_TYPES}, got {neg_type!r}")
        s = self.check_slots(slots)
        return self._make(s, np.full(len(s), NEGATIVE_TYPES.index(neg_type)), rng)

    def _make(self, s: np.ndarray, type_idx: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Row ``i`` rewritten with rule ``type_idx[i]`` (trusted inputs)."""
        n = len(s)
        a1, n1, a2, n2 = s.T
        out = np.empty_like(s)
        if rng is None:
            slot = np.zeros(n, dtype=np.int64)
            ra = rn = np.zeros(n, dtype=np.int64)
        else:
            slot = rng.integers(0, 2, size=n)
            ra = rng.integers(0, self.n_attributes - 2, size=n)
            rn = rng.integers(0, self.n_nouns - 2, size=n)
        new_a = self._replace(np.stack([a1, a2], 1), self.n_attributes, slot, ra)
        new_n = self._replace(np.stack([n1, n2], 1), self.n_nouns, slot, rn)
        candidates = np.stack(
            [
                np.stack([a2, n2, a1, n1], 1),
                np.stack([a1, n2, a2, n1], 1),
                np.stack([a2, n1, a1, n2], 1),
                np.stack([new_a[:, 0], n1, new_a[:, 1], n2], 1),
                np.stack([a1, new_n[:, 0], a2, new_n[:, 1]], 1),
            ],
            0,
        )  # (5, N, 4)
        out = candidates[type_idx, np.arange(n)]
        return out

    def sample(
        self, slots: Any, k: int, rng: np.random.Generator, types: Sequence[str] = NEGATIVE_TYPES
    ) -> tuple[np.ndarray, np.ndarray]:
        """``k`` negatives per caption, of ``k`` distinct types drawn at random per caption.

        Returns:
            ``(negatives, type_ids)``: int64 (N, k, 4) slot arrays and int64 (N, k) indices into
            :data:`NEGATIVE_TYPES`.
        """
        s = self.check_slots(slots)
        allowed = np.asarray([NEGATIVE_TYPES.index(t) for t in types if t in NEGATIVE_TYPES], dtype=np.int64)
        if len(allowed) != len(types) or len(set(types)) != len(types):
            raise ValueError(f"types must be distinct names from {NEGATIVE_TYPES}, got {tuple(types)}")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= len(allowed):
            raise ValueError(f"k must be an int in [1, {len(allowed)}] (the number of types), got {k!r}")
        n = len(s)
        order = np.argsort(rng.random((n, len(allowed))), axis=1)[:, :k]  # k distinct types per row
        type_ids = allowed[order]
        flat = self._make(np.repeat(s, k, axis=0), type_ids.reshape(-1), rng)
        return flat.reshape(n, k, 4), type_ids

    @staticmethod
    def render(slots: Any, template: str, attributes: Sequence[str], nouns: Sequence[str]) -> list[str]:
        """Captions from slot rows with ``template.format(a1=..., n1=..., a2=..., n2=...)``."""
        s = np.asarray(slots)
        return [
            template.format(a1=attributes[a1], n1=nouns[n1], a2=attributes[a2], n2=nouns[n2]) for a1, n1, a2, n2 in s
        ]


def _check_emb(x: torch.Tensor, name: str, n: int | None = None, d: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor (N, d), got {getattr(x, 'shape', type(x))}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows (one per image), got {x.shape[0]}")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{name} must have {d} columns (the embedding size of image_emb), got {x.shape[1]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


@torch.no_grad()
def compositional_pair_accuracy(
    image_emb: torch.Tensor,
    pos_text_emb: torch.Tensor,
    neg_text_emb: torch.Tensor,
    groups: Any,
    group_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Pair accuracy per negative type (the ARO / SugarCrepe protocol).

    Pair ``i`` is correct iff ``sim(image_i, pos_i) > sim(image_i, neg_i)`` with ``sim`` the dot
    product (cosine for normalised embeddings); ties count as wrong.

    Args:
        image_emb, pos_text_emb, neg_text_emb: (P, d) embeddings of the P pairs.
        groups: (P,) group of each pair (ints, or strings such as the negative type).
        group_names: names for integer groups (``group_names[g]``), e.g. :data:`NEGATIVE_TYPES`.

    Returns:
        ``{group: accuracy}`` in order of first appearance, plus ``"mean"``, the unweighted mean
        over groups.
    """
    _check_emb(image_emb, "image_emb")
    p, d = image_emb.shape
    _check_emb(pos_text_emb, "pos_text_emb", p, d)
    _check_emb(neg_text_emb, "neg_text_emb", p, d)
    g = np.asarray(groups)
    if g.shape != (p,):
        raise ValueError(f"groups must have shape ({p},), one group per pair, got {g.shape}")
    correct = ((image_emb * pos_text_emb).sum(1) > (image_emb * neg_text_emb).sum(1)).cpu().numpy()
    _, first = np.unique(g, return_index=True)
    out: dict[str, float] = {}
    for key in g[np.sort(first)]:
        name = str(group_names[int(key)]) if group_names is not None else str(key)
        out[name] = float(correct[g == key].mean())
    out["mean"] = float(np.mean(list(out.values())))
    return out


@torch.no_grad()
def zero_shot_accuracy(
    image_emb: torch.Tensor,
    class_prompt_emb: torch.Tensor,
    labels: torch.Tensor,
    prompt_classes: torch.Tensor | None = None,
) -> float:
    """Zero-shot top-1 accuracy: each image takes the class of its most similar prompt.

    Args:
        image_emb: (N, d) image embeddings.
        class_prompt_emb: (P, d) prompt embeddings.
        labels: (N,) true classes.
        prompt_classes: (P,) class of each prompt (several prompts may share a class, e.g. one
            per colour); default ``arange(P)`` (one prompt per class).
    """
    _check_emb(image_emb, "image_emb")
    _check_emb(class_prompt_emb, "class_prompt_emb", d=image_emb.shape[1])
    labels = torch.as_tensor(labels)
    if labels.shape != (image_emb.shape[0],):
        raise ValueError(f"labels must have shape ({image_emb.shape[0]},), got {tuple(labels.shape)}")
    if prompt_classes is None:
        prompt_classes = torch.arange(class_prompt_emb.shape[0])
    prompt_classes = torch.as_tensor(prompt_classes)
    if prompt_classes.shape != (class_prompt_emb.shape[0],):
        raise ValueError(
            f"prompt_classes must have shape ({class_prompt_emb.shape[0]},), one class per prompt, "
            f"got {tuple(prompt_classes.shape)}"
        )
    pred = prompt_classes[(image_emb @ class_prompt_emb.T).argmax(1)]
    return float((pred == labels.to(pred.device)).float().mean())
