"""SimGCD heads, views, sampler, the GCD compute_loss on engine.fit (with an extra term), prediction
and the k-means baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from paperzoo.discovery.baselines import KMeansBaseline, kmeans_predict
from paperzoo.discovery.heads import CosineClassifier, DINOHead
from paperzoo.discovery.losses import SimGCDLoss
from paperzoo.discovery.trainer import (
    GCDBatch,
    GCDObjective,
    GCDStep,
    LabelledUnlabelledSampler,
    cosine_per_epoch,
    gcd_targets,
    param_groups,
    predict,
    train_gcd,
)
from paperzoo.discovery.views import FeatureViews, ImageViews


# --------------------------------------------------------------------------- heads
def test_cosine_classifier_is_a_cosine_with_frozen_unit_norm() -> None:
    torch.manual_seed(0)
    head = CosineClassifier(5, 4)
    h = torch.randn(7, 5)
    s = head(h)
    assert s.shape == (7, 4) and s.abs().max() <= 1.0 + 1e-6
    assert torch.allclose(head(3.7 * h), s, atol=1e-6)
    protos = head.prototypes()
    assert torch.allclose(protos.norm(dim=1), torch.ones(4), atol=1e-6)
    assert torch.allclose(s, torch.nn.functional.normalize(h, dim=1) @ protos.T, atol=1e-6)
    v = head.linear.parametrizations.weight.original1
    with torch.no_grad():
        v[2] *= 5.0  # rescaling a raw row changes nothing
    assert torch.allclose(head(h), s, atol=1e-6)
    g = head.linear.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    assert CosineClassifier(5, 4, fixed_norm=False).linear.parametrizations.weight.original0.requires_grad
    with pytest.raises(ValueError, match="h must be"):
        head(torch.randn(3, 6))
    with pytest.raises(ValueError, match="n_classes"):
        CosineClassifier(5, 0)


def test_dino_head_shapes_init_and_gradients_reach_both_branches() -> None:
    torch.manual_seed(0)
    head = DINOHead(12, 6, hidden=32, bottleneck=8, nlayers=3)
    linears = [m for m in head.mlp if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [32, 32, 8]
    assert all(m.bias.abs().max() == 0 and 0.015 < m.weight.std() < 0.025 for m in linears)
    h = torch.randn(5, 12, requires_grad=True)
    z, logits = head(h)
    assert z.shape == (5, 8) and logits.shape == (5, 6)
    z.sum().backward(retain_graph=True)
    g_proj = h.grad.clone()
    h.grad = None
    logits.sum().backward()
    assert g_proj.abs().sum() > 0 and h.grad.abs().sum() > 0
    assert len(DINOHead(12, 6, nlayers=1).mlp) == 1


# --------------------------------------------------------------------------- views
def test_image_views_shift_by_at_most_one_pixel_per_image() -> None:
    torch.manual_seed(0)
    x = torch.rand(16, 1, 6, 6)
    out = ImageViews(shift=1, noise_std=0.0)(x)
    for i in range(16):  # the test may loop; the augmentation does not
        rolls = [torch.roll(x[i], (a, b), dims=(1, 2)) for a in (-1, 0, 1) for b in (-1, 0, 1)]
        assert any(torch.equal(out[i], r) for r in rolls)
    assert out.shape == x.shape and ImageViews(0, 0.0)(x).equal(x)
    noisy = ImageViews(shift=0, noise_std=0.1)(x)
    assert 0.05 < (noisy - x).std() < 0.15
    assert ImageViews()(x[:, 0]).shape == (16, 6, 6)


def test_feature_views_keep_the_mean_and_add_noise() -> None:
    torch.manual_seed(0)
    x = torch.ones(2000, 8)
    v = FeatureViews(noise_std=0.1, dropout=0.2)(x)
    assert v.mean().item() == pytest.approx(1.0, abs=0.03)
    assert ((v.abs() < 0.5).float().mean().item()) == pytest.approx(0.2, abs=0.02)
    with pytest.raises(ValueError, match="dropout"):
        FeatureViews(dropout=1.0)
    with pytest.raises(TypeError, match=r"\(N, D\)"):
        FeatureViews()(torch.ones(3, 2, 2))


# --------------------------------------------------------------------------- sampler
def test_sampler_weights_balance_labelled_and_unlabelled_and_follow_the_epoch() -> None:
    mask = torch.zeros(1000, dtype=torch.bool)
    mask[:200] = True
    s = LabelledUnlabelledSampler(mask, seed=3)
    assert torch.allclose(s.weights[:200], torch.ones(200, dtype=torch.float64))
    assert torch.allclose(s.weights[200:], torch.full((800,), 0.25, dtype=torch.float64))
    first = list(s)
    assert len(first) == 1000 and first == list(s)
    assert np.mean(np.asarray(first) < 200) == pytest.approx(0.5, abs=0.06)
    s.set_epoch(1)
    assert list(s) != first and s.epoch == 1
    with pytest.raises(ValueError, match="labelled and unlabelled"):
        LabelledUnlabelledSampler(torch.ones(5, dtype=torch.bool))


def test_param_groups_and_cosine_schedule() -> None:
    model = DINOHead(4, 3, hidden=8, bottleneck=2)
    decay, no_decay = param_groups(model, 5e-5)
    assert decay["weight_decay"] == 5e-5 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    n_trainable = sum(p.requires_grad for p in model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == n_trainable  # the frozen g is left out
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = cosine_per_epoch(opt, epochs=4, steps_per_epoch=3)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[2] == pytest.approx(0.1) and lrs[3] < lrs[2]
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 4, 1e-4
    )
    want = []
    for _ in range(4):
        want.append(ref.get_last_lr()[0])
        ref.optimizer.step()
        ref.step()
    assert lrs[::3] == pytest.approx(want)


# --------------------------------------------------------------------------- compute_loss / trainer
class _Extra(nn.Module):
    """A stand-in for a later paper's term: a weighted mean logit, with the epoch it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[int] = []

    def forward(self, batch: GCDBatch, epoch: int) -> dict[str, torch.Tensor]:
        self.epochs.append(epoch)
        assert batch.logits.shape[0] == 2 * batch.labels.shape[0]
        return {"extra": 0.5 * batch.logits.mean()}


