"""Reproduction of paper 23, "Adversarial Attacks against Closed-Source MLLMs via Feature Optimal
Alignment" (FOA-Attack; Jia et al., 2025, arXiv 2505.21494), scaled down (this project's
reproduction, docs/papers/23-foa-attack-mllm.md).

No CLIP surrogate and no multimodal model exists offline, so the black-box transfer setting is
rebuilt with small models on Fashion-MNIST (28x28 grey):

* surrogates (white-box; only their features are used): CNN-A and CNN-B (paperzoo ``ConvNet``
  of widths 16 and 12; tokens = the 7x7 cells of the last feature map, global = their mean) and
  ViT-4 (``TinyViT``, patch 4, 49 tokens; global = the class token);
* victims (black box, never differentiated): a residual CNN, an MLP and a ViT with patch 7 (16
  tokens) - architectures the surrogates do not share;
* each model is trained briefly per seed (AdamW, one-cycle lr, +-2 pixel shifts);
* pairs: test images with a target test image of another class; success for a model = it
  predicts for ``x_adv`` what it predicts for ``x_t`` (targeted transfer success, the stand-in
  for the paper's GPT-4o-judged attack success rate); the clean images' rate is the chance floor;
* methods: no attack (floor), AttackVLM-like (global cosine, no crops), FOA without crops,
  M-Attack-style (global cosine + random-resized crops of both images, uniform weights) and
  FOA (global + local OT + dynamic weights + crops); L-inf budget 64/255 (16/255 does nothing at
  this size), step 4/255; the victims are also measured behind an input-smoothing defence
  (3x3 box blur + 3-bit quantisation).

Units: one training run per (seed, model), then one attack per (seed, method) on that seed's
models (state dicts passed to the unit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.attacks.evaluation import InputSmoothingDefence, perturbation_norms, predict, targeted_transfer_success
from paperzoo.attacks.foa import ConvSurrogate, ViTSurrogate, foa_attack
from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.models import MLP, ConvNet, TinyViT

PAPER = 23
DATA: tuple[str, ...] = ("fashion-mnist",)
BUDGETS: tuple[str, ...] = ()

SURROGATES = ("CNN-A", "ViT-4", "CNN-B")
VICTIMS = ("ResCNN", "MLP", "ViT-7")
MODELS = SURROGATES + VICTIMS

CLEAN = "no attack (clean floor)"
ATTACKVLM = "global only, no crops (AttackVLM-like)"
FOA_NOCROP = "FOA, no crops"
MATTACK = "global + crops (M-Attack-style)"
FOA = "FOA + crops"
METHODS = (CLEAN, ATTACKVLM, FOA_NOCROP, MATTACK, FOA)
#: method -> foa_attack options (None: no attack)
OPTIONS: dict[str, dict[str, Any] | None] = {
    CLEAN: None,
    ATTACKVLM: {"local_weight": 0.0, "dynamic_weighting": False, "source_crop": False, "target_crop": False},
    FOA_NOCROP: {"source_crop": False, "target_crop": False},
    MATTACK: {"local_weight": 0.0, "dynamic_weighting": False},
    FOA: {},
}

VICTIM_MEAN, WHITE_MEAN, DEFENDED = "victim mean", "white-box mean", "defended victim mean"
L2 = "L2 of delta"
METRICS = [VICTIM_MEAN, *VICTIMS, WHITE_MEAN, DEFENDED, L2]


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    n_train: int
    epochs: int
    pairs: int
    steps: int
    eps: float = 64 / 255
    alpha: float = 4 / 255
    n_clusters: int = 5
    local_weight: float = 0.2
    crop_scale: tuple[float, float] = (0.5, 0.9)
    batch_size: int = 128
    lr: float = 2e-3
    defence_kernel: int = 3
    defence_bits: int = 3


FULL = Config(n_train=5000, epochs=2, pairs=80, steps=40)
SMOKE = Config(n_train=256, epochs=1, pairs=8, steps=3)


# --------------------------------------------------------------------------- models
class ResidualCNN(nn.Module):
    """The residual CNN victim: 5x5 stride-2 stem (width 24), a residual block at 14x14, a
    stride-2 stage to 48 channels with a residual block at 7x7, global pooling, linear head."""

    def __init__(self, width: int = 24, classes: int = 10) -> None:
        super().__init__()

        def conv(a: int, b: int, k: int = 3, s: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, k, s, k // 2, bias=False), nn.BatchNorm2d(b))

        w = width
        self.stem = nn.Sequential(conv(1, w, 5, 2), nn.ReLU())
        self.block1 = nn.Sequential(conv(w, w), nn.ReLU(), conv(w, w))
        self.down = nn.Sequential(conv(w, 2 * w, 3, 2), nn.ReLU())
        self.block2 = nn.Sequential(conv(2 * w, 2 * w), nn.ReLU(), conv(2 * w, 2 * w))
        self.head = nn.Linear(2 * w, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = F.relu(h + self.block1(h))
        h = self.down(h)
        h = F.relu(h + self.block2(h))
        return self.head(h.mean((2, 3)))


def build_model(name: str) -> nn.Module:
    """A fresh classifier of the named architecture (10 classes)."""
    if name == "CNN-A":
        return ConvNet(1, width=16, out_dim=10)
    if name == "CNN-B":
        return ConvNet(1, width=12, out_dim=10)
    if name == "ViT-4":
        return TinyViT(28, 4, 1, dim=48, depth=2, heads=4, out_dim=10)
    if name == "ViT-7":
        return TinyViT(28, 7, 1, dim=48, depth=2, heads=4, out_dim=10)
    if name == "ResCNN":
        return ResidualCNN()
    if name == "MLP":
        return MLP(784, (256,), 10)
    raise KeyError(name)


def surrogate(name: str, model: nn.Module) -> nn.Module:
    """The feature encoder the attack uses: (global, tokens) of a trained surrogate."""
    if isinstance(model, TinyViT):
        return ViTSurrogate(model)
    assert isinstance(model, ConvNet)
    return ConvSurrogate(model.features[:-2])  # drop global pooling + flatten: the 7x7 map


def _shift(x: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Random +-``max_shift`` pixel translation of each image (zero padding)."""
    b, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (b,))
    dy = torch.randint(0, 2 * max_shift + 1, (b,))
    rows = (dy.view(b, 1) + torch.arange(h).view(1, h)).view(b, 1, h, 1).expand(b, 1, h, w)
    cols = (dx.view(b, 1) + torch.arange(w).view(1, w)).view(b, 1, 1, w).expand(b, 1, h, w)
    flat = pad.flatten(2)
    idx = (rows * (w + 2 * max_shift) + cols).flatten(2)
    return flat.gather(2, idx).view(b, 1, h, w)


