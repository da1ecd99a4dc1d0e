"""Tests of the WordNet tree metric over class synsets (used by Loki, paper 26), on a hand-made
hierarchy (no WordNet files needed)."""

from __future__ import annotations

import numpy as np
import pytest

from paperzoo.data.wordnet import NounSynset
from paperzoo.data.wordnet_tree import hypernym_chain, wordnet_tree, wordnet_tree_sq_distances


def _syn(offset: int, *hyper: int) -> NounSynset:
    return NounSynset(offset, 0, (f"s{offset}",), "", tuple(hyper), ())


# 1 (root) <- 2 <- 4, 5 ; 1 <- 3 <- 6 ; 4 also has a second hypernym 3 (dropped: first pointer only)
SYN = {1: _syn(1), 2: _syn(2, 1), 3: _syn(3, 1), 4: _syn(4, 2, 3), 5: _syn(5, 2), 6: _syn(6, 3), 9: _syn(9)}


def test_chain_follows_first_hypernym():
    assert hypernym_chain(4, SYN) == (4, 2, 1)
    assert hypernym_chain(1, SYN) == (1,)


def test_tree_distances():
    d = np.sqrt(wordnet_tree_sq_distances([4, 5, 6, 2], SYN))
    np.testing.assert_array_equal(d, [[0, 2, 4, 1], [2, 0, 4, 1], [4, 4, 0, 3], [1, 1, 3, 0]])


def test_two_roots_join_under_a_virtual_root():
    nodes, edges, cls = wordnet_tree([5, 9], SYN)
    assert nodes[-1] == -1 and len(edges) == len(nodes) - 1
    assert np.sqrt(wordnet_tree_sq_distances([5, 9], SYN))[0, 1] == 4  # 5-2-1-(root)-9


def test_bad_offsets():
    with pytest.raises(KeyError, match="not a noun synset"):
        wordnet_tree([7], SYN)
    with pytest.raises(ValueError, match="repeat"):
        wordnet_tree([4, 4], SYN)
    with pytest.raises(ValueError, match="at least one"):
        wordnet_tree([], SYN)
