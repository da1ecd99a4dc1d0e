"""Hard-negative mining with ranking-consistency filtering (paper 43): the filter's definition
and monotonicity, the sampled rank window, padding, and the text-level wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperzoo.embeddings.hard_negative_mining import mine_and_filter, ranking_consistency_filter, sample_hard_negatives


def data(seed: int = 0, q: int = 40, c: int = 120, d: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(q, d, generator=g), torch.randn(c, d, generator=g), torch.randint(0, c, (q,), generator=g)


def test_filter_matches_its_definition_and_is_monotone() -> None:
    q, c, pos = data()
    scores = F.normalize(q, dim=-1) @ F.normalize(c, dim=-1).T
    rank = (scores > scores.gather(1, pos.view(-1, 1))).sum(1)  # 0-based rank of the positive
    prev = torch.zeros(len(pos), dtype=torch.bool)
    for k in (0, 1, 5, 20, 60, 119):
        keep = ranking_consistency_filter(q, pos, c, top_k=k)
        assert torch.equal(keep, rank <= k)
        assert bool((keep | ~prev).all())  # a row kept at a smaller k stays kept
        prev = keep
    assert bool(ranking_consistency_filter(q, pos, c, top_k=120).all())  # pool no larger than k: keep all


def test_filter_uses_the_best_of_several_positives() -> None:
    q, c, pos = data(1)
    scores = F.normalize(q, dim=-1) @ F.normalize(c, dim=-1).T
    best = scores.argmax(1)
    lists = [[int(p), int(b)] for p, b in zip(pos, best)]
    assert bool(ranking_consistency_filter(q, lists, c, top_k=0).all())
    padded = torch.tensor([[int(p), -1] for p in pos])
    assert torch.equal(ranking_consistency_filter(q, padded, c, 5), ranking_consistency_filter(q, pos, c, 5))


def test_negatives_come_from_the_window_and_avoid_positives() -> None:
    q, c, pos = data(2)
    g = torch.Generator().manual_seed(0)
    neg = sample_hard_negatives(q, c, pos, num_negatives=5, range_min=3, range_max=30, generator=g)
    assert neg.shape == (40, 5)
    order = (F.normalize(q, dim=-1) @ F.normalize(c, dim=-1).T).argsort(1, descending=True)
    ranks = (order.unsqueeze(-1) == neg.unsqueeze(1)).float().argmax(1)
    assert bool(((ranks >= 3) & (ranks < 30)).all())
    assert not bool((neg == pos.view(-1, 1)).any())
    assert all(len(set(r)) == 5 for r in neg.tolist())
    again = sample_hard_negatives(q, c, pos, 5, 3, 30, generator=torch.Generator().manual_seed(0))
    assert torch.equal(neg, again)
    # a window holding only positives: padding with random non-positive passages
    top = order[:, :4]
    padded = sample_hard_negatives(q, c, top, num_negatives=3, range_min=0, range_max=4, generator=g)
    assert not bool((padded.unsqueeze(-1) == top.unsqueeze(1)).any())
    assert all(len(set(r)) == 3 for r in padded.tolist())


def test_bad_input() -> None:
    q, c, pos = data()
    with pytest.raises(ValueError, match="top_k"):
        ranking_consistency_filter(q, pos, c, top_k=-1)
    with pytest.raises(ValueError, match="columns"):
        ranking_consistency_filter(q, pos, c[:, :5])
    with pytest.raises(ValueError, match="positive_ids"):
        ranking_consistency_filter(q, pos + 1000, c)
    with pytest.raises(ValueError, match="positive_ids"):
        ranking_consistency_filter(q, pos[:3], c)
    with pytest.raises(ValueError, match="at least one positive"):
        ranking_consistency_filter(q, torch.full((40, 2), -1), c)
    with pytest.raises(ValueError, match="range_min"):
        sample_hard_negatives(q, c, pos, 3, range_min=10, range_max=5)
    with pytest.raises(ValueError, match="empty"):
        sample_hard_negatives(q[:0], c, pos[:0])
    with pytest.raises(ValueError, match="NaN"):
        ranking_consistency_filter(q * float("nan"), pos, c)


class BagOfLetters:
    """A tiny stand-in for a SentenceTransformer: ``encode`` returns letter counts."""

    def encode(self, texts: list[str], prompt: str | None = None, **_: object) -> torch.Tensor:
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return F.normalize(torch.from_numpy(out) + 1e-3, dim=-1)


def test_mine_and_filter_drops_inconsistent_rows() -> None:
    words = ["apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "plum", "kiwi", "melon"]
    queries = [w + " " + w for w in words] + ["zzz"]
    positives = words + ["apple"]  # the last pair is mislabelled
    rows = mine_and_filter(queries, positives, BagOfLetters(), top_k=1, num_negatives=2, range_min=1, range_max=6)
    assert [r["index"] for r in rows] == list(range(10))
    for r in rows:
        assert r["pos"] == [words[r["index"]]] and len(r["neg"]) == 2 and r["pos"][0] not in r["neg"]
    unfiltered = mine_and_filter(queries, positives, BagOfLetters(), top_k=None, num_negatives=2, range_min=1)
    assert len(unfiltered) == 11
    with pytest.raises(ValueError, match="one entry per query"):
        mine_and_filter(queries, positives[:3], BagOfLetters())
