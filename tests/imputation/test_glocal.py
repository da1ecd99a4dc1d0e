"""Glocal-IB (paper 06): the alignment losses, the projection head, the PyPOTS core wrapper, the
GlocalSAITS / GlocalTCN imputers and the latent alignment report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperzoo.imputation.glocal import (
    AlignmentProjection,
    GlocalIBCore,
    global_alignment_loss,
    latent_alignment_report,
)

P_OBS = [[[1, 0], [0, 1], [1, 1]], [[2, -1], [0.5, 0.5], [-1, 2]]]
Z_ORI = [[[1, 1], [0, 2], [1, 0]], [[1, -1], [1, 1], [0, 1]]]
GRAD_COS_TIME = [
    [[0, -0.0790569415], [0, -0.0790569415], [0, 0.0790569415]],
    [[-0.00367388928, 0.0209980263], [-0.0587822286, -0.0419960526], [-0.0367388928, 0.0209980263]],
]


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(P_OBS, dtype=torch.float64, requires_grad=True), torch.tensor(Z_ORI, dtype=torch.float64)


# --------------------------------------------------------------------------- the loss
def test_cos_time_golden_value_and_gradient() -> None:
    p, z = _pair()
    loss = global_alignment_loss(p, z, "cos_time")
    assert loss.item() == pytest.approx(0.178527654, abs=1e-9)
    loss.backward()
    torch.testing.assert_close(p.grad, torch.tensor(GRAD_COS_TIME, dtype=torch.float64), atol=1e-9, rtol=0)


def test_cos_feature_golden_value() -> None:
    p, z = _pair()
    assert global_alignment_loss(p, z, "cos_feature").item() == pytest.approx(0.123779325, abs=1e-9)


def test_infonce_official_class_axis() -> None:
    p, z = _pair()
    assert global_alignment_loss(p, z, "infonce_time").item() == pytest.approx(0.810227545, abs=1e-9)
    # the usual row softmax (over the complete-view steps) gives another value: the axis is tested
    a, b = F.normalize(p.detach(), dim=2), F.normalize(z, dim=2)
    logits = a @ b.transpose(1, 2)
    rows = F.cross_entropy(logits.reshape(-1, 3), torch.arange(3).repeat(2))
    assert rows.item() == pytest.approx(0.810423909, abs=1e-9)


def test_infonce_orthonormal_steps_closed_form_and_scale_invariance() -> None:
    t = 5
    z = torch.eye(t, dtype=torch.float64).unsqueeze(0)  # T orthonormal steps in D = T
    expected = math.log(1 + (t - 1) / math.e)  # -log(e^1 / (e^1 + (T-1) e^0))
    assert global_alignment_loss(z, z, "infonce_time").item() == pytest.approx(expected, abs=1e-12)
    p = torch.randn(3, 6, 4, dtype=torch.float64)
    q = torch.randn(3, 6, 4, dtype=torch.float64)
    scale = torch.rand(3, 6, 1, dtype=torch.float64) + 0.1
    torch.testing.assert_close(
        global_alignment_loss(p * scale, q, "infonce_time"), global_alignment_loss(p, q, "infonce_time")
    )


def test_cos_time_range_scale_invariance_and_limits() -> None:
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(8, 12, 5, generator=g), torch.randn(8, 12, 5, generator=g)
    assert 0.0 <= global_alignment_loss(p, z).item() <= 2.0
    c = torch.rand(8, 1, 5, generator=g) + 0.05  # any positive scale per (b, d)
    assert global_alignment_loss(c * z, z).item() == pytest.approx(0.0, abs=1e-6)
    assert global_alignment_loss(-z, z).item() == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["cos_time", "infonce_time", "cos_feature"])
def test_stop_gradient_on_the_target(kind: str) -> None:
    p = torch.randn(2, 4, 3, requires_grad=True)
    z = torch.randn(2, 4, 3, requires_grad=True)
    global_alignment_loss(p, z, kind).backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["cos_time", "infonce_time", "cos_feature"])
def test_gradcheck(kind: str) -> None:
    p = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: global_alignment_loss(x, z, kind), (p,))


@pytest.mark.parametrize(
    ("p", "z", "kind", "match"),
    [
        (torch.randn(2, 3), torch.randn(2, 3), "cos_time", "p_obs must have shape"),
        (torch.randn(2, 3, 4), torch.randn(2, 3, 5), "cos_time", "z_ori must have the shape"),
        (torch.randn(0, 3, 4), torch.randn(0, 3, 4), "cos_time", "empty batch"),
        (torch.full((1, 3, 4), float("nan")), torch.randn(1, 3, 4), "cos_time", "p_obs contains NaN"),
        (torch.randn(1, 3, 4), torch.full((1, 3, 4), float("inf")), "cos_time", "z_ori contains NaN"),
        (torch.randn(1, 3, 4), torch.randn(1, 3, 4), "cos", "kind must be one of"),
    ],
)
def test_loss_bad_input(p: torch.Tensor, z: torch.Tensor, kind: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        global_alignment_loss(p, z, kind)


def test_loss_rejects_integer_tensors() -> None:
    with pytest.raises(TypeError, match="p_obs"):
        global_alignment_loss(torch.ones(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2))


def test_projection_head() -> None:
    head = AlignmentProjection(6)
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Linear"]
    assert head(torch.randn(2, 5, 6)).shape == (2, 5, 6)
    with pytest.raises(ValueError, match="dim"):
        AlignmentProjection(0)


# --------------------------------------------------------------------------- the core, on a toy PyPOTS-style core
class ToyCore(torch.nn.Module):
    """A PyPOTS-style core: ``forward(inputs, calc_criterion)``; records the masks it was given."""

    def __init__(self, n_features: int = 3, d: int = 8, dropout: float = 0.5) -> None:
        super().__init__()
        self.enc = torch.nn.Linear(2 * n_features, d)
        self.drop = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(d, n_features)
        self.masks: list[torch.Tensor] = []

    def forward(self, inputs: dict, calc_criterion: bool = False) -> dict:
        self.masks.append(inputs["missing_mask"])
        rec = self.out(self.drop(self.enc(torch.cat([inputs["X"], inputs["missing_mask"]], -1))))
        res = {"imputation": rec}
        if calc_criterion and self.training:
            res["loss"] = ((rec - inputs["X_ori"]).abs() * inputs["indicating_mask"]).sum() / (
                inputs["indicating_mask"].sum() + 1e-12
            )
        return res


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 7, 3, generator=g)
    observed = (torch.rand(4, 7, 3, generator=g) > 0.2).float()  # the data's own gaps
    m = observed * (torch.rand(4, 7, 3, generator=g) > 0.3).float()
    return {"X": x * m, "missing_mask": m, "X_ori": x * observed, "indicating_mask": observed - m}


@pytest.mark.parametrize("kind", ["cos_time", "infonce_time", "cos_feature"])
def test_core_adds_exactly_weighted_alignment(kind: str) -> None:
    torch.manual_seed(0)
    base = ToyCore()
    core = GlocalIBCore(base, "enc", 8, align_weight=0.3, align_type=kind).train()
    torch.manual_seed(1)
    plain_loss = base(_batch(), calc_criterion=True)["loss"]
    torch.manual_seed(1)
    res = core(_batch(), calc_criterion=True)
    assert torch.equal(res["local_loss"], plain_loss)  # the masked pass is the plain model's, same dropout
    assert torch.equal(res["loss"], res["local_loss"] + 0.3 * res["align_loss"])
    assert core.align_log == [pytest.approx(res["align_loss"].item())]
    res["loss"].backward()
    assert core.head[0].weight.grad is not None


def test_core_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(3)
    expected = torch.rand(5)
    torch.manual_seed(3)
    core = GlocalIBCore(ToyCore(), "enc", 8).train()
    torch.manual_seed(3)
    ToyCore()  # the same draws as the base core's init
    after_plain = torch.rand(5)
    torch.manual_seed(3)
    base = ToyCore()
    GlocalIBCore(base, "enc", 8)  # the head's init does not consume the caller's RNG
    assert torch.equal(torch.rand(5), after_plain)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(5), expected)
    # the complete view's dropout does not either
    torch.manual_seed(4)
    core.base(_batch(), calc_criterion=True)
    plain_next = torch.rand(5)
    torch.manual_seed(4)
    core(_batch(), calc_criterion=True)
    assert torch.equal(torch.rand(5), plain_next)


def test_core_weight_zero_and_eval_are_the_base_forward() -> None:
    torch.manual_seed(0)
    base = ToyCore()
    core = GlocalIBCore(base, "enc", 8, align_weight=0.0).train()
    torch.manual_seed(1)
    a = base(_batch(), calc_criterion=True)
    torch.manual_seed(1)
    b = core(_batch(), calc_criterion=True)
    assert set(a) == set(b) and torch.equal(a["loss"], b["loss"]) and core.align_log == []
    assert len(base.masks) == 2  # one pass each: no complete view at weight 0
    core.eval()
    weighted = GlocalIBCore(base, "enc", 8, align_weight=1.0).eval()
    with torch.no_grad():
        assert torch.equal(weighted(_batch())["imputation"], base(_batch())["imputation"])


@pytest.mark.parametrize("view", ["all_ones", "observed"])
def test_complete_view_mask(view: str) -> None:
    base = ToyCore()
    core = GlocalIBCore(base, "enc", 8, complete_view_mask=view).train()
    batch = _batch()
    core(batch, calc_criterion=True)
    masked, complete = base.masks
    assert torch.equal(masked, batch["missing_mask"])
    want = torch.ones_like(masked) if view == "all_ones" else batch["missing_mask"] + batch["indicating_mask"]
    assert torch.equal(complete, want)


def test_core_bad_arguments() -> None:
    with pytest.raises(ValueError, match="hook 'nope'"):
        GlocalIBCore(ToyCore(), "nope", 8)
    with pytest.raises(ValueError, match="align_weight must be"):
        GlocalIBCore(ToyCore(), "enc", 8, align_weight=-1.0)
    with pytest.raises(ValueError, match="align_type must be"):
        GlocalIBCore(ToyCore(), "enc", 8, align_type="mse")
    with pytest.raises(ValueError, match="complete_view_mask must be"):
        GlocalIBCore(ToyCore(), "enc", 8, complete_view_mask="none")
    with pytest.raises(TypeError, match="hook"):
        GlocalIBCore(ToyCore(), torch.nn.Linear(1, 1), 8)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- PyPOTS imputers
N_STEPS, N_FEAT = 12, 3


@pytest.fixture(scope="module")
def pypots_data() -> dict:
    pytest.importorskip("pypots")
    from paperzoo.data.timeseries import make_imputation_splits, quiet_stdout, shared_latent_sinusoids

    with quiet_stdout():
        from pypots.utils.logging import logger_creator
    logger_creator.set_level("error")
    X = shared_latent_sinusoids(96, N_STEPS, N_FEAT, seed=0)
    return {"splits": make_imputation_splits(X[:64], X[64:80], X[80:], 0.3, seed=0)}


def _saits(cls: type, **extra: object) -> object:
    return cls(
        n_steps=N_STEPS, n_features=N_FEAT, n_layers=1, d_model=8, n_heads=2, d_k=4, d_v=4, d_ffn=8,
        dropout=0.1, batch_size=16, epochs=2, device="cpu", verbose=False, **extra,
    )  # fmt: skip


def test_weight_zero_trains_bit_identically_to_saits(pypots_data: dict) -> None:
    from pypots.imputation import SAITS

    from paperzoo.imputation.glocal import GlocalSAITS

    sp = pypots_data["splits"]
    torch.manual_seed(0)
    plain = _saits(SAITS)
    torch.manual_seed(0)
    glocal = _saits(GlocalSAITS, align_weight=0.0)
    for a, b in zip(plain.model.state_dict().values(), glocal.model.base.state_dict().values()):
        assert torch.equal(a, b)
    torch.manual_seed(1)
    plain.fit(sp.train_set(), sp.val_set())
    torch.manual_seed(1)
    glocal.fit(sp.train_set(), sp.val_set())
    after_plain, after_glocal = plain.model.state_dict(), glocal.model.base.state_dict()
    assert list(after_plain) == list(after_glocal)
    for k in after_plain:
        assert torch.equal(after_plain[k], after_glocal[k]), k
    np.testing.assert_array_equal(plain.impute({"X": sp.test_X}), glocal.impute({"X": sp.test_X}))


def test_glocal_saits_trains_and_imputes_like_its_base(pypots_data: dict) -> None:
    from pypots.imputation import SAITS

    from paperzoo.imputation.glocal import GlocalSAITS

    sp = pypots_data["splits"]
    torch.manual_seed(0)
    glocal = _saits(GlocalSAITS, complete_view_mask="observed")
    glocal.fit(sp.train_set(), sp.val_set())
    assert len(glocal.model.align_log) == 2 * 4  # 2 epochs x 4 batches of 16
    assert all(0.0 <= v <= 2.0 for v in glocal.model.align_log)
    plain = _saits(SAITS)
    plain.model.load_state_dict(glocal.model.base.state_dict())
    np.testing.assert_array_equal(plain.impute({"X": sp.test_X}), glocal.impute({"X": sp.test_X}))
    report = latent_alignment_report(glocal, sp.test_X, sp.test_X_ori)
    assert set(report) == {"cos_time", "cos_feature", "cka", "cos_time_head"}
    same = latent_alignment_report(plain, sp.test_X_ori, sp.test_X_ori, hook="encoder.reduce_dim_z", capture="input")
    assert same["cos_time"] == pytest.approx(1.0, abs=1e-5) and same["cka"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="hook is required"):
        latent_alignment_report(plain, sp.test_X, sp.test_X_ori)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_glocal_tcn_and_glocal_wrap(pypots_data: dict) -> None:
    from paperzoo.imputation.glocal import GlocalTCN, glocal_wrap

    sp = pypots_data["splits"]
    tcn = GlocalTCN(
        n_steps=N_STEPS, n_features=N_FEAT, n_levels=1, d_hidden=8, kernel_size=3, batch_size=32, epochs=1,
        device="cpu", verbose=False, align_type="infonce_time",
    )  # fmt: skip
    tcn.fit(sp.train_set(), sp.val_set())
    assert len(tcn.model.align_log) == 2 and np.isfinite(tcn.impute({"X": sp.test_X})).all()
    with pytest.raises(ValueError, match="already wrapped"):
        glocal_wrap(tcn, "output_projection", 8)


def test_fully_missing_window_is_rejected(pypots_data: dict) -> None:
    from paperzoo.imputation.glocal import GlocalSAITS

    sp = pypots_data["splits"]
    bad = sp.train_X.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match=r"train_set\['X'\].*window 5"):
        _saits(GlocalSAITS).fit({"X": bad}, sp.val_set())


def test_masked_mae_golden_value(pypots_data: dict) -> None:
    from pypots.nn.functional import calc_mae

    pred, target = np.array([[1.0, 2, 3], [4, 5, 6]]), np.array([[1.0, 0, 3], [0, 5, 7]])
    mask = np.array([[0.0, 1, 1], [1, 0, 1]])
    assert calc_mae(pred, target, mask) == pytest.approx(1.75)