# --------------------------------------------------------------------------- data
def pairs_of(cfg: Config, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source and target images of the attack pairs and their true classes."""
    from paperzoo.data import load_fashion_mnist

    test = load_fashion_mnist("test")
    rng = np.random.default_rng([seed, 23, 1])
    src = rng.choice(len(test), cfg.pairs, replace=False)
    order = rng.permutation(len(test))
    tgt = np.empty_like(src)
    pos = 0
    for i, s in enumerate(src):  # the next image of another class in a fixed random order
        while test.y[order[pos % len(order)]] == test.y[s]:
            pos += 1
        tgt[i] = order[pos % len(order)]
        pos += 1
    return test.x[src], test.x[tgt], test.y[src], test.y[tgt]


# --------------------------------------------------------------------------- units
def train_unit(unit: tuple[int, str, Config]) -> dict[str, Any]:
    """Train one model on this seed's training subset; its state dict and test accuracy."""
    seed, name, cfg = unit
    from paperzoo.data import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    rng = np.random.default_rng([seed, 23, 0])
    idx = rng.choice(len(train), cfg.n_train, replace=False)
    seed_everything(seed * 100 + MODELS.index(name))
    model = build_model(name)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    loader = make_loader(
        TensorDataset(torch.from_numpy(train.x[idx]), torch.from_numpy(train.y[idx])), cfg.batch_size, seed=seed
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * len(loader))

    def compute(m: nn.Module, batch: Any) -> torch.Tensor:
        return F.cross_entropy(m(_shift(batch[0])), batch[1])

    fit(model, None, loader, opt, TrainConfig(epochs=cfg.epochs, seed=seed, progress=False), scheduler=sched,
        compute_loss=compute)  # fmt: skip
    n_eval = 2000 if cfg is FULL else 200
    xe, ye = torch.from_numpy(test.x[:n_eval]), test.y[:n_eval]
    acc = float((predict(model, xe).numpy() == ye).mean())
    defended = nn.Sequential(InputSmoothingDefence(cfg.defence_kernel, cfg.defence_bits), model)
    acc_defended = float((predict(defended, xe).numpy() == ye).mean())
    return {"state": model.state_dict(), "acc": acc, "acc_defended": acc_defended}


def _load(name: str, state: dict[str, torch.Tensor]) -> nn.Module:
    model = build_model(name)
    model.load_state_dict(state)
    return model.eval()


def attack_unit(unit: tuple[int, str, Config, dict[str, dict[str, torch.Tensor]]]) -> dict[str, Any]:
    """Attack this seed's pairs with one method; success rates and perturbation norms."""
    seed, method, cfg, states = unit
    seed_everything(seed)
    models = {name: _load(name, states[name]) for name in MODELS}
    xs, xts, _, _ = pairs_of(cfg, seed)
    x, x_t = torch.from_numpy(xs), torch.from_numpy(xts)
    opts = OPTIONS[method]
    if opts is None:
        x_adv = x.clone()
    else:
        encoders = [surrogate(n, models[n]) for n in SURROGATES]
        x_adv = foa_attack(
            x, x_t, encoders, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps, crop_scale=cfg.crop_scale,
            seed=seed, n_clusters=cfg.n_clusters, **({"local_weight": cfg.local_weight} | opts),
        )  # fmt: skip
    defence = InputSmoothingDefence(cfg.defence_kernel, cfg.defence_bits)
    victims = [models[n] for n in VICTIMS]
    defended = [nn.Sequential(defence, v) for v in victims]
    whites = [models[n] for n in SURROGATES]
    vic = targeted_transfer_success(victims, x_adv, [predict(v, x_t) for v in victims])
    dfd = targeted_transfer_success(defended, x_adv, [predict(v, x_t) for v in defended])
    wb = targeted_transfer_success(whites, x_adv, [predict(v, x_t) for v in whites])
    norms = perturbation_norms(x_adv, x)
    values = {
        VICTIM_MEAN: float(vic.mean()),
        WHITE_MEAN: float(wb.mean()),
        DEFENDED: float(dfd.mean()),
        L2: norms["l2"],
    }
    values.update({n: float(v) for n, v in zip(VICTIMS, vic)})
    return {"values": values, "norms": norms, "white_box": dict(zip(SURROGATES, wb.tolist()))}


# --------------------------------------------------------------------------- run
def run(
    smoke: bool = False,
    seeds: Sequence[int] = (0, 1, 2),
    out_dir: str | Path = "results",
    progress: bool = True,
    jobs: int | None = None,
    budget: str | None = None,
) -> Result:
    """Run the reproduction over ``seeds`` (units in ``jobs`` processes), write its result
    files under ``out_dir/23-foa-attack-mllm/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    train_units = [(seed, name, cfg) for seed in rep.seeds for name in MODELS]
    trained = rep.map(train_unit, train_units, desc="#23 train")
    states = {seed: {} for seed in rep.seeds}
    acc: dict[str, list[float]] = {name: [] for name in MODELS}
    acc_defended: dict[str, list[float]] = {name: [] for name in VICTIMS}
    for (seed, name, _), out in zip(train_units, trained):
        states[seed][name] = out["state"]
        acc[name].append(out["acc"])
        if name in VICTIMS:
            acc_defended[name].append(out["acc_defended"])
    # the attacks first (longest), the clean floor last
    units = [(seed, method, cfg, states[seed]) for method in METHODS[::-1] for seed in rep.seeds]
    outputs = rep.map(attack_unit, units, desc="#23 attack")
    table = Table(METRICS, METHODS, baselines=[MATTACK])
    norms: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    for (seed, method, _, _), out in sorted(zip(units, outputs), key=lambda t: (METHODS.index(t[0][1]), t[0][0])):
        table.add(method, seed, out["values"])
        norms[method].append(out["norms"])
    claims = [
        Claim.greater(
            table,
            MATTACK,
            ATTACKVLM,
            VICTIM_MEAN,
            statement="random-resized crops raise transfer (global loss): victim mean, M-Attack-style > AttackVLM-like",
        ),
        Claim.greater(
            table,
            FOA,
            FOA_NOCROP,
            VICTIM_MEAN,
            statement="random-resized crops raise transfer (FOA loss): victim mean, FOA + crops > FOA without crops",
        ),
        Claim.less(
            table,
            MATTACK,
            ATTACKVLM,
            WHITE_MEAN,
            statement="crops lower white-box success (global loss): white-box mean, M-Attack-style < AttackVLM-like",
        ),
        Claim.greater(
            table,
            FOA,
            MATTACK,
            VICTIM_MEAN,
            statement="the paper's headline: FOA-Attack transfers better than M-Attack (victim mean, FOA + crops > "
            "M-Attack-style)",
        ),
    ]
    gain = table.paired(FOA, MATTACK, VICTIM_MEAN)
    mean_norms = {m: {k: float(np.mean([n[k] for n in v])) for k in v[0]} for m, v in norms.items()}
    result = rep.result(
        table,
        claims,
        setting=(
            f"Fashion-MNIST 28x28; per seed 6 models trained {cfg.epochs} epochs on {cfg.n_train} training images "
            "(AdamW, one-cycle lr 2e-3, +-2 px shifts): surrogates CNN-A (ConvNet w16, 7x7x64 tokens), ViT-4 "
            "(TinyViT patch 4, d48, 2 layers, 49 tokens), CNN-B (ConvNet w12); victims ResCNN, MLP 784-256-10, "
            f"ViT-7 (patch 7, 16 tokens); {cfg.pairs} pairs per seed (target of another class); I-FGSM "
            f"eps {cfg.eps * 255:.0f}/255, alpha {cfg.alpha * 255:.0f}/255, {cfg.steps} steps; FOA K={cfg.n_clusters}"
            f" clusters, lambda={cfg.local_weight}, OT eps 0.1 (official Sinkhorn), dynamic weights (previous-step "
            f"ratio, T=1); crops scale {cfg.crop_scale} on both images; success = model(x_adv) == model(x_t); "
            f"defence: {cfg.defence_kernel}x{cfg.defence_kernel} box blur + {cfg.defence_bits}-bit quantisation in "
            "front of each victim"
        ),
        scale_note=(
            "small Fashion-MNIST classifiers stand in for CLIP surrogates and black-box MLLMs; targeted class "
            "transfer stands in for GPT-4o-judged caption similarity; eps 64/255 instead of 16/255 (no effect at "
            f"28x28), {cfg.steps} steps instead of 300, {cfg.pairs} pairs per seed instead of 100 images"
        ),
        notes=(
            "Clean test accuracy per model (mean over seeds): "
            + ", ".join(f"{n} {np.mean(a):.3f}" for n, a in acc.items())
            + ". Victims' clean accuracy behind the input-smoothing defence: "
            + ", ".join(f"{n} {np.mean(a):.3f}" for n, a in acc_defended.items())
            + ". FOA - M-Attack-style victim mean per seed: "
            + ", ".join(f"{g:+.3f}" for g in gain)
            + ". Mean perturbation norms (L-inf / L2 / L1): "
            + "; ".join(f"{m}: {v['linf']:.3f} / {v['l2']:.2f} / {v['l1']:.1f}" for m, v in mean_norms.items())
            + ". The defended-victim column is the same attack measured against victims behind the input-smoothing "
            "defence (the attack does not adapt to it)."
        ),
        highlight=(FOA, MATTACK, VICTIM_MEAN),
        extra={"accuracy": acc, "accuracy_defended": acc_defended, "norms": mean_norms},
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Targeted success per victim and on average, white-box and defended success."""
    fig, axes = subplots(2, width=6.5, height=4.8, width_ratios=[1.4, 1.0])
    grouped_bars(axes[0], result.table, [VICTIM_MEAN, *VICTIMS], ylabel="targeted success (mean ± std over seeds)",
                 title="transfer to held-out victims")  # fmt: skip
    axes[0].legend(fontsize=7, loc="upper left")
    grouped_bars(axes[1], result.table, [WHITE_MEAN, DEFENDED], ylabel="targeted success",
                 title="white-box surrogates / defended victims")  # fmt: skip
    return finish(fig, result, "FOA vs M-Attack-style transfer attacks")
