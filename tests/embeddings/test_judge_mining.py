"""UniME-V2's judge-based hard-negative mining: delta and beta filters, cyclic sampling, the
offline judges, the released row layout and the retrieval metrics."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperzoo.embeddings.judge_mining import (
    CrossEncoderJudge,
    JudgeMiner,
    StructuredOracleJudge,
    TeacherSimilarityJudge,
    cyclic_sample,
    ndcg_at_k,
    recall_at_k,
    rowwise_spearman,
    yes_probability,
)


def _scene_pool():
    """Captions over 3 colours x 3 nouns per slot: slots (c1, n1, c2, n2), 81 'left of' captions
    followed by their 81 paraphrases (same canonical slots)."""
    grid = torch.cartesian_prod(*[torch.arange(3)] * 4)
    return torch.cat([grid, grid]), grid


def test_yes_probability_is_the_two_token_softmax():
    ly, ln = torch.randn(10), torch.randn(10)
    two = torch.softmax(torch.stack([ly, ln], 1), 1)[:, 0]
    assert torch.allclose(yes_probability(ly, ln), two, atol=1e-6)


def test_oracle_judge_values_paraphrase_and_monotone():
    cand, queries = _scene_pool()
    judge = StructuredOracleJudge(queries, cand)
    q = torch.arange(81)
    s = judge(q, torch.stack([q, q + 81], 1))
    assert torch.allclose(s, torch.full_like(s, 0.8807971), atol=1e-6)  # positive and paraphrase alike
    scores = judge(q, torch.arange(162).expand(81, -1))
    m = judge.matches(q, torch.arange(162).expand(81, -1))
    order = m.flatten().argsort()
    assert bool((scores.flatten()[order].diff() >= 0).all())  # monotone in the number of correct slots
    levels = {int(k): float(scores[m == k][0]) for k in m.unique()}
    assert levels[3] == pytest.approx(0.1192029, abs=1e-6) and levels[2] == pytest.approx(0.0024726, abs=1e-6)


def test_teacher_judge_fit_reaches_target():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(40, 8, generator=g)
    c = q + 0.5 * torch.randn(40, 8, generator=g)
    judge = TeacherSimilarityJudge.fit(q, c, torch.arange(40), target=0.9, scale=0.05)
    assert float(judge(torch.arange(40), torch.arange(40)[:, None]).mean()) == pytest.approx(0.9, abs=1e-4)
    s = judge(torch.arange(40), torch.arange(40).expand(40, -1))
    assert bool(((s >= 0) & (s <= 1)).all())


def test_cross_encoder_judge_with_any_predictor():
    class Fake:
        def predict(self, pairs, batch_size=32):
            return np.array([float(len(a) - len(b)) for a, b in pairs])

    judge = CrossEncoderJudge(Fake(), ["aa", "aaaa"], ["a", "aaa", "aaaaa"])
    s = judge(torch.tensor([0, 1]), torch.tensor([[0, 1], [2, 0]]))
    assert torch.allclose(s, torch.sigmoid(torch.tensor([[1.0, -1.0], [-1.0, 3.0]])))
    with pytest.raises(ValueError, match="cand_idx must lie in"):
        judge(torch.tensor([0]), torch.tensor([[5]]))


def test_cyclic_sample_distinct_spanning_and_wrapping():
    valid = torch.ones(1, 50, dtype=torch.bool)
    picks = cyclic_sample(valid, 10)
    assert picks.tolist() == [list(range(0, 50, 5))]
    valid = torch.zeros(3, 30, dtype=torch.bool)
    valid[0, ::2] = True  # 15 valid: stride 1 -> the first 10 valid columns
    valid[1, [3, 7, 11]] = True  # 3 valid: repeated cyclically
    picks = cyclic_sample(valid, 10)
    assert picks[0].tolist() == list(range(0, 20, 2))
    assert picks[1].tolist() == [3, 7, 11, 3, 7, 11, 3, 7, 11, 3]
    assert picks[2].tolist() == [-1] * 10


def _mine(beta, sampling="cyclic", seed=0):
    cand, queries = _scene_pool()
    g = torch.Generator().manual_seed(seed)
    # a retriever that knows the slots, blurred: captions sharing slots with the query are near
    onehot = F.one_hot(cand, 3).flatten(1).float()
    cand_emb = onehot + 0.6 * torch.randn(onehot.shape, generator=g)
    query_emb = F.one_hot(queries, 3).flatten(1).float() + 0.3 * torch.randn(81, 12, generator=g)
    judge = StructuredOracleJudge(queries, cand)
    miner = JudgeMiner(judge, top_k=50, beta=beta, num_hard_negatives=10, sampling=sampling)
    pos = torch.arange(81)
    return miner, miner.mine(query_emb, cand_emb, pos), query_emb, cand_emb, pos


def test_miner_filters_and_counts():
    miner, out, q, c, pos = _mine(0.01)
    assert out.negatives.shape == (81, 10) and out.negative_scores.shape == (81, 10)
    sims = F.normalize(q, dim=1) @ F.normalize(c, dim=1).T
    pos_sim = sims[torch.arange(81), pos]
    kept = ~out.filled_randomly
    neg_sims = sims.gather(1, out.negatives)
    assert bool((neg_sims[kept] < pos_sim[kept, None]).all())  # delta filter
    assert bool((out.negative_scores <= out.positive_scores[:, None] - 0.01 + 1e-7).all())  # beta filter
    assert not bool((out.negatives == (pos + 81)[:, None]).any())  # the paraphrase never is a negative
    assert not bool((out.negatives == pos[:, None]).any())
    assert torch.allclose(out.negative_sims[kept], neg_sims[kept], atol=1e-5)
    many = out.n_kept >= 10
    distinct = torch.tensor([len(set(r)) for r in out.negatives.tolist()])
    assert bool((distinct[many] == 10).all())
    # the delta and beta counters add up to the retrieved list
    assert bool((out.n_kept + out.n_delta_rejected + out.n_beta_rejected == 50).all())


def test_without_beta_filter_paraphrases_can_be_negatives():
    _, out, *_ = _mine(None, sampling="top")
    assert int(out.n_beta_rejected.sum()) == 0
    _, out_b, *_ = _mine(0.01, sampling="top")
    assert int(out_b.n_beta_rejected.sum()) > 0
    assert bool((out.negative_scores >= 0.88).any()) and not bool((out_b.negative_scores >= 0.88).any())


def test_rows_fill_randomly_when_nothing_survives():
    cand, queries = _scene_pool()
    judge = StructuredOracleJudge(queries, cand)
    q_emb = torch.randn(4, 6)
    c_emb = torch.randn(162, 6)
    c_emb[:4] = -q_emb  # each positive is the least similar candidate: the delta filter rejects all
    out = JudgeMiner(judge, top_k=20).mine(q_emb, c_emb, torch.arange(4))
    assert bool(out.filled_randomly.all())
    assert not bool((out.negatives == torch.arange(4)[:, None]).any())
    assert torch.allclose(out.negative_scores, judge(torch.arange(4), out.negatives))


def test_rows_in_released_layout():
    _, out, *_ = _mine(0.01)
    queries = [(f"q{i}", f"img{i}.png") for i in range(81)]
    cands = [(f"caption {i}", None) for i in range(162)]
    rows = out.to_rows(queries, cands, torch.arange(81))
    assert set(rows[0]) == {
        "query_text", "query_image", "pos_text", "pos_image", "query_pos_scores", "hard_negatives",
        "hard_negatives_scores",
    }  # fmt: skip
    assert len(rows[0]["hard_negatives"]) == 10 and rows[0]["pos_text"] == "caption 0"
    json.dumps(rows)


def test_spearman_ndcg_recall():
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(1)
    a = torch.randn(5, 11, generator=g)
    b = torch.randint(0, 3, (5, 11), generator=g).float()  # ties, like judge scores
    ours = rowwise_spearman(a, b)
    ref = torch.tensor([spearmanr(x, y)[0] for x, y in zip(a.numpy(), b.numpy())], dtype=torch.float64)
    assert torch.allclose(ours, ref, atol=1e-10)
    rel = torch.rand(5, 11, generator=g)
    assert torch.allclose(ndcg_at_k(rel, rel), torch.ones(5, dtype=torch.float64))
    assert bool((ndcg_at_k(-rel, rel) < 1).all())
    correct = torch.zeros(5, 11, dtype=torch.bool)
    correct[:, 0] = True
    scores = torch.zeros(5, 11)
    scores[:3, 0] = 1.0
    assert recall_at_k(scores, correct, (1,))[1] == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: JudgeMiner(lambda q, c: c.float(), top_k=0), "JudgeMiner: top_k must"),
        (lambda: JudgeMiner(lambda q, c: c.float(), sampling="random"), "sampling must"),
        (lambda: StructuredOracleJudge(torch.zeros(2, 4).long(), torch.zeros(3, 3).long()), "cand_slots"),
        (lambda: StructuredOracleJudge(torch.zeros(2, 4).long(), torch.zeros(3, 4).long(), a=-1.0), "a must"),
        (lambda: _mine_bad(torch.arange(3)), "positive_idx must have shape"),
        (lambda: _mine_bad(torch.full((4,), 99)), "positive_idx must lie in"),
        (lambda: TeacherSimilarityJudge(torch.randn(3, 4), torch.randn(3, 5)), "cand_emb must have 4 columns"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _mine_bad(pos):
    return JudgeMiner(lambda q, c: c.float()).mine(torch.randn(4, 3), torch.randn(10, 3), pos)
