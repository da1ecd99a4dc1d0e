"""Paper-27 (HypCD) checks (the generic suite smoke-runs the reproduction): the HypSimGCD model on
the SimGCD reproduction's problem, its trainer's two optimisers, and the full (slow) run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperzoo.discovery.hyperbolic import HypLinear, train_hypgcd
from paperzoo.discovery.trainer import GCDObjective
from paperzoo.reproductions import available
from paperzoo.reproductions import p00_simgcd_baseline as p00
from paperzoo.reproductions import p27_hypcd as p27


def test_registered_and_shares_the_simgcd_settings() -> None:
    assert available()[27] == "paperzoo.reproductions.p27_hypcd"
    assert p27.FULL is p00.FULL and len(p27._units((0, 1, 2), p27.FULL)) == 3 * 2 * 3


def test_hyperbolic_model_and_trainer() -> None:
    cfg = p27.SMOKE["digits"]
    g = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 4  # classes 0-1 old, 2-3 new
    x = torch.randn(64, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1)
    targets = torch.where((y < 2) & (torch.arange(64) % 8 < 4), y, -1)
    prob = p00.GCDProblem(x, y.numpy(), targets, (targets < 0).nonzero().squeeze(1).numpy(), None, 4, True)
    torch.manual_seed(0)
    model = p27.build_hyp_model(cfg, prob)
    z, logits = model(prob.x[:4])
    assert z.shape == (4, cfg.hidden[1]) and logits.shape == (4, 4)
    assert z.norm(dim=1).max() < 0.1**-0.5 and logits.abs().max() < 0.1**-0.5
    hyp = next(m for m in model.modules() if isinstance(m, HypLinear))
    w0, b0 = hyp.weight.detach().clone(), model[1].weight.detach().clone()
    _, step = train_hypgcd(
        model, x, targets, p00._views(prob), GCDObjective(p27.hyp_loss(cfg)), epochs=1, batch_size=32, log_terms=True
    )
    assert not torch.equal(w0, hyp.weight) and not torch.equal(b0, model[1].weight)  # both optimisers step
    assert len(step.history) == 2 and all(torch.isfinite(torch.tensor(h["total"])) for h in step.history)
    with pytest.raises(ValueError, match="HypLinear"):
        train_hypgcd(p00.build_model(cfg, prob), x, targets, p00._views(prob), GCDObjective(), epochs=1)


@pytest.mark.slow
def test_full_run(tmp_path: Path) -> None:
    result = p27.run(out_dir=tmp_path, progress=False, jobs=2)
    assert result.json_path is not None and result.json_path.is_file()
    assert result.table.mean(p27.HYP, "digits Old") > 0.5
