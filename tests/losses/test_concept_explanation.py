import math

import pytest
import torch

from paperzoo.losses import (
    CCTLoss,
    concept_accuracy,
    concept_attention_entropy,
    concept_explanation_loss,
    spatial_concept_accuracy,
    spatial_concept_explanation_loss,
)
from paperzoo.models.concept_transformer import ConceptOutput

NAN = float("nan")


def _global():
    logits = torch.tensor(
        [[[2.0, 0.5, -1.0, 0.0]], [[0.1, 0.2, 0.3, 0.4]], [[1.0, 1.0, 1.0, -2.0]]], dtype=torch.float64
    )
    targets = torch.tensor([[1, 0, 0, 0], [0, 0, 1, 1], [NAN] * 4], dtype=torch.float64)
    return torch.softmax(logits, -1), targets


def _spatial():
    logits = torch.tensor(
        [[[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 3]], [[0.5, 0.5, 0, 0], [0, 0, 1, 1], [2, 0, 0, 1]]],
        dtype=torch.float64,
    )
    targets = torch.tensor(
        [[[1, 0, 0, 0], [NAN] * 4, [0, 0, 1, 1]], [[0, 1, 0, 0], [0, 0, 1, 0], [NAN] * 4]], dtype=torch.float64
    )
    return torch.softmax(logits, -1), targets


def test_golden_values():
    attn, targets = _global()
    sattn, stargets = _spatial()
    assert concept_explanation_loss(attn, targets).item() == pytest.approx(0.161455886, abs=1e-9)
    assert concept_attention_entropy(attn).item() == pytest.approx(0.285199829, abs=1e-9)
    assert spatial_concept_explanation_loss(sattn, stargets).item() == pytest.approx(0.482775212, abs=1e-9)
    total = concept_attention_entropy(attn) + concept_attention_entropy(sattn)
    assert total.item() == pytest.approx(0.551687150, abs=1e-9)


def test_explanation_loss_zero_at_normalised_targets_and_scale_invariant():
    targets = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]])
    attn = targets / targets.sum(-1, keepdim=True)
    assert concept_explanation_loss(attn, targets).item() == 0.0
    other = torch.softmax(torch.randn(2, 4), -1)
    scaled = targets * torch.tensor([[3.0], [0.5]])
    torch.testing.assert_close(concept_explanation_loss(other, targets), concept_explanation_loss(other, scaled))


def test_nan_rows_are_skipped():
    attn, targets = _global()
    kept = concept_explanation_loss(attn[:2], targets[:2])
    torch.testing.assert_close(concept_explanation_loss(attn, targets), kept)
    changed = attn.clone()
    changed[2] = torch.tensor([0.97, 0.01, 0.01, 0.01], dtype=torch.float64)
    torch.testing.assert_close(concept_explanation_loss(changed, targets), kept)
    # (B, 1, C), the layout of one query token, and (B, C) give the same value
    torch.testing.assert_close(concept_explanation_loss(attn[:, 0], targets), kept)


def test_spatial_loss_is_cs_times_mse_on_kept_rows():
    sattn, stargets = _spatial()
    rows, trows = sattn.reshape(-1, 4), stargets.reshape(-1, 4)
    keep = ~torch.isnan(trows).any(-1)
    t_hat = trows[keep] / trows[keep].sum(-1, keepdim=True)
    expected = 4 * ((rows[keep] - t_hat) ** 2).mean()
    torch.testing.assert_close(spatial_concept_explanation_loss(sattn, stargets), expected)


def test_no_annotation_gives_zero_with_gradient_path():
    attn = torch.softmax(torch.randn(2, 3), -1).requires_grad_(True)
    loss = concept_explanation_loss(attn, torch.full((2, 3), NAN))
    assert loss.item() == 0.0
    loss.backward()
    assert attn.grad is not None


def test_entropy_limits():
    c = 5
    one_hot = torch.eye(c)[[0, 3]]
    assert concept_attention_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.full((2, c), 1.0 / c, dtype=torch.float64)
    assert concept_attention_entropy(uniform).item() == pytest.approx(math.log(c) / c, rel=1e-6)
    peaked = torch.softmax(torch.randn(2, c, dtype=torch.float64), -1)
    assert concept_attention_entropy(peaked) < concept_attention_entropy(uniform)


def test_gradcheck():
    attn, targets = _global()
    sattn, stargets = _spatial()
    a = attn[:, 0].clone().requires_grad_(True)
    s = sattn.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: concept_explanation_loss(x, targets), (a,))
    assert torch.autograd.gradcheck(lambda x: spatial_concept_explanation_loss(x, stargets), (s,))
    assert torch.autograd.gradcheck(lambda x: concept_attention_entropy(x), (s,))


