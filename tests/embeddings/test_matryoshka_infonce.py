"""KaLM's Matryoshka InfoNCE replica (paper 43): golden values of the reference loss, limiting
cases, and parity with sentence-transformers' MatryoshkaLoss around MultipleNegativesRankingLoss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperzoo.embeddings.matryoshka_infonce import KaLMMatryoshkaInfoNCE, kalm_matryoshka_infonce


def mk(n: int, off: float) -> torch.Tensor:
    return torch.sin(0.7 * torch.arange(n * 8, dtype=torch.float64) + off).reshape(n, 8)


Q, P = mk(3, 0.0), mk(9, 1.0)


def test_golden_values_of_the_reference() -> None:
    assert Q[0, 1].item() == pytest.approx(0.644217687, abs=1e-9)
    assert kalm_matryoshka_infonce(Q, P, [8], None, 0.05).item() == pytest.approx(9.55795423, abs=1e-8)
    assert kalm_matryoshka_infonce(Q, P, [8], None, 0.05, use_inbatch_neg=False).item() == pytest.approx(
        2.42398612, abs=1e-8
    )
    assert kalm_matryoshka_infonce(Q, P, [8, 4, 2], [1, 0.3, 0.2], 0.01).item() == pytest.approx(62.9637058, abs=1e-6)
    assert KaLMMatryoshkaInfoNCE([8, 4, 2], [1, 0.3, 0.2], 0.2)(Q, P).item() == pytest.approx(4.28114603, abs=1e-8)


def test_full_dim_equals_infonce_and_is_scale_invariant() -> None:
    qn, pn = F.normalize(Q, dim=-1), F.normalize(P, dim=-1)
    ce = F.cross_entropy(qn @ pn.T / 0.1, torch.arange(3) * 3)
    assert torch.allclose(kalm_matryoshka_infonce(Q, P, [8], [1.0], 0.1), ce)
    a = kalm_matryoshka_infonce(Q, P, [8, 4, 2], [1, 0.3, 0.2], 0.1)
    b = kalm_matryoshka_infonce(7.5 * Q, 7.5 * P, [8, 4, 2], [1, 0.3, 0.2], 0.1)
    assert torch.allclose(a, b)
    # weights are summed, not averaged
    single = [kalm_matryoshka_infonce(Q, P, [m], None, 0.1) for m in (8, 4, 2)]
    assert torch.allclose(a, single[0] + 0.3 * single[1] + 0.2 * single[2])


def test_parity_with_sentence_transformers_matryoshka() -> None:
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers.losses.matryoshka import shrink

    mnrl = st.losses.MultipleNegativesRankingLoss(model=None, scale=1 / 0.01)
    dims, weights = [8, 4, 2], [1.0, 0.3, 0.2]
    cols = [Q, *P.reshape(3, 3, 8).unbind(1)]  # column-major layout of sentence-transformers
    st_value = sum(
        w * mnrl.compute_loss_from_embeddings([shrink(c, m) for c in cols], None) for m, w in zip(dims, weights)
    )
    assert float(st_value) == pytest.approx(62.9637058, abs=1e-6)
    assert torch.allclose(kalm_matryoshka_infonce(Q, P, dims, weights, 0.01), torch.as_tensor(st_value))


def test_gradcheck_and_bad_input() -> None:
    q = Q.clone().requires_grad_()
    p = P.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: kalm_matryoshka_infonce(a, b, [8, 4], [1, 0.5], 0.2, gamma=1.0), (q, p)
    )
    with pytest.raises(ValueError, match="multiple"):
        kalm_matryoshka_infonce(Q, P[:8], [8])
    with pytest.raises(ValueError, match="dims"):
        kalm_matryoshka_infonce(Q, P, [16])
    with pytest.raises(ValueError, match="weights"):
        kalm_matryoshka_infonce(Q, P, [8, 4], [1.0])
    with pytest.raises(ValueError, match="temperature"):
        kalm_matryoshka_infonce(Q, P, [8], temperature=0.0)
    with pytest.raises(ValueError, match="empty"):
        kalm_matryoshka_infonce(Q[:0], P[:0], [8])
    with pytest.raises(ValueError, match="NaN"):
        kalm_matryoshka_infonce(Q * float("nan"), P, [8])
