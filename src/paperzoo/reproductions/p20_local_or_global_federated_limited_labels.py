"""Reproduction of paper 20, FedLabel: "Local or Global: Selective Knowledge Assimilation for
Federated Learning with Limited Labels" (Cho, Joshi & Dimitriadis, ICCV 2023), scaled down (this
project's reproduction, docs/papers/20-local-or-global-federated-limited-labels.md).

Only the abstract of the paper could be read; the algorithm is the reading in
:mod:`paperzoo.federated.fedlabel`, and the paper's data sets and networks are unknown, so this is
a proxy on a label-skewed Fashion-MNIST federation with a small MLP (no pretrained network: the
paper trains its models from scratch as far as the abstract says):

* per seed: ``n_train`` Fashion-MNIST training images drawn at random, split over ``clients``
  clients by a Dirichlet(``alpha``) label skew (every client >= ``min_client`` images); a fraction
  ``labelled`` of each client's images keeps its label, the rest are unlabelled;
* the server's test set: ``test_per_class`` test images of each class (balanced); each client's
  test set: ``client_test`` test images drawn with the client's label distribution (for the
  personalised, local-model accuracy);
* model: MLP 784-200-10 (student, frozen teacher and local model); ``rounds`` rounds of Flower's
  FedAvg over all clients, each client ``iters`` SGD steps (lr 0.05, momentum 0.9) on batches of 16
  labelled and 64 unlabelled images; threshold tau = 0.9, lambda_u = lambda_c = 1, the local model
  persistent and trained on the labelled data (+ its side of the consistency term);
* methods, all through :func:`paperzoo.federated.fedlabel.fedlabel_apps` on the in-process Flower
  backend: FedAvg on 100 % of the labels (the paper's "fully supervised" baseline), FedAvg on the
  labelled images only, FedAvg + FixMatch pseudo-labels from the frozen global model (the
  semi-supervised baseline), pseudo-labels from the local model only, FedLabel without the
  consistency term, FedLabel, and FedLabel with the entropy expertise score.

Metrics: global accuracy = the server's balanced test accuracy averaged over the last
``tail_rounds`` rounds (one round's accuracy moves by a few points under this label skew: the
average is fixed before the full run); local accuracy = the clients' local models on their own
test sets after the last round (for methods without a local model, the global model); pseudo-label
accuracy, mask rate and share of samples where the local model was the expert, averaged over the
last third of the rounds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperzoo.engine import Claim, Result, Table, seed_everything
from paperzoo.engine.plots import curve_with_band, finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start

PAPER = 20
DATA: tuple[str, ...] = ("fashion-mnist",)
BUDGETS: tuple[str, ...] = ()

FULL_LABELS = "FedAvg (100% labels)"
SUPERVISED = "FedAvg (labelled only)"
PL_GLOBAL = "FedAvg + FixMatch (global teacher)"
PL_LOCAL = "local-teacher pseudo-labels"
FEDLABEL_NC = "FedLabel w/o consistency"
FEDLABEL = "FedLabel"
FEDLABEL_ENT = "FedLabel (entropy expert)"
METHODS = (FULL_LABELS, SUPERVISED, PL_GLOBAL, PL_LOCAL, FEDLABEL_NC, FEDLABEL, FEDLABEL_ENT)
#: method -> (FedLabelConfig mode, expertise override, all images labelled)
RECIPES: dict[str, tuple[str, str | None, bool]] = {
    FULL_LABELS: ("supervised", None, True),
    SUPERVISED: ("supervised", None, False),
    PL_GLOBAL: ("pl_global", None, False),
    PL_LOCAL: ("pl_local", None, False),
    FEDLABEL_NC: ("fedlabel_noconsistency", None, False),
    FEDLABEL: ("fedlabel", None, False),
    FEDLABEL_ENT: ("fedlabel", "entropy", False),
}
GLOBAL_ACC, LOCAL_ACC, PL_ACC, MASK, LOCAL_SEL = "global acc", "local acc", "PL acc", "mask rate", "local sel."
METRICS = [GLOBAL_ACC, LOCAL_ACC]
#: pseudo-label diagnostics of the semi-supervised methods (in ``extra``, not the table: undefined for
#: the supervised rows)
DIAGNOSTICS = [PL_ACC, MASK, LOCAL_SEL]
TAU = 0.9


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    n_train: int
    clients: int
    rounds: int
    iters: int
    test_per_class: int
    client_test: int
    min_client: int
    alpha: float = 0.3
    labelled: float = 0.05
    hidden: int = 200
    tail_rounds: int = 3


FULL = Config(n_train=8000, clients=10, rounds=12, iters=15, test_per_class=200, client_test=200, min_client=100)
SMOKE = Config(
    n_train=600, clients=3, rounds=2, iters=2, test_per_class=10, client_test=20, min_client=50, labelled=0.1,
    tail_rounds=1,
)  # fmt: skip


@lru_cache(maxsize=1)
def _fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from paperzoo.data import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    return train.x, train.y, test.x, test.y


@dataclass(frozen=True, eq=False)
class Federation:
    """One seed's federation: the data, the labelled mask and each client's test indices."""

    data: Any  # paperzoo.federated.baselines.FederatedData
    labelled: np.ndarray
    client_tests: tuple[np.ndarray, ...]


def build_federation(cfg: Config, seed: int) -> Federation:
    """Draw one seed's training images, Dirichlet partition, labelled mask and test sets."""
    from paperzoo.federated.baselines import FederatedData
    from paperzoo.federated.partition import dirichlet_partition, labelled_mask

    x, y, xt, yt = _fashion()
    rng = np.random.default_rng([seed, PAPER])
    idx = np.sort(rng.choice(len(y), cfg.n_train, replace=False))
    tidx = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(yt == c), cfg.test_per_class, replace=False) for c in range(10)])
    )
    y_tr, y_te = y[idx], yt[tidx]
    parts = dirichlet_partition(y_tr, cfg.clients, cfg.alpha, seed=seed, min_size=cfg.min_client)
    mask = labelled_mask(parts, cfg.n_train, fraction=cfg.labelled, seed=seed)
    class_pos = [np.flatnonzero(y_te == c) for c in range(10)]
    client_tests = []
    for part in parts:  # a loop over clients: test images drawn with the client's label distribution
        share = np.bincount(y_tr[part], minlength=10) / part.size
        counts = rng.multinomial(cfg.client_test, share)
        client_tests.append(
            np.concatenate([rng.choice(class_pos[c], n, replace=True) for c, n in enumerate(counts) if n > 0])
        )
    data = FederatedData(
        torch.from_numpy(x[idx]), torch.from_numpy(y_tr), parts, torch.from_numpy(xt[tidx]), torch.from_numpy(y_te), 10
    )
    return Federation(data, mask, tuple(client_tests))


