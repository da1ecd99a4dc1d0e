"""Label-Agnostic Forgetting (paper 42): golden values of the official formulas, the losses'
invariants and gradient signs, the VAE, and the unlearner's contract (no labels, head untouched,
limiting cases, determinism, bad input)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from paperzoo.testing import unlearner_checks
from paperzoo.unlearning import UnlearningContext, UnlearningData, UnlearningProtocol
from paperzoo.unlearning.laf import (
    LAF_PRESETS,
    EmbeddingVAE,
    LAFPlusR,
    LAFSmallCNN,
    LAFUnlearner,
    SplitModel,
    as_split_model,
    fit_embedding_vae,
    laf_bounded_recon_term,
    laf_extractor_unlearning_loss,
    laf_representation_alignment_loss,
    split_sequential,
    supervised_head_repair,
    vae_loss,
)

D = torch.float64
E_R = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-0.2, 0.3, 0.8]], dtype=D)
R_R = torch.tensor([[0.6, 0.1, 0.9], [0.7, 0.5, 0.2], [0.4, 0.4, 0.6]], dtype=D)
E_F = torch.tensor([[2.0, 2.0, -1.0], [0.0, -1.5, 1.0]], dtype=D)
R_F = torch.tensor([[0.9, 0.8, 0.1], [0.5, 0.2, 0.7]], dtype=D)
E_R0 = torch.tensor([[0.4, -0.9, 2.2], [1.0, 0.5, -0.5], [0.0, 0.3, 1.0]], dtype=D)
E_F0 = torch.tensor([[1.0, 2.5, -0.5], [0.5, -1.0, 1.5]], dtype=D)


class _FixedRecon(nn.Module):
    """A stand-in VAE whose reconstruction is a fixed tensor."""

    def __init__(self, recon: torch.Tensor) -> None:
        super().__init__()
        self.recon = recon

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        return self.recon, None, None, None


# --------------------------------------------------------------------------- golden values
def test_golden_bounded_terms_and_extractor_loss() -> None:
    assert laf_bounded_recon_term(R_R, E_R).item() == pytest.approx(5.15405956, abs=1e-8)
    assert laf_bounded_recon_term(R_F, E_F).item() == pytest.approx(4.35872943, abs=1e-8)
    loss = laf_extractor_unlearning_loss(_FixedRecon(R_R), _FixedRecon(R_F), E_R, E_F)
    assert loss.item() == pytest.approx(0.795330133, abs=1e-9)


@pytest.mark.parametrize(
    ("tau", "value", "grad"),
    [
        (1.0, -2.2471142, (-0.120294, 0.150367, 0.0601469)),
        (5.0, -2.00976169, (-0.0242863, 0.0303579, 0.0121432)),
        (20.0, -1.96528728, (-0.00608225, 0.00760281, 0.00304113)),
    ],
)
def test_golden_alignment_loss(tau: float, value: float, grad: tuple[float, ...]) -> None:
    e_f = E_F.clone().requires_grad_()
    loss = laf_representation_alignment_loss(E_R, E_R0, e_f, E_F0, tau)
    loss.backward()
    assert loss.item() == pytest.approx(value, abs=1e-7)
    torch.testing.assert_close(e_f.grad[0], torch.tensor(grad, dtype=D), atol=1e-7, rtol=1e-5)


def test_golden_vae_loss() -> None:
    mu = torch.tensor([[0.1, -0.2], [0.3, 0.0], [0.0, 0.5]], dtype=D)
    sigma = torch.tensor([[1.0, 0.5], [0.8, 1.2], [0.9, 1.0]], dtype=D)
    assert vae_loss(R_R, E_R, mu, sigma).item() == pytest.approx(1.41170275, abs=1e-8)


# --------------------------------------------------------------------------- loss properties
def test_bounded_term_range_identity_and_monotone() -> None:
    g = torch.Generator().manual_seed(0)
    e = torch.randn(6, 4, dtype=D, generator=g)
    assert laf_bounded_recon_term(e, e).item() == pytest.approx(6.0)
    recon = e + torch.randn(6, 4, dtype=D, generator=g)
    value = laf_bounded_recon_term(recon, e).item()
    assert 6.0 <= value < 6 * math.e
    bigger = e + 2 * (recon - e)  # every per-sample error grows
    assert laf_bounded_recon_term(bigger, e).item() > value
    assert laf_bounded_recon_term(e + 1e6, e).item() < 6 * math.e


def test_alignment_loss_formula_rescaling_and_fixed_point() -> None:
    g = torch.Generator().manual_seed(1)
    e_r, t_r, e_f, t_f = (torch.randn(n, 5, dtype=D, generator=g) for n in (4, 4, 3, 3))
    tau = 5.0
    c1 = 1 - torch.cosine_similarity(e_r, t_r, dim=1)
    c2 = 1 - torch.cosine_similarity(e_f, t_f, dim=1)
    expected = c1.sum() - 4 * torch.logsumexp(c2 / tau, 0)
    loss = laf_representation_alignment_loss(e_r, t_r, e_f, t_f, tau)
    torch.testing.assert_close(loss, expected)
    scale = torch.rand(4, 1, dtype=D, generator=g) + 0.1
    torch.testing.assert_close(laf_representation_alignment_loss(e_r * scale, t_r, e_f, t_f * 3.0, tau), loss)
    at_teacher = laf_representation_alignment_loss(t_r, t_r, t_f, t_f, tau)
    assert at_teacher.item() == pytest.approx(-4 * math.log(3), abs=1e-12)


def test_alignment_loss_matches_the_official_cosine_embedding_form() -> None:
    g = torch.Generator().manual_seed(2)
    e_r, t_r, e_f, t_f = (torch.randn(n, 6, dtype=D, generator=g) for n in (5, 5, 4, 4))
    cos_loss = nn.CosineEmbeddingLoss(reduction="none")
    c1 = cos_loss(e_r, t_r, torch.ones(5, dtype=D))
    c2 = cos_loss(e_f, t_f, torch.ones(4, dtype=D))
    official = torch.log(torch.exp(c1) / torch.exp(c2 / 20.0).sum()).sum()
    ours = laf_representation_alignment_loss(e_r, t_r, e_f, t_f, 20.0)
    assert abs(ours.item() - official.item()) < 1e-9


def test_alignment_loss_gradients_pull_remaining_and_push_forget() -> None:
    g = torch.Generator().manual_seed(3)
    t_r, t_f = torch.randn(3, 4, dtype=D, generator=g), torch.randn(2, 4, dtype=D, generator=g)
    e_r = (t_r + 0.5 * torch.randn(3, 4, dtype=D, generator=g)).requires_grad_()
    e_f = (t_f + 0.5 * torch.randn(2, 4, dtype=D, generator=g)).requires_grad_()
    for form in ("code", "infonce"):
        loss = laf_representation_alignment_loss(e_r, t_r, e_f, t_f, 5.0, form)
        gr, gf = torch.autograd.grad(loss, (e_r, e_f))
        with torch.no_grad():
            cos_r = torch.cosine_similarity(e_r - 1e-3 * gr, t_r, dim=1) - torch.cosine_similarity(e_r, t_r, dim=1)
            cos_f = torch.cosine_similarity(e_f - 1e-3 * gf, t_f, dim=1) - torch.cosine_similarity(e_f, t_f, dim=1)
        assert (cos_r > 0).all() and (cos_f < 0).all(), form
    infonce = laf_representation_alignment_loss(e_r, t_r, e_f, t_f, 5.0, "infonce")
    cr, cf = torch.cosine_similarity(e_r, t_r, dim=1), torch.cosine_similarity(e_f, t_f, dim=1)
    torch.testing.assert_close(infonce, -cr.sum() + 3 * torch.logsumexp(cf / 5.0, 0))


def test_extractor_loss_step_lowers_remaining_and_raises_forget_error() -> None:
    torch.manual_seed(0)
    vae_all, vae_forget = EmbeddingVAE(4, 2).double(), EmbeddingVAE(4, 2).double()
    for v in (vae_all, vae_forget):
        v.deterministic = True
        v.requires_grad_(False)
    e_r = torch.randn(2, 4, dtype=D, requires_grad=True)
    e_f = torch.randn(2, 4, dtype=D, requires_grad=True)
    before_r = laf_bounded_recon_term(vae_all(e_r)[0], e_r).item()
    before_f = laf_bounded_recon_term(vae_forget(e_f)[0], e_f).item()
    gr, gf = torch.autograd.grad(laf_extractor_unlearning_loss(vae_all, vae_forget, e_r, e_f), (e_r, e_f))
    with torch.no_grad():
        e_r2, e_f2 = e_r - 1e-2 * gr, e_f - 1e-2 * gf
        assert laf_bounded_recon_term(vae_all(e_r2)[0], e_r2).item() < before_r
        assert laf_bounded_recon_term(vae_forget(e_f2)[0], e_f2).item() > before_f


def test_loss_bad_input() -> None:
    with pytest.raises(ValueError, match="recon and e"):
        laf_bounded_recon_term(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        laf_representation_alignment_loss(E_R, E_R0, E_F, E_F0, 0.0)
    with pytest.raises(ValueError, match="form"):
        laf_representation_alignment_loss(E_R, E_R0, E_F, E_F0, 1.0, form="textbook")
    with pytest.raises(ValueError, match="e_f"):
        laf_representation_alignment_loss(E_R, E_R0, E_F[:0], E_F0[:0], 1.0)
    with pytest.raises(ValueError, match="e_r"):
        laf_representation_alignment_loss(E_R, E_R0[:2], E_F, E_F0, 1.0)


# --------------------------------------------------------------------------- VAE
def test_vae_architecture_sampling_and_output() -> None:
    torch.manual_seed(0)
    vae = EmbeddingVAE(256, 8).eval()
    e = 5 * torch.randn(7, 256)
    recon, z, mu, sigma = vae(e)
    assert recon.shape == (7, 256) and z.shape == mu.shape == sigma.shape == (7, 8)
    assert (recon > 0).all() and (recon < 1).all() and (sigma > 0).all()
    assert not torch.equal(vae(e)[0], recon)  # samples also in eval mode, as the official code
    vae.deterministic = True
    torch.testing.assert_close(vae(e)[1], vae(e)[2])
    free = EmbeddingVAE(256, 8, output_activation=None)
    assert not isinstance(free.decoder[-1], nn.Sigmoid)
    with pytest.raises(ValueError, match="output_activation"):
        EmbeddingVAE(output_activation="tanh")
    with pytest.raises(ValueError, match="latent_dim"):
        EmbeddingVAE(latent_dim=0)


def test_fit_embedding_vae_learns_and_freezes() -> None:
    torch.manual_seed(0)
    emb = torch.rand(128, 16)
    vae0 = EmbeddingVAE(16, 4)
    torch.manual_seed(0)
    vae = fit_embedding_vae(emb, 4, epochs=5, generator=torch.Generator().manual_seed(0))
    vae0.deterministic = vae.deterministic = True
    with torch.no_grad():
        before = vae_loss(*(lambda o: (o[0], emb, o[2], o[3]))(vae0(emb))).item()
        after = vae_loss(*(lambda o: (o[0], emb, o[2], o[3]))(vae(emb))).item()
    assert after < before
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    with pytest.raises(ValueError, match="embeddings"):
        fit_embedding_vae(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="NaN"):
        fit_embedding_vae(torch.full((3, 4), float("nan")))


# --------------------------------------------------------------------------- models
def test_split_models() -> None:
    torch.manual_seed(0)
    cnn = LAFSmallCNN(10)
    x = torch.rand(3, 1, 28, 28)
    logits, e = cnn.forward_split(x)
    assert logits.shape == (3, 10) and e.shape == (3, 256)
    torch.testing.assert_close(cnn(x), logits)
    assert isinstance(LAFSmallCNN(10, return_embedding=True)(x), tuple)
    assert len(list(cnn.head.children())) == 2 and all(isinstance(m, nn.Linear) for m in cnn.head)
    seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    z = torch.randn(5, 4)
    split = split_sequential(seq, 2)
    torch.testing.assert_close(split(z), seq(z))
    hooked = as_split_model(seq)
    assert hooked.head is seq[2]
    torch.testing.assert_close(hooked.embed(z), seq[1](seq[0](z)))
    named = as_split_model(seq, head="2")
    torch.testing.assert_close(named.embed(z), hooked.embed(z))
    assert as_split_model(cnn) is cnn
    with pytest.raises(TypeError, match="extractor"):
        as_split_model(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="head"):
        as_split_model(seq, head="7")
    with pytest.raises(ValueError, match="split_index"):
        split_sequential(seq, 3)


# --------------------------------------------------------------------------- the unlearner
def _blobs(seed: int = 0) -> UnlearningData:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(240) % 3
    x = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, -3.0]])[y] + torch.randn(240, 2, generator=g)
    idx = np.random.default_rng(seed).permutation(240)
    return UnlearningData(x, y, idx[:40], idx[40:180], idx[180:], 3)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def _context(seed: int = 0) -> UnlearningContext:
    return UnlearningContext(_model, lambda m, x, y, s: None, seed)


class _NoLabels(UnlearningData):
    """Data whose labels raise once constructed: a label-free method must never touch them."""

    sealed = False

    def __getattribute__(self, name: str) -> object:
        if name in ("y", "y_forget", "y_retain", "y_test", "y_train") and object.__getattribute__(self, "sealed"):
            raise AssertionError(f"LAF read data.{name}")
        return object.__getattribute__(self, name)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


FAST = {"epochs": 2, "vae_epochs": 1, "lr_ue": 1e-2, "lr_ra": 1e-2, "seed": 0}


def test_unlearn_reads_no_labels_keeps_the_head_and_moves_the_extractor() -> None:
    data = _blobs()
    guarded = _NoLabels(data.x, data.y, data.forget_idx, data.retain_idx, data.test_idx, 3)
    object.__setattr__(guarded, "sealed", True)
    assert LAFUnlearner.uses_labels is False
    model = _model()
    before = _state(model)
    out = LAFUnlearner(**FAST).unlearn(model, guarded, _context())
    after = _state(out)
    assert out is model
    assert torch.equal(after["2.weight"], before["2.weight"]) and torch.equal(after["2.bias"], before["2.bias"])
    assert not torch.equal(after["0.weight"], before["0.weight"])
    relabelled = UnlearningData(data.x, (data.y + 1) % 3, data.forget_idx, data.retain_idx, data.test_idx, 3)
    again = LAFUnlearner(**FAST).unlearn(_model(), relabelled, _context())
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), after.values()))


def test_limiting_cases_steps_and_determinism() -> None:
    data = _blobs()
    model = _model()
    before = _state(model)
    laf = LAFUnlearner(epochs=0)
    laf.unlearn(model, data, _context())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.values()))
    assert laf.history == [] and laf.steps == 0
    zero = LAFUnlearner(epochs=1, vae_epochs=1, lr_ue=0.0, lr_ra=0.0)
    zero.unlearn(model, data, _context())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.values()))
    # 40 forget samples, batch 16: ceil(40 / 16) = 3 steps per epoch
    laf = LAFUnlearner(**{**FAST, "batch_size": 16})
    rng_state = torch.get_rng_state()
    model.train()
    a = laf.unlearn(copy.deepcopy(model), data, _context())
    assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's RNG is left alone
    assert laf.steps == 6 and len(laf.history) == 2 and set(laf.history[0]) == {"L_UE", "L_RA"}
    assert a.training  # the mode it came in
    b = LAFUnlearner(**{**FAST, "batch_size": 16}).unlearn(copy.deepcopy(model), data, _context())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert laf.lr_scale(40, 140) == 1.0
    assert LAFUnlearner(epochs=2, batch_size=16, reference_steps=60).lr_scale(40, 140) == pytest.approx(10.0)


def test_presets_follow_the_official_table() -> None:
    assert LAF_PRESETS[("class", "cnn")] == {
        "latent_dim": 8, "epochs": 20, "lr_ue": 5e-5, "lr_ra": 1e-4, "temperature": 20.0,
    }  # fmt: skip
    assert LAF_PRESETS[("data", "cnn")]["temperature"] == 5.0
    laf = LAFUnlearner.preset("class", "resnet", epochs=3)
    assert (laf.latent_dim, laf.epochs, laf.lr_ra) == (16, 3, 5e-5)
    with pytest.raises(ValueError, match="preset"):
        LAFUnlearner.preset("noise", "cnn")


def test_laf_plus_r_is_laf_then_a_head_repair_from_retain_labels_only() -> None:
    data = _blobs()
    assert LAFPlusR.uses_labels is True
    kw = {**FAST, "labelled_fraction": 0.5, "repair_epochs": 2}
    full = LAFPlusR(**kw).unlearn(_model(), data, _context())
    laf_only = LAFUnlearner(**FAST).unlearn(_model(), data, _context())
    torch.testing.assert_close(full[0].weight, laf_only[0].weight)  # the repair leaves the extractor
    assert not torch.equal(full[2].weight, laf_only[2].weight)
    repaired = LAFPlusR(**kw).repair(copy.deepcopy(laf_only), data, _context())
    assert all(torch.equal(x, y) for x, y in zip(repaired.state_dict().values(), full.state_dict().values()))
    y = data.y.clone()
    y[data.forget_idx] = (y[data.forget_idx] + 1) % 3  # forget labels are never read
    other = UnlearningData(data.x, y, data.forget_idx, data.retain_idx, data.test_idx, 3)
    again = LAFPlusR(**kw).unlearn(_model(), other, _context())
    assert all(torch.equal(x, y) for x, y in zip(again.state_dict().values(), full.state_dict().values()))
    idx = LAFPlusR(**kw).labelled_indices(data, 0)
    assert idx.numel() == 70 and set(idx.tolist()) <= set(data.retain_idx.tolist())


def test_head_repair_fits_the_head_only() -> None:
    data = _blobs()
    model = _model()
    before = _state(model)
    supervised_head_repair(model, data.x_retain, data.y_retain, epochs=3, lr=1e-2)
    assert torch.equal(model[0].weight, before["0.weight"]) and not torch.equal(model[2].weight, before["2.weight"])
    with pytest.raises(ValueError, match="labels"):
        supervised_head_repair(model, data.x_retain, data.y_retain[:3])


def test_through_the_protocol() -> None:
    data = _blobs()

    def train_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(30):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    protocol = UnlearningProtocol(data, lambda: nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)), train_fn)
    values = protocol.run(LAFUnlearner(**{**FAST, "seed": None}), 0)
    assert {"forget acc", "retain acc", "test acc", "MIA AUC", "time s"} <= set(values)
    assert all(math.isfinite(v) for v in values.values())


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="LAFUnlearner: lr_ue"):
        LAFUnlearner(lr_ue=-1.0)
    with pytest.raises(ValueError, match="vae_fit_on"):
        LAFUnlearner(vae_fit_on="forget")
    with pytest.raises(ValueError, match="temperature"):
        LAFUnlearner(temperature=0.0)
    with pytest.raises(ValueError, match="labelled_fraction"):
        LAFPlusR(labelled_fraction=0.0)
    laf = LAFUnlearner(**FAST)
    with pytest.raises(ValueError, match="forget_inputs"):
        laf.unlearn_inputs(_model(), torch.zeros(0, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="retain_inputs contains NaN"):
        laf.unlearn_inputs(_model(), torch.zeros(5, 2), torch.full((5, 2), float("nan")))
    with pytest.raises(TypeError, match="extractor"):
        laf.unlearn_inputs(nn.Sequential(nn.ReLU()), torch.zeros(5, 2), torch.zeros(5, 2))
    data = _blobs()
    with pytest.raises(ValueError, match="overlap"):  # a forget set that overlaps the retain set
        UnlearningData(data.x, data.y, data.forget_idx, torch.cat([data.retain_idx, data.forget_idx[:1]]),
                       data.test_idx, 3)  # fmt: skip
    with pytest.raises(RuntimeError, match="diverged"):
        LAFUnlearner(epochs=3, vae_epochs=1, lr_ue=1e30, lr_ra=1e30).unlearn(_model(), data, _context())


def test_split_model_passes_through_unlearning_unchanged_in_form() -> None:
    torch.manual_seed(0)
    model = SplitModel(nn.Sequential(nn.Linear(2, 8), nn.ReLU()), nn.Linear(8, 3))
    out = LAFUnlearner(**FAST).unlearn(model, _blobs(), _context())
    assert out is model and out(torch.zeros(4, 2)).shape == (4, 3)


LAF_CHECKS = unlearner_checks(lambda: LAFUnlearner(vae_epochs=1, epochs=1, latent_dim=2))


@pytest.mark.parametrize(("name", "check"), LAF_CHECKS, ids=[name for name, _ in LAF_CHECKS])
def test_unlearner_suite(name: str, check: object) -> None:
    check()  # type: ignore[operator]
