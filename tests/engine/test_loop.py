import pytest
import torch
from torch.utils.data import TensorDataset

from paperzoo.engine import TrainConfig, fit, load_checkpoint, make_loader, seed_everything
from paperzoo.models import MLP


def _problem(seed: int = 0) -> tuple[TensorDataset, torch.nn.Module]:
    g = torch.Generator().manual_seed(123)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    seed_everything(seed)
    model = torch.nn.Sequential(MLP(8, (16,), 3), torch.nn.Dropout(0.2))
    return TensorDataset(x, y), model


def _params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_training_reduces_loss_and_is_deterministic() -> None:
    runs = []
    for _ in range(2):
        ds, model = _problem()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        hist = fit(
            model,
            torch.nn.CrossEntropyLoss(),
            make_loader(ds, 16, seed=1),
            opt,
            TrainConfig(epochs=5, seed=3, progress=False),
        )
        runs.append((_params(model), hist))
    assert torch.equal(runs[0][0], runs[1][0])
    hist = runs[0][1]
    assert hist.steps == 5 * 6 and hist.epochs_completed == 5
    assert sum(hist.losses[-6:]) < sum(hist.losses[:6])


def test_resume_matches_uninterrupted_run(tmp_path) -> None:
    ds, model = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    full = fit(
        model,
        torch.nn.CrossEntropyLoss(),
        make_loader(ds, 16, seed=1),
        opt,
        TrainConfig(epochs=3, seed=3, progress=False),
        scheduler=sched,
    )
    reference = _params(model)

    ckpt = tmp_path / "ckpt"
    ds, model = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    part = fit(
        model,
        torch.nn.CrossEntropyLoss(),
        make_loader(ds, 16, seed=1),
        opt,
        TrainConfig(epochs=3, max_steps=8, seed=3, progress=False, checkpoint_dir=ckpt, checkpoint_every=3),
        scheduler=sched,
    )
    assert part.steps == 8
    state = load_checkpoint(ckpt / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["step"]) == (1, 2, 8)

    ds, model = _problem(seed=99)  # a different initialisation, overwritten by the checkpoint
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    resumed = fit(
        model,
        torch.nn.CrossEntropyLoss(),
        make_loader(ds, 16, seed=1),
        opt,
        TrainConfig(epochs=3, seed=3, progress=False, checkpoint_dir=ckpt, checkpoint_every=3),
        scheduler=sched,
    )
    assert resumed.resumed_from_step == 8 and resumed.steps == full.steps
    torch.testing.assert_close(_params(model), reference, rtol=0, atol=0)
    assert resumed.losses == pytest.approx(full.losses)


def test_checkpoint_refuses_arbitrary_objects(tmp_path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_non_finite_loss_stops_training() -> None:
    ds, model = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def bad(model: torch.nn.Module, batch: object) -> torch.Tensor:
        return model(batch[0]).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="non-finite"):
        fit(model, None, make_loader(ds, 16), opt, TrainConfig(progress=False), compute_loss=bad)


def test_bad_config() -> None:
    ds, model = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, torch.nn.CrossEntropyLoss(), make_loader(ds, 16), opt, TrainConfig(epochs=0))
    with pytest.raises(ValueError, match="loss_fn or compute_loss"):
        fit(model, None, make_loader(ds, 16), opt)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(ds, 0)


def test_check_seeds() -> None:
    from paperzoo.engine import check_seeds

    assert check_seeds((2, 0, 1)) == [2, 0, 1]
    with pytest.raises(ValueError, match="at least one seed"):
        check_seeds(())
    with pytest.raises(ValueError, match="distinct non-negative"):
        check_seeds((1, 1))
    with pytest.raises(ValueError, match="distinct non-negative"):
        check_seeds((-1,))
