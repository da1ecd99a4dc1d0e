"""The score-based pairwise + listwise reranking loss of UniME-V2-Reranker and the MLP reranker."""

import pytest
import torch
import torch.nn.functional as F

from paperzoo.embeddings.pair_reranker import PairReranker, PairwiseListwiseRerankLoss, pairwise_listwise_rerank_loss


def _naive(scores, n):
    one, zero = torch.ones(len(scores), dtype=scores.dtype), torch.zeros(len(scores), dtype=scores.dtype)
    bce = F.binary_cross_entropy_with_logits
    return (
        bce(scores[:, 0], one)
        + bce(scores[:, 1], zero)
        + F.cross_entropy(scores[:, : n + 1], torch.zeros(len(scores), dtype=torch.long))
    )


def test_matches_naive_formula_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(7, 9, generator=g, dtype=torch.float64)
    for n in (1, 5, 8, 20):
        assert torch.allclose(pairwise_listwise_rerank_loss(s, n), _naive(s, min(n, 8)))
    x = s[:3, :7].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: pairwise_listwise_rerank_loss(t, 5), (x,))
    per = PairwiseListwiseRerankLoss(reduction="none")(s)
    assert per.shape == (7,) and torch.allclose(per.sum(), pairwise_listwise_rerank_loss(s, 5, "sum"))


def test_limits_and_only_first_negative_is_pairwise():
    s = torch.tensor([[30.0, -30.0, -30.0, -30.0]])
    assert pairwise_listwise_rerank_loss(s).item() < 1e-10  # perfect reranker
    a = torch.tensor([[1.0, -1.0, 0.0, 0.5, 0.2, 0.1, 9.0]])
    b = a.clone()
    b[0, 6] = -9.0  # the 6th negative is outside the list of 5
    assert torch.equal(pairwise_listwise_rerank_loss(a), pairwise_listwise_rerank_loss(b))


def test_pair_reranker_shapes_and_training_step():
    torch.manual_seed(0)
    model = PairReranker(6, 4, dim=8, hidden=(16,))
    q, c = torch.randn(5, 6), torch.randn(5, 9, 4)
    out = model(q, c)
    assert out.shape == (5, 9)
    pairwise_listwise_rerank_loss(out).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: pairwise_listwise_rerank_loss(torch.randn(3, 1)), "K >= 1"),
        (lambda: pairwise_listwise_rerank_loss(torch.randn(0, 4)), "empty batch"),
        (lambda: pairwise_listwise_rerank_loss(torch.full((2, 3), float("nan"))), "scores contains"),
        (lambda: pairwise_listwise_rerank_loss(torch.randn(2, 3), list_size=0), "list_size must"),
        (lambda: PairReranker(4, 4)(torch.randn(2, 4), torch.randn(3, 5, 4)), "same B"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
