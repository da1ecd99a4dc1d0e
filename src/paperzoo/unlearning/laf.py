"""Label-Agnostic Forgetting (LAF): unlearning without labels (Shen, Zhang, Zhao, Bialkowski, Chen
and Xu, "Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep Models", ICLR 2024).

The network is split into a feature extractor ``h`` (input -> representation ``e``) and a
classifier head ``g``. LAF never reads a label:

1. two small VAEs (:class:`EmbeddingVAE`) are fitted on the frozen representations, one on the
   whole training set (``vae_all``) and one on the forget set (``vae_forget``);
2. *extractor unlearning* (:func:`laf_extractor_unlearning_loss`): the extractor is moved so
   that remaining representations stay well reconstructed by ``vae_all`` while forget
   representations become badly reconstructed by ``vae_forget``, each per-sample squared error
   ``m`` entering through the bounded transform ``exp(m / (m + 1))``;
3. *representation alignment* (:func:`laf_representation_alignment_loss`): a contrastive loss
   keeps the new remaining representations close (cosine) to the original extractor's and
   pushes the new forget representations away from the original ones.

Steps 2 and 3 alternate every mini-batch with two Adam optimisers; the head is never updated.
With a few labels, LAF+R (:class:`LAFPlusR`, :func:`supervised_head_repair`) then fine-tunes
only the head with cross-entropy on labelled remaining samples.

Everything follows the official implementation (``ShaofeiShen768/LAF``): its VAE (sigmoid
decoder output, always-sampling encoder, KL weight 0.025), its alignment loss (the temperature
divides only the forget-side distances), its loop (``zip`` of the forget and remaining loaders,
so an epoch has ``ceil(|D_f| / batch)`` steps), and its hyper-parameters (:data:`LAF_PRESETS`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, check_labels, validate_params
from paperzoo.unlearning.base import Unlearner, UnlearningContext, UnlearningData

__all__ = [
    "LAF_PRESETS",
    "EmbeddingVAE",
    "LAFPlusR",
    "LAFSmallCNN",
    "LAFUnlearner",
    "SplitModel",
    "as_split_model",
    "compute_embeddings",
    "fit_embedding_vae",
    "laf_bounded_recon_term",
    "laf_extractor_unlearning_loss",
    "laf_representation_alignment_loss",
    "split_sequential",
    "supervised_head_repair",
    "vae_loss",
]

#: ``(task, model) -> hyper-parameters`` from the official ``hyperparameter.md``; ``task`` is
#: ``"data"`` (random data removal), ``"class"`` (class removal) or ``"noisy"`` (noisy-label
#: removal), ``model`` is ``"cnn"`` (MNIST / Fashion-MNIST) or ``"resnet"`` (CIFAR-10 / SVHN).
#: Batch size 32 and the VAE recipe (Adam 1e-3, 10 epochs, KL weight 0.025) are shared.
LAF_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("data", "cnn"): {"latent_dim": 8, "epochs": 20, "lr_ue": 5e-5, "lr_ra": 1e-4, "temperature": 5.0},
    ("data", "resnet"): {"latent_dim": 16, "epochs": 40, "lr_ue": 1e-5, "lr_ra": 4e-5, "temperature": 20.0},
    ("class", "cnn"): {"latent_dim": 8, "epochs": 20, "lr_ue": 5e-5, "lr_ra": 1e-4, "temperature": 20.0},
    ("class", "resnet"): {"latent_dim": 16, "epochs": 40, "lr_ue": 1e-5, "lr_ra": 5e-5, "temperature": 20.0},
    ("noisy", "cnn"): {"latent_dim": 8, "epochs": 20, "lr_ue": 5e-5, "lr_ra": 1e-4, "temperature": 20.0},
    ("noisy", "resnet"): {"latent_dim": 16, "epochs": 40, "lr_ue": 1e-5, "lr_ra": 4e-5, "temperature": 5.0},
}


# --------------------------------------------------------------------------- models
class SplitModel(nn.Module):
    """A classifier ``head(extractor(x))`` whose representation ``e = extractor(x)`` LAF edits.

    ``forward(x)`` returns the logits (so the model plugs into any classification protocol), or
    ``(logits, e)`` like the official model when ``return_embedding=True``; :meth:`forward_split`
    always returns both, :meth:`embed` the representation only.
    """

    def __init__(self, extractor: nn.Module, head: nn.Module, return_embedding: bool = False) -> None:
        super().__init__()
        self.extractor = extractor
        self.head = head
        self.return_embedding = bool(return_embedding)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)

    def forward_split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.extractor(x)
        return self.head(e), e

    def forward(self, x: torch.Tensor) -> Any:
        logits, e = self.forward_split(x)
        return (logits, e) if self.return_embedding else logits


class LAFSmallCNN(SplitModel):
    """The official CNN for 1x28x28 inputs: extractor ``conv(1->16, k5, p2) - ReLU - maxpool2 -
    conv(16->32, k5, p2) - ReLU - maxpool2 - flatten - Linear(1568, 256)`` (no activation after
    the last layer: ``e`` is its raw output) and head ``Linear(256, 128) - Linear(128, C)`` (two
    linear layers, no activation between, as in the official code)."""

    def __init__(self, n_classes: int = 10, return_embedding: bool = False) -> None:
        validate_params(
            {"n_classes": [Interval(int, 2, math.inf, closed="left")]}, {"n_classes": n_classes}, owner="LAFSmallCNN"
        )
        extractor = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 256),
        )
        head = nn.Sequential(nn.Linear(256, 128), nn.Linear(128, n_classes))
        super().__init__(extractor, head, return_embedding)


def split_sequential(model: nn.Sequential, split_index: int) -> SplitModel:
    """``model[:split_index]`` as the extractor and ``model[split_index:]`` as the head; the
    modules are shared with ``model`` (editing the split edits ``model``)."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"split_sequential: model must be an nn.Sequential, got {type(model).__name__}")
    validate_params(
        {"split_index": [Interval(int, 1, len(model) - 1, closed="both")]},
        {"split_index": split_index},
        owner="split_sequential",
    )
    return SplitModel(model[:split_index], model[split_index:])


