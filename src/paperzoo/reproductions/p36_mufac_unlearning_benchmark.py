"""Reproduction of paper 36, the identity-level machine unlearning benchmark (MUFAC / MUCAC, NoMUS;
Choi & Na, 2023), scaled down (this project's reproduction,
docs/papers/36-mufac-unlearning-benchmark.md).

No face set with identity labels ships offline, so the identity proxy of
:mod:`paperzoo.data.identity_proxy` stands in for MUFAC: each of the 1,797 scikit-learn digits is
one identity with 20 fixed random views (shift, contrast, noise); the task label is the digit. The
identity splits mirror MUFAC's sizes: 500 training identities (10,000 images) of which 75 are
forgotten (1,500 forget / 8,500 retain), 75 test identities (1,500) and 75 unseen identities
(1,500), drawn per seed.

The model is an MLP 64-512-512-10 trained like the paper's original model (SGD lr 0.01, momentum
0.9, batch 64, lr / 10 after 1/3 and 2/3 of the 40 epochs); the retrain oracle uses the same recipe
on the retain set. The benchmark's baselines then run through the shared unlearning protocol from
a copy of the original model with the benchmark's recipe (plain SGD, lr 1e-3, 2 epochs, batch 64):
fine-tuning, CF-k (the last two Linear layers), NegGrad, advanced NegGrad, UNSIR (after the impair
stage and after repair) and SCRUB. Every model is scored with the paper's columns (test top-1 /
top-2, forget accuracy, the forget-vs-unseen loss MIA, |MIA - 0.5|, NoMUS).

Units of work: one seed each (data, original, oracle, every method), since every method and the
evaluation need that seed's original and oracle models.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.models import MLP

PAPER = 36
DATA: tuple[str, ...] = ()  # scikit-learn's bundled digits
BUDGETS: tuple[str, ...] = ()

ORIGINAL, RETRAINED = "Original", "Retrained (oracle)"
FINETUNE, CFK, NEGGRAD, ADV = "Fine-tune", "CF-k", "NegGrad", "Adv. NegGrad"
UNSIR1, UNSIR2, SCRUB_ = "UNSIR-1", "UNSIR-2", "SCRUB"
METHODS = (ORIGINAL, RETRAINED, FINETUNE, CFK, NEGGRAD, ADV, UNSIR1, UNSIR2, SCRUB_)
UNLEARNERS = (FINETUNE, CFK, NEGGRAD, ADV, UNSIR1, UNSIR2, SCRUB_)
METRICS = ["test acc", "top-2 acc", "forget acc", "retain acc", "MIA", "|MIA - 0.5|", "NoMUS", "oracle KL"]
GAP = "|MIA - 0.5|"

# claim thresholds, fixed before the full run
ORIGINAL_GAP_ABOVE = 0.04  # the proxy has a real identity-memorisation signal
RETRAINED_GAP_BELOW = 0.03
FORGET_OVER_TEST = 0.10  # original forget accuracy above test accuracy by this much
FINETUNE_SAME_GAP = 0.01  # fine-tuning moves the gap by less than this
NEGGRAD_TEST_BELOW = 0.40  # NegGrad destroys utility
ADV_TEST_WITHIN = 0.10  # advanced NegGrad keeps test accuracy within this of the original


@dataclass(frozen=True)
class Config:
    views: int
    noise: float
    n_train: int  # identities
    n_forget: int
    n_test: int
    n_unseen: int
    hidden: tuple[int, ...]
    epochs: int  # of the original and the oracle
    lr: float = 0.01
    momentum: float = 0.9
    batch_size: int = 64


FULL = Config(views=20, noise=0.35, n_train=500, n_forget=75, n_test=75, n_unseen=75, hidden=(512, 512), epochs=40)
SMOKE = Config(views=6, noise=0.35, n_train=100, n_forget=20, n_test=20, n_unseen=20, hidden=(64,), epochs=15)


def _train_fn(cfg: Config) -> Any:
    def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
        loader = make_loader(TensorDataset(x, y), cfg.batch_size, seed=seed)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        steps = len(loader) * cfg.epochs
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 3, 2 * steps // 3], gamma=0.1)
        config = TrainConfig(epochs=cfg.epochs, seed=seed, progress=False, desc="p36")
        fit(model, nn.CrossEntropyLoss(), loader, opt, config, scheduler=sched)

    return train


def _methods() -> dict[str, Any]:
    from paperzoo.unlearning.baselines import Original
    from paperzoo.unlearning.cfk import CFk
    from paperzoo.unlearning.neggrad import NegGrad, NegGradPlus
    from paperzoo.unlearning.scrub import SCRUB
    from paperzoo.unlearning.unsir import UNSIR

    return {
        ORIGINAL: Original(),
        FINETUNE: CFk(k=None),
        CFK: CFk(k=2),
        NEGGRAD: NegGrad(),
        ADV: NegGradPlus(),
        UNSIR1: UNSIR(repair_epochs=0),
        UNSIR2: UNSIR(),
        SCRUB_: SCRUB(),
    }


def seed_unit(unit: tuple[int, Config]) -> dict[str, Any]:
    """One seed: the proxy's identity splits, the original and oracle models, every method's
    scores (``{method: {metric: value}}``), wall times and split sizes."""
    from paperzoo.data.identity_proxy import make_identity_proxy
    from paperzoo.unlearning.identity import IdentityProtocol, IdentitySplits

    seed, cfg = unit
    seed_everything(seed)
    proxy = make_identity_proxy("digits", views=cfg.views, noise=cfg.noise, seed=seed)
    splits = IdentitySplits.random_identities(
        proxy.identity, cfg.n_train, cfg.n_forget, cfg.n_test, cfg.n_unseen, seed=seed
    )
    x = torch.from_numpy(proxy.x.reshape(len(proxy.x), -1))
    idata = splits.build(x, torch.from_numpy(proxy.y), proxy.num_classes)
    protocol = IdentityProtocol(idata, lambda: MLP(x.shape[1], cfg.hidden, proxy.num_classes), _train_fn(cfg))
    times: dict[str, float] = {}
    for kind in ("original", "oracle"):
        t = time.perf_counter()
        getattr(protocol, kind)(seed)
        times[f"train {kind} s"] = time.perf_counter() - t
    scores: dict[str, dict[str, float]] = {RETRAINED: protocol.evaluate(protocol.oracle(seed), seed)}
    for name, method in _methods().items():
        scores[name] = protocol.run(method, seed)
        times[name] = scores[name].pop("time s")
    return {"scores": scores, "times": times, "sizes": splits.sizes()}


def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` (one unit per seed in ``jobs`` processes), write its
    result files under ``out_dir/36-mufac-unlearning-benchmark/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    outputs = rep.map(seed_unit, [(seed, cfg) for seed in rep.seeds])
    table = Table(METRICS, METHODS, baselines=[ORIGINAL, RETRAINED])
    for seed, out in zip(rep.seeds, outputs):
        for method in METHODS:
            table.add(method, seed, {m: float(out["scores"][method][m]) for m in METRICS})

    def per_seed(method: str, metric: str) -> np.ndarray:
        return np.asarray(table.values(method, metric))

    others = [m for m in METHODS if m != RETRAINED]
    best_other = np.max([per_seed(m, "NoMUS") for m in others], axis=0)
    claims = [
        Claim.about(
            f"the original model remembers its training identities: {GAP} of the forget-vs-unseen MIA > "
            f"{ORIGINAL_GAP_ABOVE:g}",
            per_seed(ORIGINAL, GAP),
            ">",
            ORIGINAL_GAP_ABOVE,
        ),
        Claim.about(
            f"the retrained oracle's forget set looks unseen: {GAP} < {RETRAINED_GAP_BELOW:g}",
            per_seed(RETRAINED, GAP),
            "<",
            RETRAINED_GAP_BELOW,
        ),
        Claim.about(
            f"the original model's forget accuracy exceeds its test accuracy by more than {FORGET_OVER_TEST:g}",
            per_seed(ORIGINAL, "forget acc") - per_seed(ORIGINAL, "test acc"),
            ">",
            FORGET_OVER_TEST,
        ),
        Claim.about(
            "the retrained oracle has the highest NoMUS: its NoMUS minus the best other row's > 0",
            per_seed(RETRAINED, "NoMUS") - best_other,
            ">",
        ),
        Claim.about(
            f"fine-tuning on the retain set barely moves the MIA: |{GAP} (fine-tune) - {GAP} (original)| < "
            f"{FINETUNE_SAME_GAP:g}",
            np.abs(per_seed(FINETUNE, GAP) - per_seed(ORIGINAL, GAP)),
            "<",
            FINETUNE_SAME_GAP,
        ),
        Claim.about(
            f"NegGrad destroys utility: test accuracy < {NEGGRAD_TEST_BELOW:g}",
            per_seed(NEGGRAD, "test acc"),
            "<",
            NEGGRAD_TEST_BELOW,
        ),
        Claim.less(table, ADV, ORIGINAL, GAP, statement=f"{GAP}: advanced NegGrad < the original (it forgets)"),
        Claim.greater(
            table,
            ADV,
            ORIGINAL,
            "test acc",
            margin=-ADV_TEST_WITHIN,
            statement=f"test acc: advanced NegGrad stays within {ADV_TEST_WITHIN:g} of the original",
        ),
        Claim.greater(
            table,
            ADV,
            ORIGINAL,
            "NoMUS",
            statement="NoMUS: advanced NegGrad > the original (one of the paper's best trade-offs on MUFAC)",
        ),
        Claim.greater(
            table,
            SCRUB_,
            ORIGINAL,
            "NoMUS",
            statement="NoMUS: SCRUB > the original (one of the paper's best trade-offs on MUFAC)",
        ),
        Claim.less(
            table, SCRUB_, ORIGINAL, GAP, statement=f"{GAP}: SCRUB < the original (the paper: 0.14 vs 0.21 on MUFAC)"
        ),
    ]
    times = {k: [o["times"][k] for o in outputs] for k in outputs[0]["times"]}
    sizes = outputs[0]["sizes"]
    result = rep.result(
        table,
        claims,
        setting=(
            f"identity proxy of MUFAC: scikit-learn digits, each image one identity with {cfg.views} fixed views "
            f"(shift in {{-1,0,1}}^2, contrast U(0.8, 1.2), N(0, {cfg.noise:g}^2) noise), task = the digit; "
            f"identity-disjoint splits per seed: {cfg.n_train} train identities ({sizes['train']} images; "
            f"{cfg.n_forget} forgotten = {sizes['forget']} forget / {sizes['retain']} retain), {cfg.n_test} test "
            f"({sizes['test']}), {cfg.n_unseen} unseen ({sizes['unseen']}); MLP 64-{'-'.join(map(str, cfg.hidden))}-10, "
            f"original and oracle: SGD lr {cfg.lr:g} momentum {cfg.momentum:g} batch {cfg.batch_size}, "
            f"{cfg.epochs} epochs, lr/10 at 1/3 and 2/3; unlearning: plain SGD lr 1e-3, 2 epochs, batch 64 "
            "(UNSIR: 1 impair + 1 repair epoch); MIA: logistic regression on the cross-entropy, forget vs unseen, "
            "balanced to min size, 10 stratified shuffle splits; NoMUS with lambda 0.5"
        ),
        scale_note=(
            "no faces: an identity proxy built from 8x8 digits stands in for MUFAC's 128-px family photos and age "
            "labels, and an MLP for ResNet-18; the protocol, the attack, NoMUS and the baseline recipes are the "
            "paper's"
        ),
        notes=(
            "MIA is the paper's attack (forget vs unseen identities, accuracy); 'oracle KL' is the shared "
            "protocol's KL from the retrained model's predictions on the forget set. UNSIR-1 is the model after the "
            "impair stage, UNSIR-2 after repair (the benchmark's UNSIR notebook was unreadable: noise settings "
            "follow Tarun et al.). Wall times per seed are in extra['times_s']."
        ),
        highlight=(ADV, ORIGINAL, "NoMUS"),
        extra={"times_s": times, "sizes": sizes},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Test / forget accuracy, the MIA gap and NoMUS per method, and each method's test accuracy
    against its MIA gap (the trade-off NoMUS scores)."""
    table = result.table
    fig, axes = subplots(2, width=7.0, width_ratios=[1.6, 1.0])
    grouped_bars(
        axes[0],
        table,
        ["test acc", "forget acc", GAP, "NoMUS"],
        ylabel="mean ± std over seeds",
        ylim=(0.0, 1.3),
        title="the paper's columns",
    )
    axes[0].legend(fontsize=7, ncol=3, loc="upper center")
    for method in table.methods:
        x, y = table.summary(method, GAP), table.summary(method, "test acc")
        axes[1].errorbar(x["mean"], y["mean"], xerr=x["std"], yerr=y["std"], fmt="o", capsize=2, label=method)
    axes[1].legend(fontsize=7, loc="lower right")
    axes[1].set_xlabel(f"{GAP} (forget vs unseen MIA; 0 is ideal)")
    axes[1].set_ylabel("test accuracy")
    axes[1].set_title("utility vs forgetting")
    return finish(fig, result, "identity-level unlearning benchmark")
