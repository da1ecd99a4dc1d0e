"""Rule-based compositional negatives and the pair / zero-shot accuracies (paper 04, DeGLA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperzoo.embeddings.compositional import (
    NEGATIVE_TYPES,
    CompositionalNegativeGenerator,
    compositional_pair_accuracy,
    zero_shot_accuracy,
)


def _slots(n: int, na: int = 5, nn_: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.argsort(rng.random((n, na)), 1)[:, :2]
    b = np.argsort(rng.random((n, nn_)), 1)[:, :2]
    return np.stack([a[:, 0], b[:, 0], a[:, 1], b[:, 1]], 1)


def test_every_rule_yields_a_valid_distinct_caption() -> None:
    gen = CompositionalNegativeGenerator(5, 6)
    s = _slots(300)
    for t in NEGATIVE_TYPES:
        for rng in (None, np.random.default_rng(1)):
            neg = gen.make(s, t, rng)
            assert (neg != s).any(1).all()
            assert (neg[:, 0] != neg[:, 2]).all() and (neg[:, 1] != neg[:, 3]).all()
    np.testing.assert_array_equal(gen.make(s, "swap_nouns"), s[:, [0, 3, 2, 1]])
    rep = gen.make(s, "replace_noun", np.random.default_rng(2))
    assert set(np.flatnonzero(rep[:, 1] != s[:, 1])) | set(np.flatnonzero(rep[:, 3] != s[:, 3])) == set(range(300))
    assert (rep[:, 1] != s[:, 1]).any() and (rep[:, 3] != s[:, 3]).any()  # both slots get replaced sometimes
    values = np.unique(rep[:, [1, 3]][rep[:, [1, 3]] != s[:, [1, 3]]])
    assert len(values) == 6  # every unused noun can be drawn


def test_sample_draws_distinct_types_and_renders() -> None:
    gen = CompositionalNegativeGenerator(4, 10)
    s = _slots(50, 4, 10)
    neg, types = gen.sample(s, 4, np.random.default_rng(0))
    assert neg.shape == (50, 4, 4) and types.shape == (50, 4)
    assert all(len(set(r)) == 4 for r in types.tolist())
    a, b = gen.sample(s, 4, np.random.default_rng(0)), gen.sample(s, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(a[0], b[0])
    text = gen.render(s[:1], "a {a1} {n1} left of a {a2} {n2}", list("ABCD"), [str(i) for i in range(10)])
    assert text == [f"a {'ABCD'[s[0, 0]]} {s[0, 1]} left of a {'ABCD'[s[0, 2]]} {s[0, 3]}"]
    with pytest.raises(ValueError, match="k must be"):
        gen.sample(s, 6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="slots: every caption needs"):
        gen.make(np.array([[1, 2, 1, 3]]), "reshuffle")
    with pytest.raises(ValueError, match="neg_type"):
        gen.make(s, "negate")
    with pytest.raises(ValueError, match="n_nouns"):
        CompositionalNegativeGenerator(4, 2)


def test_pair_and_zero_shot_accuracy() -> None:
    img = torch.eye(4)
    pos = torch.eye(4)
    neg = torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1]])  # last: a tie, counts wrong
    acc = compositional_pair_accuracy(img, pos, neg, [0, 0, 1, 1], group_names=["swap", "replace"])
    assert acc == {"swap": 1.0, "replace": 0.5, "mean": 0.75}
    prompts = torch.eye(4)
    assert zero_shot_accuracy(img, prompts, torch.tensor([0, 1, 2, 0])) == 0.75
    assert zero_shot_accuracy(img, prompts, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1])) == 1.0
    with pytest.raises(ValueError, match="groups"):
        compositional_pair_accuracy(img, pos, neg, [0, 1])
    with pytest.raises(ValueError, match="neg_text_emb"):
        compositional_pair_accuracy(img, pos, neg[:3], [0, 0, 1, 1])
    with pytest.raises(ValueError, match="prompt_classes"):
        zero_shot_accuracy(img, prompts, torch.zeros(4), torch.zeros(3))