class _InputOf(nn.Module):
    """The extractor of a model that is not split: ``model(x)`` runs and the input of its
    ``head`` module is returned (a forward pre-hook catches it; the gradient flows through)."""

    def __init__(self, model: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.model, self.head_ref = model, [head]  # a list: the head is not registered twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        caught: list[torch.Tensor] = []
        handle = self.head_ref[0].register_forward_pre_hook(lambda _m, args: caught.append(args[0]))
        try:
            self.model(x)
        finally:
            handle.remove()
        if len(caught) != 1:
            raise RuntimeError(f"the head module ran {len(caught)} times in one forward pass; LAF needs exactly once")
        return caught[0]


def as_split_model(model: nn.Module, head: str | None = None) -> SplitModel:
    """``model`` as a :class:`SplitModel` sharing its modules (editing the split edits ``model``).

    ``head`` names the head submodule (as in ``model.named_modules()``); None takes a
    :class:`SplitModel` as it is, a module with ``extractor`` and ``head`` attributes as those,
    and any other model's last ``nn.Linear`` as the head. For a named or last-linear head the
    extractor runs the whole model and returns the head's input, so the model's output must be
    the head's output (true of MLPs and of ``nn.Sequential`` classifiers ending in a linear layer).
    """
    if head is None:
        if isinstance(model, SplitModel):
            return model
        extractor, mod = getattr(model, "extractor", None), getattr(model, "head", None)
        if isinstance(extractor, nn.Module) and isinstance(mod, nn.Module):
            return SplitModel(extractor, mod)
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise TypeError(
                f"LAF needs the model split into a feature extractor and a head: pass a SplitModel, a module with "
                f"'extractor' and 'head' attributes, a model with a linear last layer, or head=<module name> "
                f"(got a {type(model).__name__} without nn.Linear)"
            )
        mod = linears[-1]
    else:
        found = dict(model.named_modules())
        if head not in found or head == "":
            raise ValueError(f"as_split_model: head must name a submodule of the model, got {head!r}")
        mod = found[head]
    return SplitModel(_InputOf(model, mod), mod)


@torch.no_grad()
def compute_embeddings(extractor: nn.Module, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``extractor(inputs)`` in batches, without gradients (the extractor's mode is left as is)."""
    if inputs.shape[0] == 0:
        return extractor(inputs)
    return torch.cat([extractor(inputs[i : i + batch_size]) for i in range(0, inputs.shape[0], batch_size)])


# --------------------------------------------------------------------------- VAE
class EmbeddingVAE(nn.Module):
    """The official representation VAE: encoder ``Linear(in, 128) - ReLU - Linear(128, 32) - ReLU``
    with two ``Linear(32, L)`` heads (mean and log-variance), decoder ``Linear(L, 32) - ReLU -
    Linear(32, 128) - ReLU - Linear(128, in)`` followed by ``output_activation``.

    The encoder always samples ``z = mu + sigma * eps``, also in eval mode, as the official code
    does; ``deterministic = True`` (for tests) uses ``z = mu``. ``output_activation="sigmoid"`` is
    the official decoder, which bounds reconstructions to (0, 1) although representations are
    unbounded (kept on purpose); ``None`` is the ablation without it.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "in_dim": [Interval(int, 1, math.inf, closed="left")],
        "latent_dim": [Interval(int, 1, math.inf, closed="left")],
        "output_activation": [Options(("sigmoid",)), None],
    }

    def __init__(
        self,
        in_dim: int = 256,
        latent_dim: int = 8,
        hidden: tuple[int, ...] = (128, 32),
        output_activation: str | None = "sigmoid",
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {"in_dim": in_dim, "latent_dim": latent_dim, "output_activation": output_activation},
            owner="EmbeddingVAE",
        )
        hidden = tuple(hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"EmbeddingVAE: hidden must be a non-empty tuple of positive ints, got {hidden!r}")
        dims = [in_dim, *hidden]
        enc: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*enc)
        self.mu = nn.Linear(hidden[-1], latent_dim)
        self.log_var = nn.Linear(hidden[-1], latent_dim)
        back = [latent_dim, *hidden[::-1], in_dim]
        dec: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(back[:-1], back[1:])):
            dec.append(nn.Linear(a, b))
            if i < len(back) - 2:
                dec.append(nn.ReLU())
        if output_activation == "sigmoid":
            dec.append(nn.Sigmoid())
        self.decoder = nn.Sequential(*dec)
        self.in_dim, self.latent_dim, self.output_activation = in_dim, latent_dim, output_activation
        self.deterministic = False

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(recon, z, mu, sigma)`` for representations ``e`` (B, in_dim)."""
        h = self.encoder(e)
        mu = self.mu(h)
        sigma = torch.exp(0.5 * self.log_var(h))
        z = mu if self.deterministic else mu + sigma * torch.randn_like(sigma)
        return self.decoder(z), z, mu, sigma


def vae_loss(
    recon: torch.Tensor, e: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, kld_weight: float = 0.025
) -> torch.Tensor:
    """The official VAE loss: ``mean_i ||recon_i - e_i||^2 + kld_weight * mean_i sum_k
    -1/2 (log(sigma_ik^2 + 1e-8) + 1 - mu_ik^2 - sigma_ik^2)``."""
    recon_term = (recon - e).pow(2).sum(1).mean()
    var = sigma.pow(2)
    kld = (-0.5 * (torch.log(var + 1e-8) + 1 - mu.pow(2) - var)).sum(1).mean()
    return recon_term + kld_weight * kld


_FIT_CONSTRAINTS: dict[str, list[Any]] = {
    "latent_dim": [Interval(int, 1, math.inf, closed="left")],
    "epochs": [Interval(int, 0, math.inf, closed="left")],
    "lr": [Interval(float, 0, math.inf, closed="left")],
    "batch_size": [Interval(int, 1, math.inf, closed="left")],
    "kld_weight": [Interval(float, 0, math.inf, closed="left")],
}


def fit_embedding_vae(
    embeddings: torch.Tensor,
    latent_dim: int = 8,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 32,
    kld_weight: float = 0.025,
    output_activation: str | None = "sigmoid",
    generator: torch.Generator | None = None,
) -> EmbeddingVAE:
    """Fit an :class:`EmbeddingVAE` on frozen representations ``embeddings`` (N, D) with the
    official recipe (Adam, shuffled batches, :func:`vae_loss`) and return it frozen in eval mode.

    The official code recomputes the representations of each batch with the frozen model in
    eval mode; computing them once (:func:`compute_embeddings`) gives the same values.
    Shuffling uses ``generator``; the VAE's initialisation and sampling use torch's global RNG.
    """
    validate_params(
        _FIT_CONSTRAINTS,
        {"latent_dim": latent_dim, "epochs": epochs, "lr": lr, "batch_size": batch_size, "kld_weight": kld_weight},
        owner="fit_embedding_vae",
    )
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"fit_embedding_vae: embeddings must be (N, D) with N >= 1, got {tuple(embeddings.shape)}")
    check_finite(embeddings, "embeddings")
    embeddings = embeddings.detach()
    vae = EmbeddingVAE(embeddings.shape[1], latent_dim, output_activation=output_activation).to(embeddings)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    vae.train()
    n = embeddings.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            e = embeddings[perm[i : i + batch_size]]
            recon, _, mu, sigma = vae(e)
            loss = vae_loss(recon, e, mu, sigma, kld_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    vae.eval()
    vae.requires_grad_(False)
    return vae


# --------------------------------------------------------------------------- LAF losses
def laf_bounded_recon_term(recon: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``sum_i exp(m_i / (m_i + 1))`` with ``m_i = ||recon_i - e_i||^2``: each term in [1, e),
    equal to 1 for a perfect reconstruction and increasing in the error."""
    if recon.shape != e.shape or e.ndim != 2:
        raise ValueError(
            f"laf_bounded_recon_term: recon and e must be (B, D) of the same shape, "
            f"got {tuple(recon.shape)} and {tuple(e.shape)}"
        )
    m = (recon - e).pow(2).sum(1)
    return torch.exp(m / (m + 1)).sum()


def laf_extractor_unlearning_loss(
    vae_all: nn.Module, vae_forget: nn.Module, e_r: torch.Tensor, e_f: torch.Tensor
) -> torch.Tensor:
    """The extractor-unlearning loss ``L_UE = sum_r phi(m_r^all) - sum_f phi(m_f^forget)``
    (sums over the batches, ``phi(m) = exp(m / (m + 1))``): reconstruction errors of the remaining
    representations under ``vae_all`` and of the forget representations under ``vae_forget``.
    Gradients flow through the (frozen) VAEs into the representations."""
    return laf_bounded_recon_term(vae_all(e_r)[0], e_r) - laf_bounded_recon_term(vae_forget(e_f)[0], e_f)


def laf_representation_alignment_loss(
    e_r: torch.Tensor,
    e_r_teacher: torch.Tensor,
    e_f: torch.Tensor,
    e_f_teacher: torch.Tensor,
    temperature: float = 20.0,
    form: str = "code",
) -> torch.Tensor:
    """The representation-alignment loss, with cosine distances ``c1_i = 1 - cos(e_r_i,
    e_r_teacher_i)`` (remaining) and ``c2_j = 1 - cos(e_f_j, e_f_teacher_j)`` (forget).

    ``form="code"`` (the official implementation): ``L_RA = sum_i log(exp(c1_i) / sum_j
    exp(c2_j / tau)) = sum_i c1_i - B_r * logsumexp_j(c2_j / tau)``; the temperature divides only
    the forget side. ``form="infonce"`` (ablation): ``-sum_i log(exp(cos_r_i) / sum_j
    exp(cos_f_j / tau))``. Both pull remaining representations towards the teacher's and push
    forget representations away from it.
    """
    validate_params(
        {"temperature": [Interval(float, 0, math.inf, closed="neither")], "form": [Options(("code", "infonce"))]},
        {"temperature": temperature, "form": form},
        owner="laf_representation_alignment_loss",
    )
    for name, a, b in (("e_r", e_r, e_r_teacher), ("e_f", e_f, e_f_teacher)):
        if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
            raise ValueError(
                f"laf_representation_alignment_loss: {name} and its teacher must be (B, D) of the same shape with "
                f"B >= 1, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
    cos_r = F.cosine_similarity(e_r, e_r_teacher, dim=1, eps=1e-12)
    cos_f = F.cosine_similarity(e_f, e_f_teacher, dim=1, eps=1e-12)
    b_r = e_r.shape[0]
    if form == "code":
        return (1 - cos_r).sum() - b_r * torch.logsumexp((1 - cos_f) / temperature, 0)
    return -cos_r.sum() + b_r * torch.logsumexp(cos_f / temperature, 0)


# --------------------------------------------------------------------------- unlearner
@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """torch's global RNG seeded with ``seed`` inside, and restored to the caller's state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _check_inputs(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"LAFUnlearner: {name} must be a non-empty (N, ...) tensor, got {shape}")
    check_finite(x, name)


class LAFUnlearner(Unlearner):
    """Label-Agnostic Forgetting (the paper's Algorithm; official code defaults). Reads only the
    inputs of the forget set, the remaining set and the training set, never a label.

    Args:
        latent_dim: VAE latent size ``L`` (8 for the CNN, 16 for the ResNet).
        vae_epochs, vae_lr, vae_batch_size, kld_weight: VAE recipe (10, 1e-3, 32, 0.025).
        epochs: unlearning epochs ``E``; one epoch is ``ceil(min(|D_f|, |D_r|) / batch_size)``
            steps (``zip`` of the forget and remaining loaders, as in the official loop).
        lr_ue, lr_ra: Adam learning rates of the extractor-unlearning and alignment steps.
        temperature: ``tau`` of the alignment loss.
        batch_size: mini-batch size of the forget and of the remaining batches (32).
        vae_fit_on: ``"all"`` fits ``vae_all`` on the whole training set (official code) or
            ``"remaining"`` on the remaining set only.
        train_mode_during_unlearning: False keeps the model in eval mode (BatchNorm running
            statistics) while unlearning, as the official code effectively does.
        output_activation: the VAE decoder's output (``"sigmoid"``, official, or None).
        ra_form: ``"code"`` (official alignment loss) or ``"infonce"``.
        reference_steps: None (official) or a step count: both learning rates are multiplied by
            ``reference_steps / (epochs * steps per epoch)`` so that (learning rate x steps)
            matches a run with that many steps; for scaled-down forget sets (see the card).
        head: the name of the head submodule, or None (see :func:`as_split_model`).
        seed: seeds the VAEs, the shuffling and the VAE sampling; None uses the context's seed.

    After :meth:`unlearn`, ``history`` holds the mean L_UE and L_RA of each epoch and ``steps``
    the number of optimiser steps of each kind.
    """

    uses_labels: ClassVar[bool] = False

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "latent_dim": [Interval(int, 1, math.inf, closed="left")],
        "vae_epochs": [Interval(int, 0, math.inf, closed="left")],
        "vae_lr": [Interval(float, 0, math.inf, closed="left")],
        "vae_batch_size": [Interval(int, 1, math.inf, closed="left")],
        "kld_weight": [Interval(float, 0, math.inf, closed="left")],
        "epochs": [Interval(int, 0, math.inf, closed="left")],
        "lr_ue": [Interval(float, 0, math.inf, closed="left")],
        "lr_ra": [Interval(float, 0, math.inf, closed="left")],
        "temperature": [Interval(float, 0, math.inf, closed="neither")],
        "batch_size": [Interval(int, 1, math.inf, closed="left")],
        "vae_fit_on": [Options(("all", "remaining"))],
        "train_mode_during_unlearning": [Options((False, True))],
        "output_activation": [Options(("sigmoid",)), None],
        "ra_form": [Options(("code", "infonce"))],
        "reference_steps": [Interval(int, 1, math.inf, closed="left"), None],
        "seed": [Interval(int, 0, math.inf, closed="left"), None],
    }

    def __init__(
        self,
        latent_dim: int = 8,
        vae_epochs: int = 10,
        vae_lr: float = 1e-3,
        vae_batch_size: int = 32,
        kld_weight: float = 0.025,
        epochs: int = 20,
        lr_ue: float = 5e-5,
        lr_ra: float = 1e-4,
        temperature: float = 20.0,
        batch_size: int = 32,
        vae_fit_on: str = "all",
        train_mode_during_unlearning: bool = False,
        output_activation: str | None = "sigmoid",
        ra_form: str = "code",
        reference_steps: int | None = None,
        head: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        params = {k: v for k, v in locals().items() if k in self._parameter_constraints}
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        if head is not None and not isinstance(head, str):
            raise ValueError(f"{type(self).__name__}: head must be a module name or None, got {head!r}")
        for k, v in params.items():
            setattr(self, k, v)
        self.head = head
        self.history: list[dict[str, float]] = []
        self.steps = 0

    @classmethod
    def preset(cls, task: str, model: str = "cnn", **overrides: Any) -> LAFUnlearner:
        """The official hyper-parameters of ``(task, model)`` (:data:`LAF_PRESETS`), with overrides."""
        if (task, model) not in LAF_PRESETS:
            raise ValueError(
                f"{cls.__name__}.preset: (task, model) must be one of {sorted(LAF_PRESETS)}, got {(task, model)!r}"
            )
        return cls(**{**LAF_PRESETS[(task, model)], **overrides})

    def steps_per_epoch(self, n_forget: int, n_retain: int) -> int:
        """Optimiser steps of each kind per epoch: the official ``zip`` stops at the shorter loader."""
        return math.ceil(min(n_forget, n_retain) / self.batch_size)

    def lr_scale(self, n_forget: int, n_retain: int) -> float:
        """The factor applied to both learning rates (1 unless ``reference_steps`` is set)."""
        steps = self.epochs * self.steps_per_epoch(n_forget, n_retain)
        return 1.0 if self.reference_steps is None or steps == 0 else self.reference_steps / steps

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        """Unlearn ``data``'s forget set from ``model`` (in place) from the inputs only."""
        seed = context.seed if self.seed is None else self.seed
        return self.unlearn_inputs(model, data.x_forget, data.x_retain, all_inputs=data.x_train, seed=seed)

    def unlearn_inputs(
        self,
        model: nn.Module,
        forget_inputs: torch.Tensor,
        retain_inputs: torch.Tensor,
        all_inputs: torch.Tensor | None = None,
        seed: int | None = None,
    ) -> nn.Module:
        """LAF on raw inputs: ``forget_inputs`` (D_f), ``retain_inputs`` (D_r) and ``all_inputs``
        (the training set D; default: both concatenated). Edits ``model``'s extractor in place
        and returns ``model`` in the mode it came in."""
        _check_inputs("forget_inputs", forget_inputs)
        _check_inputs("retain_inputs", retain_inputs)
        if all_inputs is None:
            all_inputs = torch.cat([forget_inputs, retain_inputs])
        _check_inputs("all_inputs", all_inputs)
        seed = (self.seed or 0) if seed is None else seed
        split = as_split_model(model, self.head)
        was_training = model.training
        self.history, self.steps = [], 0
        if self.epochs == 0:
            return model
        model.eval()
        try:
            with _seeded(seed):
                self._run(split, forget_inputs, retain_inputs, all_inputs, seed)
        finally:
            model.train(was_training)
        return model

    def _run(self, split: SplitModel, x_f: torch.Tensor, x_r: torch.Tensor, x_all: torch.Tensor, seed: int) -> None:
        extractor = split.extractor
        gen = torch.Generator().manual_seed(seed)
        fit_kw = {
            "epochs": self.vae_epochs,
            "lr": self.vae_lr,
            "batch_size": self.vae_batch_size,
            "kld_weight": self.kld_weight,
            "output_activation": self.output_activation,
            "generator": gen,
        }
        e_fit = compute_embeddings(extractor, x_all if self.vae_fit_on == "all" else x_r)
        vae_all = fit_embedding_vae(e_fit, self.latent_dim, **fit_kw)
        vae_forget = fit_embedding_vae(compute_embeddings(extractor, x_f), self.latent_dim, **fit_kw)

        teacher = copy.deepcopy(extractor).eval().requires_grad_(False)
        in_head = {id(p) for p in split.head.parameters()}
        params = [p for p in extractor.parameters() if p.requires_grad and id(p) not in in_head]
        scale = self.lr_scale(x_f.shape[0], x_r.shape[0])
        opt_ue = torch.optim.Adam(params, lr=self.lr_ue * scale)
        opt_ra = torch.optim.Adam(params, lr=self.lr_ra * scale)
        train_mode = self.train_mode_during_unlearning
        extractor.train(train_mode)
        n_steps = self.steps_per_epoch(x_f.shape[0], x_r.shape[0])
        b = self.batch_size
        # the frozen teacher is deterministic: its representations of every sample, computed once
        # when that is cheaper than once per batch
        cached = x_f.shape[0] + x_r.shape[0] <= 2 * b * n_steps * self.epochs
        t_f_all = compute_embeddings(teacher, x_f) if cached else None
        t_r_all = compute_embeddings(teacher, x_r) if cached else None

        def embed(xr: torch.Tensor, xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if train_mode:  # separate batches, as the official code (batch-norm statistics per split)
                return extractor(xr), extractor(xf)
            e = extractor(torch.cat([xr, xf]))  # eval mode: one pass, the same representations
            return e[: xr.shape[0]], e[xr.shape[0] :]

        for _ in range(self.epochs):
            perm_f = torch.randperm(x_f.shape[0], generator=gen)
            perm_r = torch.randperm(x_r.shape[0], generator=gen)
            sum_ue = sum_ra = 0.0
            for i in range(n_steps):
                idx_f, idx_r = perm_f[i * b : (i + 1) * b], perm_r[i * b : (i + 1) * b]
                xf, xr = x_f[idx_f], x_r[idx_r]
                e_r, e_f = embed(xr, xf)
                loss_ue = laf_extractor_unlearning_loss(vae_all, vae_forget, e_r, e_f)
                opt_ue.zero_grad(set_to_none=True)
                loss_ue.backward()
                opt_ue.step()
                if t_f_all is not None and t_r_all is not None:
                    t_r, t_f = t_r_all[idx_r], t_f_all[idx_f]
                else:
                    with torch.no_grad():
                        t_r, t_f = teacher(xr), teacher(xf)
                e_r, e_f = embed(xr, xf)
                loss_ra = laf_representation_alignment_loss(e_r, t_r, e_f, t_f, self.temperature, self.ra_form)
                opt_ra.zero_grad(set_to_none=True)
                loss_ra.backward()
                opt_ra.step()
                ue, ra = float(loss_ue.detach()), float(loss_ra.detach())
                if not (math.isfinite(ue) and math.isfinite(ra)):
                    raise RuntimeError(
                        f"LAFUnlearner diverged at epoch {len(self.history) + 1} (L_UE {ue}, L_RA {ra}) with learning "
                        f"rates {self.lr_ue * scale:g} / {self.lr_ra * scale:g}: lower lr_ue / lr_ra or reference_steps"
                    )
                sum_ue += ue
                sum_ra += ra
            self.history.append({"L_UE": sum_ue / n_steps, "L_RA": sum_ra / n_steps})
            self.steps += n_steps


# --------------------------------------------------------------------------- LAF+R
def supervised_head_repair(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 32,
    head: str | None = None,
    seed: int = 0,
) -> nn.Module:
    """LAF+R's supervised repair: fine-tune only the head with cross-entropy (Adam) on labelled
    remaining samples, the extractor frozen (its representations are computed once, in eval
    mode). Edits ``model`` in place and returns it in the mode it came in."""
    validate_params(
        {
            "epochs": [Interval(int, 0, math.inf, closed="left")],
            "lr": [Interval(float, 0, math.inf, closed="left")],
            "batch_size": [Interval(int, 1, math.inf, closed="left")],
        },
        {"epochs": epochs, "lr": lr, "batch_size": batch_size},
        owner="supervised_head_repair",
    )
    _check_inputs("inputs", inputs)
    check_labels(labels, inputs.shape[0], "labels")
    split = as_split_model(model, head)
    was_training = model.training
    model.eval()
    try:
        with _seeded(seed):
            e = compute_embeddings(split.extractor, inputs)
            opt = torch.optim.Adam(split.head.parameters(), lr=lr)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(epochs):
                perm = torch.randperm(e.shape[0], generator=gen)
                for i in range(0, e.shape[0], batch_size):
                    idx = perm[i : i + batch_size]
                    loss = F.cross_entropy(split.head(e[idx]), labels[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
    finally:
        model.train(was_training)
    return model


class LAFPlusR(LAFUnlearner):
    """LAF followed by the supervised head repair (LAF+R): the labels of a random
    ``labelled_fraction`` of the remaining set (never of the forget set) fine-tune the head.

    Args (besides :class:`LAFUnlearner`'s):
        labelled_fraction: share of the remaining set whose labels are available.
        repair_epochs, repair_lr, repair_batch_size: the head's fine-tuning (Adam, cross-entropy).
    """

    uses_labels: ClassVar[bool] = True

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **LAFUnlearner._parameter_constraints,
        "labelled_fraction": [Interval(float, 0, 1, closed="right")],
        "repair_epochs": [Interval(int, 0, math.inf, closed="left")],
        "repair_lr": [Interval(float, 0, math.inf, closed="left")],
        "repair_batch_size": [Interval(int, 1, math.inf, closed="left")],
    }

    def __init__(
        self,
        labelled_fraction: float = 0.1,
        repair_epochs: int = 5,
        repair_lr: float = 1e-3,
        repair_batch_size: int = 32,
        **laf: Any,
    ) -> None:
        super().__init__(**laf)
        params = {
            "labelled_fraction": labelled_fraction,
            "repair_epochs": repair_epochs,
            "repair_lr": repair_lr,
            "repair_batch_size": repair_batch_size,
        }
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        for k, v in params.items():
            setattr(self, k, v)

    def unlearn(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        """LAF on the inputs, then :meth:`repair` of the head."""
        return self.repair(super().unlearn(model, data, context), data, context)

    def labelled_indices(self, data: UnlearningData, seed: int) -> torch.Tensor:
        """The remaining-set samples whose labels the repair reads: a random ``labelled_fraction``
        (at least one), drawn from ``seed + 1``."""
        n_r = data.retain_idx.numel()
        k = max(1, round(self.labelled_fraction * n_r))
        return data.retain_idx[torch.randperm(n_r, generator=torch.Generator().manual_seed(seed + 1))[:k]]

    def repair(self, model: nn.Module, data: UnlearningData, context: UnlearningContext) -> nn.Module:
        """The supervised head repair alone (on a model LAF already edited)."""
        seed = context.seed if self.seed is None else self.seed
        idx = self.labelled_indices(data, seed)
        return supervised_head_repair(
            model,
            data.x[idx],
            data.y[idx],
            epochs=self.repair_epochs,
            lr=self.repair_lr,
            batch_size=self.repair_batch_size,
            head=self.head,
            seed=seed,
        )