def train_unit(unit: tuple[str, int, Config]) -> dict[str, Any]:
    """One method on one seed's federation: the table's metrics and the per-round accuracy."""
    from paperzoo.federated.fedlabel import FedLabelConfig, fedlabel_apps
    from paperzoo.federated.flower import run_federation
    from paperzoo.models import MLP

    method, seed, cfg = unit
    logging.getLogger("flwr").setLevel(logging.ERROR)
    fed = build_federation(cfg, seed)
    mode, expertise, all_labelled = RECIPES[method]
    labelled = np.ones_like(fed.labelled) if all_labelled else fed.labelled
    config = FedLabelConfig(mode=mode, expertise=expertise, tau=TAU, iters=cfg.iters, lr=0.05, momentum=0.9)
    seed_everything(seed)
    server, client, history = fedlabel_apps(
        lambda: MLP(784, (cfg.hidden,), 10), fed.data, labelled, config, rounds=cfg.rounds, seed=seed,
        client_tests=fed.client_tests,
    )  # fmt: skip
    run_federation(server, client, cfg.clients)
    rounds = history.rounds
    tail = rounds[-cfg.tail_rounds :]
    third = rounds[-max(1, cfg.rounds // 3) :]
    semi = mode != "supervised"

    def avg(rows: list[dict[str, float]], key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    diag = {PL_ACC: avg(third, "pl-acc"), MASK: avg(third, "mask-rate"), LOCAL_SEL: avg(third, "local-selected")}
    return {
        "values": {GLOBAL_ACC: avg(tail, "accuracy"), LOCAL_ACC: float(rounds[-1]["client-local-acc"])},
        "diagnostics": diag if semi else None,
        "curve": [float(r["accuracy"]) for r in rounds],
        "wall_s": history.wall_s,
    }


def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` (units in ``jobs`` processes), write its result files
    under ``out_dir/20-local-or-global-federated-limited-labels/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    units = [(method, seed, cfg) for seed in rep.seeds for method in METHODS]
    outputs = rep.map(train_unit, units)
    table = Table(METRICS, METHODS, baselines=[PL_GLOBAL, FULL_LABELS, SUPERVISED])
    curves: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    walls: dict[str, list[float]] = {m: [] for m in METHODS}
    diagnostics: dict[str, dict[str, list[float]]] = {}
    for (method, seed, _), out in zip(units, outputs):
        table.add(method, seed, out["values"])
        if out["diagnostics"] is not None:
            per = diagnostics.setdefault(method, {k: [] for k in DIAGNOSTICS})
            for k in DIAGNOSTICS:
                per[k].append(out["diagnostics"][k])
        curves[method].append(out["curve"])
        walls[method].append(out["wall_s"])
    pl_gap = [a - b for a, b in zip(diagnostics[FEDLABEL][PL_ACC], diagnostics[PL_LOCAL][PL_ACC])]
    claims = [
        Claim.greater(table, FEDLABEL, PL_GLOBAL, GLOBAL_ACC),
        Claim.greater(table, FEDLABEL, FULL_LABELS, GLOBAL_ACC),
        Claim.greater(table, FEDLABEL, SUPERVISED, GLOBAL_ACC),
        Claim.greater(table, PL_GLOBAL, SUPERVISED, GLOBAL_ACC),
        Claim.about(
            f"{PL_ACC}: choosing the expert per sample gives more accurate pseudo-labels than the local model "
            f"alone ({FEDLABEL} minus {PL_LOCAL} > 0)",
            pl_gap,
            ">",
        ),
    ]
    result = rep.result(
        table,
        claims,
        setting=(
            f"Fashion-MNIST, {cfg.n_train:,} training images per seed over {cfg.clients} clients, Dirichlet "
            f"alpha={cfg.alpha:g} label skew, {cfg.labelled:.0%} of each client's images labelled; MLP "
            f"784-{cfg.hidden}-10; {cfg.rounds} rounds of Flower FedAvg (all clients, in-process backend), "
            f"{cfg.iters} local SGD steps per round (lr 0.05, momentum 0.9; batches 16 labelled + 64 unlabelled); "
            f"tau={TAU:g}, lambda_u=lambda_c=1, weak view = shift <= 2 px, strong = shift <= 4 px + 9x9 erasing + "
            f"noise 0.1; local model persistent, trained on the labelled images; global acc = balanced test "
            f"accuracy ({10 * cfg.test_per_class:,} images) averaged over the last {cfg.tail_rounds} rounds; local "
            f"acc = local models on client-distribution test sets ({cfg.client_test} images each)"
        ),
        scale_note=(
            "a label-skewed Fashion-MNIST federation with an MLP stands in for the paper's (unknown) image "
            f"benchmarks; {cfg.clients} clients, {cfg.rounds} rounds, ~{cfg.labelled * cfg.n_train / cfg.clients:.0f} "
            "labels per client; the algorithm's details beyond the abstract are a reading of it"
        ),
        notes=(
            "Pseudo-labels over the last third of the rounds, mean over seeds (PL acc = accuracy of the "
            "pseudo-labels that pass tau; mask = share passing; local sel. = share where the local model was "
            "the expert): "
            + "; ".join(
                f"{m}: " + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in d.items()) for m, d in diagnostics.items()
            )
            + ". Mean wall time of one federated run (s): "
            + ", ".join(f"{m} {np.mean(w):.1f}" for m, w in walls.items())
            + "."
        ),
        highlight=(FEDLABEL, PL_GLOBAL, GLOBAL_ACC),
        extra={"curves": curves, "diagnostics": diagnostics},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Global / local accuracy per method, the pseudo-label diagnostics, and test accuracy per round."""
    table = result.table
    fig, axes = subplots(3, width=5.2, height=4.8, width_ratios=[1.3, 1.0, 1.1])
    lowest = min(table.mean(m, k) for m in table.methods for k in (GLOBAL_ACC, LOCAL_ACC))
    grouped_bars(
        axes[0], table, [GLOBAL_ACC, LOCAL_ACC], ylabel="test accuracy (mean ± std over seeds)",
        ylim=(max(0.0, float(np.floor((lowest - 0.1) * 10) / 10)), 1.0), title="accuracy",
    )  # fmt: skip
    axes[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    diagnostics = result.extra.get("diagnostics", {})
    width = 0.8 / len(table.methods)
    for i, m in enumerate(table.methods):  # the colours of the accuracy panel
        if m not in diagnostics:
            continue
        vals = np.asarray([diagnostics[m][k] for k in DIAGNOSTICS], dtype=float)
        xs = np.arange(len(DIAGNOSTICS)) + (i - (len(table.methods) - 1) / 2) * width
        axes[1].bar(xs, vals.mean(1), width, yerr=vals.std(1), capsize=2, color=f"C{i}")
    axes[1].set_xticks(np.arange(len(DIAGNOSTICS)), DIAGNOSTICS)
    axes[1].set_ylim(0, 1.05)
    axes[1].set_ylabel("fraction (last third of the rounds)")
    axes[1].set_title("pseudo-labels (semi-supervised methods)")
    curves = result.extra.get("curves", {})
    for m, runs in curves.items():
        arr = np.asarray(runs, dtype=float)
        curve_with_band(axes[2], np.arange(1, arr.shape[1] + 1), arr.mean(0), arr.std(0), label=m)
    axes[2].set_xlabel("round")
    axes[2].set_ylabel("balanced test accuracy of the global model")
    axes[2].set_title("global accuracy per round")
    axes[2].legend(fontsize=6)
    return finish(fig, result, "FedLabel vs semi-supervised and supervised FedAvg baselines")
