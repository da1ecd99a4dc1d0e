"""A tree metric over class names from the WordNet noun hierarchy, for label-metric methods such as
Loki (Roberts et al., "Geometry-Aware Adaptation for Pretrained Models", NeurIPS 2023), whose
ImageNet experiments use the shortest-path distance in a WordNet-derived tree.

Each class is a noun synset; following its *first* hypernym pointer up to the root gives a chain,
and the union of the chains is a tree (WordNet's few multiple-inheritance links are dropped, as in
any tree built from it). The distance between two classes is the number of edges between them in
that tree (``depth(a) + depth(b) - 2 depth(lowest common ancestor)``). Uses the offline WordNet
3.0 parser :func:`paperzoo.data.wordnet.parse_data_noun`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from paperzoo.data.wordnet import NounSynset, parse_data_noun

__all__ = ["FASHION_MNIST_SYNSETS", "hypernym_chain", "wordnet_tree", "wordnet_tree_sq_distances"]

#: WordNet 3.0 noun synset (data.noun offset) of each Fashion-MNIST class, in label order:
#: T-shirt (jersey, T-shirt, tee shirt), trouser (trouser, pant), pullover, dress (dress, frock),
#: coat (an outer garment), sandal, shirt, sneaker (gym shoe, sneaker), bag (bag, handbag,
#: pocketbook), ankle boot (boot: footwear that covers the foot and lower leg).
FASHION_MNIST_SYNSETS: dict[str, int] = {
    "T-shirt/top": 3595614,
    "Trouser": 4489008,
    "Pullover": 4021028,
    "Dress": 3236735,
    "Coat": 3057021,
    "Sandal": 4133789,
    "Shirt": 4197391,
    "Sneaker": 3472535,
    "Bag": 2774152,
    "Ankle boot": 2872752,
}


def hypernym_chain(offset: int, synsets: Mapping[int, NounSynset]) -> tuple[int, ...]:
    """The synset and its first-hypernym ancestors up to a root: ``(offset, parent, ..., root)``.

    Raises:
        KeyError: ``offset`` (or an ancestor) is not a noun synset of ``synsets``.
    """
    chain = [int(offset)]
    seen = {int(offset)}
    if chain[0] not in synsets:
        raise KeyError(f"offset {offset} is not a noun synset of WordNet's data.noun")
    while synsets[chain[-1]].hypernyms:
        parent = synsets[chain[-1]].hypernyms[0]
        if parent not in synsets:
            raise KeyError(f"hypernym {parent} of synset {chain[-1]} is not in data.noun")
        if parent in seen:  # never in WordNet; guards against a malformed file
            raise ValueError(f"hypernym cycle through synset {parent}")
        chain.append(parent)
        seen.add(parent)
    return tuple(chain)


def wordnet_tree(
    offsets: Sequence[int], synsets: Mapping[int, NounSynset] | None = None
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The tree spanned by the first-hypernym chains of ``offsets``.

    Returns:
        ``(nodes, edges, class_nodes)``: the synset offsets of the tree's nodes, the (E, 2) child-parent
        edges as node indices, and the node index of each class (in the order of ``offsets``).

    Raises:
        ValueError: no offsets, or a repeated one.
        KeyError: an offset is not a noun synset.
    """
    if len(offsets) == 0:
        raise ValueError("offsets must name at least one synset")
    if len(set(offsets)) != len(offsets):
        raise ValueError("offsets must not repeat a synset")
    syn = parse_data_noun() if synsets is None else synsets
    index: dict[int, int] = {}
    edges: set[tuple[int, int]] = set()
    for off in offsets:
        chain = hypernym_chain(off, syn)
        for node in chain:
            index.setdefault(node, len(index))
        edges.update((index[c], index[p]) for c, p in zip(chain[:-1], chain[1:]))
    roots = {hypernym_chain(off, syn)[-1] for off in offsets}
    nodes = list(index)
    if len(roots) > 1:  # several roots: join them under a virtual root (index len(nodes))
        nodes.append(-1)
        edges.update((index[r], len(nodes) - 1) for r in roots)
    return nodes, np.array(sorted(edges), dtype=np.int64).reshape(-1, 2), np.array([index[o] for o in offsets])


def wordnet_tree_sq_distances(offsets: Sequence[int], synsets: Mapping[int, NounSynset] | None = None) -> np.ndarray:
    """Squared tree distances (K, K) between the classes ``offsets`` in :func:`wordnet_tree` (edge
    counts, squared), ready for :func:`paperzoo.adaptation.loki.loki_predict`."""
    from paperzoo.adaptation.loki import graph_sq_distances

    nodes, edges, cls = wordnet_tree(offsets, synsets)
    d2 = graph_sq_distances(edges, len(nodes)) if len(nodes) > 1 else np.zeros((1, 1))
    return d2[np.ix_(cls, cls)]
