import math

import pytest
import torch

from paperzoo.models.concept_transformer import (
    CompactConvEncoder,
    ConceptBOQSA,
    ConceptCentricHead,
    ConceptClassifier,
    ConceptCrossAttention,
    ConceptISA,
    ConceptSlotAttention,
    ConceptTransformerHead,
    SequencePooling,
    slot_attention_routing,
)
from paperzoo.models.vit import TinyViT

D = 8


def test_slot_attention_routing_golden_values():
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64) / math.sqrt(2)
    q = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    attn, updates = slot_attention_routing(k[None], q[None], v[None], eps=1e-8)
    expected_attn = torch.tensor(
        [[0.804429683, 0.195570317], [0.195570317, 0.804429683], [0.5, 0.5]], dtype=torch.float64
    )
    expected_u = torch.tensor([[2.59409376, 3.59409376], [3.40590624, 4.40590624]], dtype=torch.float64)
    torch.testing.assert_close(attn[0], expected_attn, atol=1e-9, rtol=0)
    torch.testing.assert_close(updates[0], expected_u, atol=1e-8, rtol=0)


def test_sa_attention_and_weights_normalise():
    torch.manual_seed(0)
    sa = ConceptSlotAttention(num_slots=5, dim=D).double()
    x = torch.randn(3, 7, D, dtype=torch.float64)
    slots, attn = sa(x)
    assert slots.shape == (3, 5, D) and attn.shape == (3, 7, 5)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 7, dtype=torch.float64))
    k = sa.to_k(sa.norm_inputs(x)) * sa.scale
    a, _ = slot_attention_routing(k, torch.randn(3, 5, D, dtype=torch.float64), sa.to_v(x))
    w = (a + 1e-8) / (a + 1e-8).sum(1, keepdim=True)
    torch.testing.assert_close(w.sum(1), torch.ones(3, 5, dtype=torch.float64))


def test_sa_single_input_gives_identical_slots_without_noise():
    torch.manual_seed(0)
    sa = ConceptSlotAttention(num_slots=4, dim=D)
    with torch.no_grad():
        sa.slots_log_sigma.fill_(-1e4)  # exp(log sigma) = 0: no initial-slot noise
    slots, attn = sa(torch.randn(2, 1, D))
    torch.testing.assert_close(slots, slots[:, :1].expand_as(slots))
    torch.testing.assert_close(attn, torch.full_like(attn, 0.25))


def test_sa_is_slot_permutation_equivariant():
    torch.manual_seed(0)
    sa = ConceptSlotAttention(num_slots=4, dim=D, num_iterations=2).double()
    x, init = torch.randn(2, 6, D, dtype=torch.float64), torch.randn(2, 4, D, dtype=torch.float64)
    perm = torch.tensor([2, 0, 3, 1])
    slots, attn = sa(x, slots_init=init)
    slots_p, attn_p = sa(x, slots_init=init[:, perm])
    torch.testing.assert_close(slots_p, slots[:, perm])
    torch.testing.assert_close(attn_p, attn[:, :, perm])


@pytest.mark.parametrize("memory", ["sa", "isa", "qsa"])
def test_memories_are_input_permutation_invariant(memory):
    torch.manual_seed(0)
    x = torch.randn(2, 6, D, dtype=torch.float64)
    perm = torch.tensor([5, 3, 0, 1, 4, 2])
    if memory == "sa":
        mod = ConceptSlotAttention(4, D, num_iterations=3).double()
        a = mod(x, generator=torch.Generator().manual_seed(1))[0]
        b = mod(x[:, perm], generator=torch.Generator().manual_seed(1))[0]
    else:
        mod = (ConceptISA if memory == "isa" else ConceptBOQSA)(D).double()
        init = torch.randn(2, 4, D, dtype=torch.float64)
        a, b = mod(x, init)[0], mod(x[:, perm], init)[0]
    torch.testing.assert_close(a, b)


def _plain_iterate(mod, x, init, steps):
    k, v = mod._inputs(x, init)
    s = init
    for _ in range(steps):
        s, _ = mod._step(s, k, v)
    return s


