"""ModHiFi-U (paper 16): exactly k components edited per output of the listed layers, nothing
else touched, no labels read, and the protocol runs it."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from paperzoo.testing import unlearner_checks
from paperzoo.unlearning import UnlearningContext, UnlearningData, UnlearningProtocol
from paperzoo.unlearning.modhifi import ModHiFiUnlearner, default_unlearning_layers, modhifi_unlearn


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))


def _data(seed: int = 0, n: int = 60) -> UnlearningData:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 6, generator=g) + 2.0 * nn.functional.one_hot(y, 6).float()
    idx = torch.arange(n)
    forget = idx[(y == 0) & (idx < 45)]
    retain = idx[(y != 0) & (idx < 45)]
    return UnlearningData(x, y, forget, retain, idx[45:], num_classes=3)


def _context(seed: int = 0) -> UnlearningContext:
    return UnlearningContext(_mlp, lambda m, x, y, s: None, seed)


@pytest.mark.parametrize("edit", ["zero", "negate"])
def test_exactly_k_components_per_output_edited_and_nothing_else(edit: str) -> None:
    torch.manual_seed(0)
    model, data = _mlp(), _data()
    before = copy.deepcopy(model)
    unlearner = ModHiFiUnlearner(fraction=0.1, layers=["2", "4"], edit=edit)  # type: ignore[arg-type]
    out = unlearner.unlearn(model, data, _context())
    assert torch.equal(model[2].weight, before[2].weight)  # the input model is not edited
    assert torch.equal(out[0].weight, before[0].weight) and torch.equal(out[0].bias, before[0].bias)
    for name, c_in in (("2", 20), ("4", 16)):
        w0, w1 = before.get_submodule(name).weight, out.get_submodule(name).weight
        mask = unlearner.last_masks[name]
        assert mask.shape == w0.shape and bool((mask.sum(1) == math.ceil(0.1 * c_in)).all())
        expected = torch.where(mask, torch.zeros_like(w0) if edit == "zero" else -w0, w0)
        assert torch.equal(w1, expected)
        assert torch.equal(out.get_submodule(name).bias, before.get_submodule(name).bias)


def test_conv_layers_edit_whole_kernels() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(20, 2))
    before = copy.deepcopy(model)
    masks = modhifi_unlearn(model, torch.rand(10, 1, 6, 6), torch.rand(30, 1, 6, 6), layers=["2"], fraction=0.5)
    w = model[2].weight
    assert masks["2"].shape == (5, 4) and bool((masks["2"].sum(1) == 2).all())
    assert bool((w[masks["2"]] == 0).all()) and torch.equal(w[~masks["2"]], before[2].weight[~masks["2"]])
    assert torch.equal(model[5].weight, before[5].weight)


def test_reads_no_labels() -> None:
    """The same inputs with any labels give the same edit (the splits and x unchanged)."""
    torch.manual_seed(2)
    model, data = _mlp(), _data()
    relabelled = UnlearningData(
        data.x, (data.y + 1) % 3, data.forget_idx, data.retain_idx, data.test_idx, num_classes=3
    )
    a = ModHiFiUnlearner(layers=["4"]).unlearn(model, data, _context())
    b = ModHiFiUnlearner(layers=["4"]).unlearn(model, relabelled, _context())
    assert torch.equal(a[4].weight, b[4].weight)
    assert ModHiFiUnlearner.uses_labels is False and ModHiFiUnlearner.needs_oracle is False


def test_gmm_calibration_is_seeded() -> None:
    torch.manual_seed(3)
    model, data = _mlp(), _data()
    u = ModHiFiUnlearner(layers=["4"], calibration="gmm", n_synthetic=40)
    a, b = u.unlearn(model, data, _context(5)), u.unlearn(model, data, _context(5))
    assert torch.equal(a[4].weight, b[4].weight) and not torch.equal(a[4].weight, model[4].weight)


def test_default_layers_are_the_last_third() -> None:
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(7)])
    assert default_unlearning_layers(model) == ["5", "6"]
    assert default_unlearning_layers(_mlp()) == ["4"]
    with pytest.raises(ValueError, match="no Conv2d/Linear"):
        default_unlearning_layers(nn.Sequential(nn.Linear(3, 2)))


def test_runs_through_the_protocol() -> None:
    torch.manual_seed(4)
    data = _data()

    def train_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(30):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    out = UnlearningProtocol(data, _mlp, train_fn).run(ModHiFiUnlearner(fraction=0.2), seed=0)
    assert {"forget acc", "retain acc", "test acc", "MIA AUC", "time s"} <= set(out)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="fraction"):
        ModHiFiUnlearner(fraction=0.0)
    with pytest.raises(ValueError, match="edit"):
        ModHiFiUnlearner(edit="flip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference_inputs"):
        modhifi_unlearn(_mlp(), torch.randn(5, 6), None, layers=["4"])
    data = _data()
    with pytest.raises(ValueError, match="overlap"):  # a forget set that overlaps the retain set
        UnlearningData(
            data.x, data.y, data.forget_idx, torch.cat([data.retain_idx, data.forget_idx[:1]]), data.test_idx, 3
        )
    with pytest.raises(TypeError, match="unlearn"):
        ModHiFiUnlearner()(_mlp())


MODHIFI_CHECKS = unlearner_checks(lambda: ModHiFiUnlearner(fraction=0.1, layers=["2"]))


@pytest.mark.parametrize(("name", "check"), MODHIFI_CHECKS, ids=[name for name, _ in MODHIFI_CHECKS])
def test_unlearner_suite(name: str, check: object) -> None:
    check()  # type: ignore[operator]