def _toy(n: int = 96, k: int = 4, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = np.arange(n) % k
    x = torch.randn(n, 6, generator=g) + 3.0 * torch.eye(6)[torch.from_numpy(y)]
    targets = gcd_targets(y, np.flatnonzero((y < 2) & (np.arange(n) % 8 < 4)))
    return x, y, targets


def test_objective_adds_extra_terms_and_rejects_name_clashes() -> None:
    torch.manual_seed(0)
    z, logits = torch.randn(8, 3), torch.randn(8, 4)
    labels, mask = torch.tensor([0, 1, -1, -1]), torch.tensor([True, True, False, False])
    batch = GCDBatch(torch.zeros(8, 1), z, logits, labels, mask)
    base = SimGCDLoss()(z, logits, labels, mask, 2)
    terms = GCDObjective(SimGCDLoss(), [_Extra()])(batch, 2)
    assert terms["extra"].item() == pytest.approx(0.5 * logits.mean().item())
    assert terms["total"].item() == pytest.approx(base["total"].item() + terms["extra"].item(), rel=1e-6)

    class Clash(nn.Module):
        def forward(self, batch: GCDBatch, epoch: int) -> dict[str, torch.Tensor]:
            return {"me_max": batch.logits.sum()}

    with pytest.raises(ValueError, match="'me_max', a name already in use"):
        GCDObjective(extra_terms=[Clash()])(batch, 0)


def test_train_gcd_runs_on_engine_fit_and_passes_the_epoch() -> None:
    torch.manual_seed(0)
    x, y, targets = _toy()
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), DINOHead(16, 4, hidden=16, bottleneck=8))
    extra = _Extra()
    history, step = train_gcd(
        model, x, targets, FeatureViews(0.1, 0.0), GCDObjective(extra_terms=[extra]),
        epochs=3, batch_size=32, seed=0, log_terms=True,
    )  # fmt: skip
    assert history.steps == 9 and history.epochs_completed == 3
    assert extra.epochs == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert set(step.history[0]) == {"cls_sup", "cls_unsup", "me_max", "rep_unsup", "rep_sup", "extra", "total"}
    pred = predict(model, x)
    assert pred.shape == (96,) and pred.dtype == torch.int64 and 0 <= int(pred.min()) and int(pred.max()) < 4
    # same seed, same initialisation: the same model
    torch.manual_seed(0)
    again = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), DINOHead(16, 4, hidden=16, bottleneck=8))
    train_gcd(again, x, targets, FeatureViews(0.1, 0.0), GCDObjective(extra_terms=[_Extra()]), epochs=3, batch_size=32)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_gcd_step_hides_unlabelled_labels() -> None:
    x, y, targets = _toy()
    assert (targets[targets >= 0] == torch.from_numpy(y)[targets >= 0]).all()
    assert int((targets < 0).sum()) == 96 - int((targets >= 0).sum()) and (targets < 0).any()
    model = nn.Sequential(nn.Linear(6, 16), DINOHead(16, 4, hidden=8, bottleneck=4))
    sampler = LabelledUnlabelledSampler(targets >= 0)
    loss = GCDStep(GCDObjective(), FeatureViews(), sampler)(model, (x[:10], targets[:10]))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_trainer_bad_input() -> None:
    x, _, targets = _toy()
    model = nn.Sequential(nn.Linear(6, 16), DINOHead(16, 4, hidden=8, bottleneck=4))
    with pytest.raises(ValueError, match="batch_size=128 is larger than the 96 training samples"):
        train_gcd(model, x, targets, FeatureViews(), epochs=1)
    with pytest.raises(ValueError, match="same number of rows"):
        train_gcd(model, x[:50], targets, FeatureViews(), epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="labelled and unlabelled"):
        train_gcd(model, x, torch.full((96,), -1), FeatureViews(), epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="epochs"):
        train_gcd(model, x, targets, FeatureViews(), epochs=0)


# --------------------------------------------------------------------------- k-means
def test_kmeans_baseline_recovers_separated_clusters_and_names_bad_k() -> None:
    from paperzoo.metrics import cluster_accuracy

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 2)) * 0.1 + np.array([[0, 0], [5, 0], [0, 5]])[y]
    pred = kmeans_predict(x, 3, seed=0)
    assert cluster_accuracy(y, pred, y < 2)["all"] == 1.0
    assert kmeans_predict(x, 3, seed=0, predict_on=x[:5]).tolist() == pred[:5].tolist()
    with pytest.raises(ValueError, match="k=61 is larger than the number of samples \\(60\\)"):
        kmeans_predict(x, 61)
    with pytest.raises(ValueError, match="n_init"):
        KMeansBaseline(n_init=0)