def test_isa_gradient_flows_through_last_step_only():
    torch.manual_seed(0)
    isa = ConceptISA(D, num_iterations=3).double()
    x = torch.randn(2, 5, D, dtype=torch.float64)
    init = torch.randn(2, 3, D, dtype=torch.float64, requires_grad=True)
    slots, attn = isa(x, init)
    torch.testing.assert_close(slots, _plain_iterate(isa, x, init, 4))  # T iterations + the last step
    assert attn.shape == (2, 5, 3)
    slots.square().sum().backward()
    grads = [p.grad.clone() for p in isa.parameters()]
    assert init.grad is None or torch.all(init.grad == 0)  # the fixed point is detached
    # the same gradients when the first T iterations are computed with gradient and then detached
    isa.zero_grad()
    k, v = isa._inputs(x, init)
    s = init
    for _ in range(3):
        s, _ = isa._step(s, k, v)
    last, _ = isa._step(s.detach(), k, v)
    last.square().sum().backward()
    for g, p in zip(grads, isa.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_boqsa_value_is_plain_iteration_and_gradient_is_straight_through():
    torch.manual_seed(0)
    qsa = ConceptBOQSA(D, num_iterations=2).double()
    x = torch.randn(2, 5, D, dtype=torch.float64)
    init = torch.randn(2, 3, D, dtype=torch.float64, requires_grad=True)
    slots, _ = qsa(x, init)
    torch.testing.assert_close(slots, _plain_iterate(qsa, x, init, 2))
    slots.sum().backward()
    assert init.grad is not None and init.grad.abs().sum() > 0
    # straight-through: d slots / d init equals the gradient of one step at the iterated value
    k, v = qsa._inputs(x, init)
    s1, _ = qsa._step(init, k, v)
    s = s1.detach().requires_grad_(True)
    out, _ = qsa._step(s, k, v)
    (g,) = torch.autograd.grad(out.sum(), s)
    torch.testing.assert_close(init.grad, g)


def test_cross_attention_eval_rows_sum_to_one():
    torch.manual_seed(0)
    ca = ConceptCrossAttention(D, n_outputs=3, num_heads=2).eval()
    out, attn = ca(torch.randn(4, 5, D), torch.randn(1, 6, D))
    assert out.shape == (4, 5, 3) and attn.shape == (4, 2, 5, 6)
    assert bool((attn >= 0).all())
    torch.testing.assert_close(attn.sum(-1), torch.ones(4, 2, 5))


def test_cross_attention_returns_post_dropout_attention_in_training():
    torch.manual_seed(0)
    ca = ConceptCrossAttention(D, n_outputs=3, num_heads=2, attention_dropout=0.5).train()
    _, attn = ca(torch.randn(8, 5, D), torch.randn(8, 6, D))
    assert bool((attn == 0).any())  # dropped entries are what the explanation loss sees


@pytest.mark.parametrize("memory", ["sa", "isa", "qsa"])
@pytest.mark.parametrize("memory_input", ["global", "tokens"])
def test_heads_shapes_and_explanations(memory, memory_input):
    torch.manual_seed(0)
    head = ConceptCentricHead(D, 3, n_concepts=5, n_spatial_concepts=4, memory=memory, memory_input=memory_input)
    head.eval()
    out = head(torch.randn(2, D), torch.randn(2, 9, D))
    assert out.logits.shape == (2, 3)
    assert out.concept_attn.shape == (2, 5) and out.spatial_concept_attn.shape == (2, 9, 4)
    torch.testing.assert_close(out.concept_attn.sum(-1), torch.ones(2))
    torch.testing.assert_close(out.spatial_concept_attn.sum(-1), torch.ones(2, 9))
    n_in = 1 if memory_input == "global" else 9
    assert head.last_memory_attn["global"].shape == (2, n_in, 5)
    out.logits.sum().backward()


def test_ct_limit_of_cct_is_exact():
    """CCT with its memory output replaced by CT's constant concepts is CT (same weights)."""
    torch.manual_seed(0)
    ct = ConceptTransformerHead(D, 3, n_concepts=5, n_spatial_concepts=4).eval()
    cct = ConceptCentricHead(D, 3, n_concepts=5, n_spatial_concepts=4, memory="sa").eval()
    cct.global_read.load_state_dict(ct.global_read.state_dict())
    cct.spatial_read.load_state_dict(ct.spatial_read.state_dict())
    cct.write = lambda e_g, tokens: (ct.concepts, ct.spatial_concepts)  # type: ignore[method-assign]
    e_g, tokens = torch.randn(3, D), torch.randn(3, 7, D)
    a, b = ct(e_g, tokens), cct(e_g, tokens)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_static_spatial_concepts_variant_and_streams():
    head = ConceptCentricHead(D, 2, n_concepts=3, n_spatial_concepts=4, spatial_memory=False)
    assert head.spatial_memory_module is None and head.spatial_concepts.shape == (1, 4, D)
    only_spatial = ConceptTransformerHead(D, 2, n_spatial_concepts=4).eval()
    out = only_spatial(torch.randn(2, D), torch.randn(2, 3, D))
    assert out.concept_attn is None and out.spatial_concept_attn.shape == (2, 3, 4)


def test_sa_head_is_stochastic_unless_seeded():
    head = ConceptCentricHead(D, 2, n_concepts=3, memory="sa").eval()
    e_g, tokens = torch.randn(2, D), torch.randn(2, 3, D)
    torch.manual_seed(5)
    a = head(e_g, tokens).logits
    torch.manual_seed(5)
    b = head(e_g, tokens).logits
    c = head(e_g, tokens).logits
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_compact_encoder_and_classifier_train():
    torch.manual_seed(0)
    enc = CompactConvEncoder(image_size=8, dim=16, n_pools=1, depth=1, heads=2)
    e_g, tokens = enc.tokens(torch.randn(4, 1, 8, 8))
    assert e_g.shape == (4, 16) and tokens.shape == (4, 16, 16)
    model = ConceptClassifier(enc, ConceptCentricHead(16, 2, n_concepts=10))
    logits = model.logits(torch.randn(4, 1, 8, 8))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1])).backward()
    assert enc.tokenizer[0].weight.grad.abs().sum() > 0
    vit_model = ConceptClassifier(TinyViT(16, 4, 1, 16, 1, 2, out_dim=0), ConceptTransformerHead(16, 3, 2, 2))
    assert vit_model(torch.randn(2, 1, 16, 16)).spatial_concept_attn.shape == (2, 16, 2)


