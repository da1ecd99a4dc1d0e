"""SuperGlobal re-ranking: golden rankings from the official code, invariants, naive reference, bad input."""

import pytest
import torch
import torch.nn.functional as F

from paperzoo.retrieval.superglobal import (
    SuperGlobalReranker,
    _reference_rerank,
    knn_search,
    refine_descriptors,
    superglobal_rerank,
)

X = torch.tensor(
    [
        [-0.83798239, -0.13537745, -0.38475639, 0.36252033],
        [-0.46934712, -0.67721419, -0.33088279, -0.46001173],
        [-0.45311406, 0.53285308, 0.11319241, 0.70565057],
        [0.6652697, -0.71865506, 0.04181634, 0.19799626],
        [0.09626957, -0.39711788, -0.79070867, -0.45586111],
        [-0.02281473, 0.24032035, 0.20248325, -0.94906594],
        [0.49203245, -0.11808485, -0.37613795, -0.77619603],
        [-0.35806208, 0.77557513, -0.23371154, -0.46438527],
        [-0.06836574, 0.4145705, -0.00703935, -0.90741825],
        [-0.56182691, -0.49703851, 0.51788307, 0.41121816],
        [0.28484202, 0.06456095, -0.49923205, 0.81575993],
        [-0.21737738, 0.16846475, -0.94603411, 0.1714239],
    ],
    dtype=torch.float64,
)
Q = torch.tensor(
    [[0.93661509, -0.01612403, 0.0285496, -0.34882245], [0.35285149, 0.88482891, 0.05626468, -0.29901155]],
    dtype=torch.float64,
)


def _data(n: int = 300, q: int = 7, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, d, generator=g, dtype=torch.float64)
    gallery = centres[torch.arange(n) % 10] + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)
    queries = centres[torch.arange(q) % 10] + 0.7 * torch.randn(q, d, generator=g, dtype=torch.float64)
    return F.normalize(gallery, dim=1), F.normalize(queries, dim=1)


def test_golden_initial_ranks() -> None:
    ranks = knn_search(X, Q, 12)[1]
    assert ranks[0].tolist() == [6, 3, 5, 8, 4, 10, 7, 1, 11, 9, 2, 0]
    assert ranks[1].tolist() == [7, 8, 5, 6, 2, 11, 10, 4, 3, 0, 1, 9]


def test_golden_rerank_m6_k2() -> None:
    out = superglobal_rerank(X, Q, M=6, K=2, beta=0.15)
    assert out[0].tolist() == [3, 6, 10, 5, 8, 4, 7, 1, 11, 9, 2, 0]
    assert out[1].tolist() == [7, 8, 5, 6, 2, 11, 10, 4, 3, 0, 1, 9]


def test_golden_rerank_m12_k3() -> None:
    out = SuperGlobalReranker(M=12, K=3, beta=0.15)(X, Q)
    assert out[0].tolist() == [3, 6, 5, 8, 10, 4, 7, 11, 2, 1, 9, 0]
    assert out[1].tolist() == [8, 7, 5, 6, 2, 4, 11, 10, 3, 1, 0, 9]


