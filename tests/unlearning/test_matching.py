"""Oracle Matching, Datamodel Matching and DM-direct (paper 45)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from paperzoo.models import MLP
from paperzoo.training.batched import BatchedMLP
from paperzoo.unlearning import UnlearningContext, UnlearningData, UnlearningProtocol
from paperzoo.unlearning.datamodels import RegressionDatamodel
from paperzoo.unlearning.matching import (
    DatamodelDirect,
    DatamodelMatching,
    OracleMatching,
    finetune_indices,
    forget_rows,
)

N, D, C = 40, 5, 3


def _data(labels: torch.Tensor | None = None) -> UnlearningData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    y = torch.randint(0, C, (N,), generator=g) if labels is None else labels
    return UnlearningData(x, y, np.arange(6), np.arange(6, 30), np.arange(30, N), C)


def _model_fn() -> nn.Module:
    return MLP(D, (8,), C)


def _train_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _zero_datamodel(n_train: int, n_eval: int) -> RegressionDatamodel:
    dm = RegressionDatamodel()
    dm.beta, dm.bias, dm.lam = torch.zeros(n_train, n_eval, C, dtype=torch.float64), torch.zeros(n_eval, C), 1.0
    return dm


def test_finetune_set_composition():
    f, r = np.array([3, 9, 4]), np.arange(10, 40)
    idx = finetune_indices(f, r, forget_multiplier=2.5, retain_multiplier=3.0, seed=42)
    forget_part, retain_part = idx[:7], idx[7:]
    assert list(forget_part) == [3, 9, 4, 3, 9, 4, 3]  # two copies plus a prefix of floor(0.5 * 3) = 1
    assert retain_part.size == 9 and len(set(retain_part)) == 9 and not set(retain_part) & set(f)
    assert np.array_equal(idx, finetune_indices(f, r, 2.5, 3.0, 42))
    assert finetune_indices(f, r, 1.0, 100.0).size == 3 + 30  # all retain points when too few exist
    with pytest.raises(ValueError, match="overlaps the retain set"):
        finetune_indices(f, np.arange(0, 20))


def test_oracle_equal_to_original_and_zero_datamodel_leave_the_model_unchanged():
    data, model = _data(), _model_fn()
    before = copy.deepcopy(model.state_dict())
    ctx = UnlearningContext(_model_fn, _train_fn, 0, oracle=lambda: copy.deepcopy(model))
    om = OracleMatching(epochs=3, lr=1e-2)
    om.unlearn(model, data, ctx)
    assert om.losses[0] == 0.0
    dmm = DatamodelMatching(_zero_datamodel(30, N), epochs=3, lr=1e-2)
    dmm.unlearn(model, data, UnlearningContext(_model_fn, _train_fn, 0))
    assert dmm.losses[0] == 0.0
    for k, v in model.state_dict().items():
        assert torch.allclose(v, before[k], atol=1e-6), k


def test_matching_reads_no_labels():
    data = _data(labels=torch.zeros(N, dtype=torch.long))
    bogus = copy.copy(data)
    object.__setattr__(bogus, "y", torch.full((N,), -1))  # OM / DMM must not touch the labels
    target = _model_fn()
    ctx = UnlearningContext(_model_fn, _train_fn, 0, oracle=lambda: target)
    model = OracleMatching(epochs=2).unlearn(_model_fn(), bogus, ctx)
    assert isinstance(model, nn.Module)
    DatamodelMatching(_zero_datamodel(30, N), epochs=2).unlearn(_model_fn(), bogus, ctx)
    assert not OracleMatching.uses_labels and not DatamodelMatching.uses_labels and OracleMatching.needs_oracle


def test_oracle_matching_moves_towards_the_oracle():
    data = _data()
    torch.manual_seed(1)
    model, oracle = _model_fn(), _model_fn()
    xs = data.x[data.forget_idx]
    with torch.no_grad():
        gap0 = float((model(xs) - oracle(xs)).square().mean())
    om = OracleMatching(epochs=200, lr=1e-2, lr_gamma=1.0)
    om.unlearn(model, data, UnlearningContext(_model_fn, _train_fn, 0, oracle=lambda: oracle))
    with torch.no_grad():
        assert float((model(xs) - oracle(xs)).square().mean()) < 0.05 * gap0
    assert om.losses[-1] < 0.05 * om.losses[0]


def test_dmm_targets_are_original_minus_summed_attributions():
    data = _data()
    dm = _zero_datamodel(30, N)
    dm.beta[0, 1] = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)  # training position 0 = example 0 (forget)
    dm.beta[10, 1] = 100.0  # a retain example: never subtracted
    rows = forget_rows(data)
    assert list(rows) == [0, 1, 2, 3, 4, 5]
    matcher = DatamodelMatching(dm)
    model = _model_fn()
    with torch.no_grad():
        out = matcher.original_targets(model, rows)(data.x[:3], torch.arange(3))
        ref = model(data.x[:3])
    assert torch.allclose(out[1], ref[1] - torch.tensor([1.0, -2.0, 0.5]), atol=1e-6)
    assert torch.allclose(out[[0, 2]], ref[[0, 2]])
    direct = DatamodelDirect(dm).unlearn(model, data, UnlearningContext(_model_fn, _train_fn, 0))
    with torch.no_grad():
        assert torch.allclose(direct(data.x[:3]), out, atol=1e-6)
        fresh = torch.randn(2, D)
        assert torch.allclose(direct(fresh), model(fresh))


def test_batched_models_fine_tune_like_single_ones():
    data = _data()
    batched, targets = BatchedMLP(D, (8,), C, [0, 1]), BatchedMLP(D, (8,), C, [5, 6])
    singles = [batched.module(k) for k in range(2)]
    kw = {"epochs": 5, "lr": 1e-2, "batch_size": 7, "shuffle": True}
    OracleMatching(**kw).finetune(batched, data.x, data.forget_idx, data.retain_idx, lambda x, _p: targets(x))
    for k in range(2):
        om = OracleMatching(**kw)
        om.finetune(singles[k], data.x, data.forget_idx, data.retain_idx, lambda x, _p, k=k: targets(x)[k])
        assert torch.allclose(singles[k](data.x), batched(data.x)[k], atol=1e-5)


def test_dmm_fits_its_datamodel_once_through_the_protocol():
    data = _data()
    protocol = UnlearningProtocol(data, _model_fn, _train_fn)
    dmm = DatamodelMatching(num_models=12, epochs=3, lr=1e-2)
    values = protocol.run(dmm, seed=0)
    assert {"forget acc", "test acc", "MIA AUC", "time s"} <= set(values)
    fitted = dmm.datamodel
    assert fitted is not None and fitted.beta.shape == (30, N, C)
    protocol.run(dmm, seed=1)
    assert dmm.datamodel is fitted  # same training set: the datamodel is reused
    om = protocol.run(OracleMatching(epochs=3, lr=1e-2), seed=0)
    assert 0.0 <= om["forget acc"] <= 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="lr"):
        OracleMatching(lr=0.0)
    with pytest.raises(ValueError, match="loss"):
        OracleMatching(loss="l1")
    with pytest.raises(ValueError, match="num_models"):
        DatamodelMatching(num_models=1)
    data = _data()
    with pytest.raises(ValueError, match="oracle"):
        OracleMatching().unlearn(_model_fn(), data, UnlearningContext(_model_fn, _train_fn, 0))
    with pytest.raises(ValueError, match="overlap"):
        UnlearningData(data.x, data.y, np.arange(7), np.arange(6, 30), np.arange(30, N), C)