def test_sequence_pooling_is_a_convex_combination():
    pool = SequencePooling(4)
    tokens = torch.randn(2, 5, 4)
    with torch.no_grad():
        pool.attention.weight.zero_()
    torch.testing.assert_close(pool(tokens), tokens.mean(1))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ConceptSlotAttention(0, D), "num_slots"),
        (lambda: ConceptISA(D, num_iterations=0), "num_iterations"),
        (lambda: ConceptCrossAttention(7, 2, num_heads=2), "num_heads"),
        (lambda: ConceptCentricHead(D, 2, n_concepts=3, memory="gru"), "memory"),
        (lambda: ConceptCentricHead(D, 2), "at least one concept"),
        (lambda: ConceptTransformerHead(D, 0, n_concepts=2), "num_classes"),
        (lambda: CompactConvEncoder(dim=10, heads=3), "heads"),
    ],
)
def test_bad_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_inputs():
    head = ConceptCentricHead(D, 2, n_concepts=3)
    with pytest.raises(ValueError, match="e_g"):
        head(torch.randn(2, D + 1), torch.randn(2, 3, D))
    with pytest.raises(ValueError, match="tokens"):
        head(torch.randn(2, D), torch.randn(3, 3, D))
    with pytest.raises(ValueError, match="tokens"):
        head(torch.randn(2, D), torch.full((2, 3, D), float("nan")))
    with pytest.raises(ValueError, match="x"):
        ConceptSlotAttention(3, D)(torch.randn(0, 2, D))
    with pytest.raises(ValueError, match="slots_init"):
        ConceptISA(D)(torch.randn(2, 4, D), torch.randn(3, 2, D))
    with pytest.raises(TypeError, match="tokens"):
        ConceptClassifier(torch.nn.Linear(2, 2), head)