def test_golden_step_a_scores_and_query_refinement() -> None:
    top = knn_search(X, Q, 6)[1][0]
    refined = refine_descriptors(X[top][None], K=2, beta=0.15)[0]
    r = refined @ Q[0]
    want_r = torch.tensor([0.640261, 0.548418, 0.334856, 0.289398, 0.281083, -0.007719], dtype=torch.float64)
    torch.testing.assert_close(r, want_r, atol=1e-6, rtol=0)
    q_ref = refined[:3].amax(dim=0)  # order unchanged by Step A here
    torch.testing.assert_close(
        q_ref, torch.tensor([0.644416, 0.233642, 0.134519, 0.189484], dtype=torch.float64), atol=1e-6, rtol=0
    )
    final = (r + refined @ q_ref) / 2
    want = torch.tensor([0.34318, 0.422249, 0.118972, 0.093194, 0.045814, 0.138633], dtype=torch.float64)
    torch.testing.assert_close(final, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("query_refine", [True, False])
def test_matches_naive_reference(query_refine: bool) -> None:
    gallery, queries = _data()
    ours = superglobal_rerank(gallery, queries, M=40, K=5, beta=0.15, query_refine=query_refine)
    ref = _reference_rerank(gallery, queries, 40, 5, 0.15, query_refine)
    assert torch.equal(ours, ref)


def test_tail_untouched_and_permutation() -> None:
    gallery, queries = _data()
    initial = knn_search(gallery, queries, len(gallery))[1]
    out = superglobal_rerank(gallery, queries, initial, M=30, K=4)
    assert torch.equal(out[:, 30:], initial[:, 30:])
    assert torch.equal(out.sort(dim=1).values, torch.arange(len(gallery)).expand_as(out))
    short = knn_search(gallery, queries, 50)[1]  # a partial ranking is re-ranked in place too
    assert torch.equal(superglobal_rerank(gallery, queries, short, M=30, K=4), out[:, :50])


def test_k0_beta0_limiting_case() -> None:
    gallery, queries = _data()
    m = 25
    out = superglobal_rerank(gallery, queries, M=m, K=0, beta=0.0)
    initial = knn_search(gallery, queries, m)[1]
    xt = gallery[initial]  # (Q, M, d); refined = itself
    score = (torch.einsum("qmd,qd->qm", xt, queries) + torch.einsum("qmd,qd->qm", xt, xt[:, 0])) / 2
    want = initial.gather(1, torch.argsort(score, dim=1, descending=True, stable=True))
    assert torch.equal(out[:, :m], want)


def test_gallery_permutation_equivariance() -> None:
    gallery, queries = _data()
    perm = torch.randperm(len(gallery), generator=torch.Generator().manual_seed(3))
    out = superglobal_rerank(gallery, queries, M=40, K=5)
    out_perm = superglobal_rerank(gallery[perm], queries, M=40, K=5)
    assert torch.equal(perm[out_perm], out)


def test_float32_and_chunking_agree() -> None:
    import paperzoo.retrieval.superglobal as sg

    gallery, queries = _data(q=9)
    full = superglobal_rerank(gallery.float(), queries.float(), M=40, K=5)
    old = sg._CHUNK_FLOATS
    try:
        sg._CHUNK_FLOATS = 40 * 40 * 2  # two queries per chunk
        chunked = superglobal_rerank(gallery.float(), queries.float(), M=40, K=5)
    finally:
        sg._CHUNK_FLOATS = old
    assert torch.equal(full, chunked)


def test_rerank_helps_on_clustered_data() -> None:
    gallery, queries = _data(n=600, q=40, d=8, seed=1)
    yg, yq = torch.arange(600) % 10, torch.arange(40) % 10

    def m_ap(ranks: torch.Tensor) -> float:
        rel = (yg[ranks] == yq[:, None]).double()
        prec = rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1)
        return float(((prec * rel).sum(1) / rel.sum(1)).mean())

    base = m_ap(knn_search(gallery, queries, 600)[1])
    assert m_ap(superglobal_rerank(gallery, queries, M=200, K=9)) > base


def test_bad_input_is_named() -> None:
    gallery, queries = _data()
    with pytest.raises(ValueError, match="gallery has width 8 but queries have width 16"):
        superglobal_rerank(gallery[:, :8], queries)
    with pytest.raises(ValueError, match="gallery"):
        knn_search(gallery[:, :8], queries, 5)
    with pytest.raises(ValueError, match="queries must be a 2-D tensor"):
        superglobal_rerank(gallery, queries[0])
    with pytest.raises(ValueError, match="gallery must be non-empty"):
        superglobal_rerank(gallery[:0], queries)
    with pytest.raises(ValueError, match="queries"):
        superglobal_rerank(gallery, torch.full_like(queries, float("nan")))
    with pytest.raises(ValueError, match="ranks must hold gallery indices"):
        superglobal_rerank(gallery, queries, torch.full((len(queries), 20), 10_000))
    with pytest.raises(ValueError, match="ranks must have shape"):
        superglobal_rerank(gallery, queries, torch.zeros(3, 20, dtype=torch.long))
    with pytest.raises(ValueError, match="K \\+ 1"):
        superglobal_rerank(gallery, queries, M=5, K=9)
    with pytest.raises(ValueError, match="SuperGlobalReranker: beta must be"):
        SuperGlobalReranker(beta=-1.0)
    with pytest.raises(ValueError, match="knn_search: k must be"):
        knn_search(gallery, queries, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_topk_matches_torch_topk(dtype: torch.dtype) -> None:
    """The CPU selection of the shortlist neighbours returns exactly torch.topk's values and indices,
    batched, with and without bit-equal similarities, and when k covers the row."""
    from paperzoo.retrieval.superglobal import _topk_last

    g = torch.Generator().manual_seed(7)
    x = F.normalize(torch.randn(3, 57, 6, generator=g, dtype=dtype), dim=-1)
    sims = x @ x.transpose(1, 2)
    for k in (1, 10, 57):
        vals, idx = _topk_last(sims, k)
        want_vals, want_idx = sims.topk(k, dim=-1)
        assert torch.equal(vals, want_vals) and torch.equal(idx, want_idx)
        assert vals.dtype == dtype and idx.dtype == torch.int64
    tied = torch.round(sims * 4) / 4  # many bit-equal similarities: those rows go to torch.topk itself
    tied[0] = sims[0]  # and one batch entry without ties
    for k in (3, 10):
        vals, idx = _topk_last(tied, k)
        want_vals, want_idx = tied.topk(k, dim=-1)
        assert torch.equal(vals, want_vals) and torch.equal(idx, want_idx)