def test_cct_loss_parts_and_lambda_zero_is_plain_ce():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    attn, targets = _global()
    sattn, stargets = _spatial()
    sattn = torch.cat([sattn, sattn[:1]])
    stargets = torch.cat([stargets, stargets[:1]])
    y = torch.tensor([0, 3, 1])
    out = ConceptOutput(logits, attn[:, 0], sattn)
    res = CCTLoss(expl_lambda=2.0, sparsity_lambda=0.5)(out, y, targets, stargets)
    ce = torch.nn.functional.cross_entropy(logits, y)
    expl = concept_explanation_loss(attn, targets) + spatial_concept_explanation_loss(sattn, stargets)
    sparse = concept_attention_entropy(attn) + concept_attention_entropy(sattn)
    torch.testing.assert_close(res.total, ce + 2.0 * expl + 0.5 * sparse)
    torch.testing.assert_close(res.explanation, expl)
    plain = CCTLoss(expl_lambda=0.0, sparsity_lambda=0.0)(out, y, targets, stargets)
    assert torch.equal(plain.total, ce) and plain.explanation.item() > 0


def test_cct_loss_gradient_reaches_attention():
    attn = torch.softmax(torch.randn(2, 3), -1).requires_grad_(True)
    out = ConceptOutput(torch.randn(2, 2, requires_grad=True), attn, None)
    CCTLoss(1.0, 0.0)(out, torch.tensor([0, 1]), torch.eye(3)[[0, 2]]).total.backward()
    assert attn.grad.abs().sum() > 0


def test_accuracies():
    attn = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.5, 0.3, 0.2]])
    targets = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 1], [NAN, NAN, NAN]])
    assert concept_accuracy(attn, targets) == pytest.approx(2 / 3)
    spatial = attn[None].expand(2, -1, -1)
    assert spatial_concept_accuracy(spatial, targets[None].expand(2, -1, -1)) == pytest.approx(2 / 3)
    assert math.isnan(concept_accuracy(attn, torch.full_like(attn, NAN)))


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: concept_explanation_loss(torch.rand(2, 3), torch.rand(2, 4)), ValueError, "targets"),
        (lambda: concept_explanation_loss(torch.rand(0, 3), torch.rand(0, 3)), ValueError, "empty batch"),
        (lambda: concept_explanation_loss(torch.full((2, 3), NAN), torch.rand(2, 3)), ValueError, "attn"),
        (lambda: concept_explanation_loss(torch.rand(2, 3), -torch.rand(2, 3)), ValueError, "non-negative"),
        (lambda: concept_explanation_loss(torch.rand(2, 3), torch.full((2, 3), math.inf)), ValueError, "infinite"),
        (lambda: spatial_concept_explanation_loss(torch.rand(2, 3), torch.rand(2, 3)), ValueError, "attn"),
        (lambda: concept_attention_entropy(torch.rand(2, 3), eps=-1.0), ValueError, "eps"),
        (lambda: concept_accuracy(torch.randint(0, 2, (2, 3)), torch.rand(2, 3)), TypeError, "attn"),
        (lambda: CCTLoss(expl_lambda=-1.0), ValueError, "expl_lambda"),
        (
            lambda: CCTLoss()(ConceptOutput(torch.randn(2, 3), None, None), torch.tensor([0, 1]), torch.rand(2, 3)),
            ValueError,
            "concept_targets",
        ),
        (
            lambda: CCTLoss()(ConceptOutput(torch.randn(2, 3), None, None), torch.tensor([0, 5])),
            ValueError,
            "target",
        ),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _naive_concepts_cost(attn, targets):
    """The official formula written naively: boolean row selection, then C * MSE."""
    norm = targets.sum(-1, keepdim=True)
    idx = ~torch.isnan(norm)[:, 0]
    return attn.shape[-1] * torch.nn.functional.mse_loss(attn[idx], targets[idx] / norm[idx])


def test_agrees_with_naive_formulas_in_float32():
    torch.manual_seed(0)
    attn = torch.softmax(torch.randn(2048, 300), -1).requires_grad_(True)
    targets = torch.nn.functional.one_hot(torch.randint(0, 300, (2048,)), 300).float()
    targets[::5] = NAN
    ours = concept_explanation_loss(attn, targets)
    (g_ours,) = torch.autograd.grad(ours, attn)
    ref = _naive_concepts_cost(attn, targets)
    (g_ref,) = torch.autograd.grad(ref, attn)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-12)
    ent = concept_attention_entropy(attn)
    ent_ref = (-attn * torch.log(attn + 1e-8)).mean()
    torch.testing.assert_close(ent, ent_ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(torch.autograd.grad(ent, attn)[0], torch.autograd.grad(ent_ref, attn)[0])
