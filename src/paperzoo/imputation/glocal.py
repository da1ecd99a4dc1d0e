"""Glocal-IB: the global alignment objective of "Glocal Information Bottleneck for Time Series
Imputation" (Yang, Zhang, Zhang, Yu & Ding, NeurIPS 2025, arXiv:2510.04910), as a plug-in for any
PyPOTS imputation model.

Deep imputers are trained with point-wise reconstruction losses only (the *local* signal). Glocal-IB
adds a *global alignment* loss: the encoder representation of the masked input, passed through a small
projection head, is pulled towards the stop-gradient representation of the complete (originally observed)
input of the same window, so that representations under missingness keep the global structure of the
series. The paper motivates it as a tractable surrogate of the mutual-information term of an information
bottleneck; the official code implements no compression (KL) term for SAITS / TCN / TimesNet / DLinear,
and neither does this module.

This is a thin layer over PyPOTS 1.5: PyPOTS's model cores compute the local loss (SAITS: ORT + MIT),
PyPOTS's data sets draw the training masks, its ``_train_model`` runs the epochs with best-validation
model selection, its ``impute`` / metrics evaluate. What is new here:

* :func:`global_alignment_loss`: the alignment losses of the official ``align_loss.py`` - ``"cos_time"``
  (the official default ``contras_2``: ``1 - mean_{b,d} cos_t(P_obs[b, :, d], sg(Z_ori)[b, :, d])``, the
  cosine taken along the time axis), ``"infonce_time"`` (``contras_1``: InfoNCE across the time steps of
  one window, temperature 1, with the official class axis) and ``"cos_feature"`` (cosine over the latent
  channels per time step, a variant that is not in the official code);
* :class:`AlignmentProjection`: the projection head ``Linear(D, D) -> ReLU -> Linear(D, D)``, on the
  masked side only;
* :class:`GlocalIBCore`: wraps any PyPOTS ``ModelCore``. A forward hook captures the representation
  ``Z`` (a module's output or input); in training with ``calc_criterion=True`` it runs the base model
  once more, without gradients, on the complete view ``(X_ori, complete mask)``, stops that pass as soon
  as ``Z_ori`` is captured, and adds ``align_weight * L_align`` to ``results["loss"]``. Validation and
  inference are the base model's own forward (one view, no head);
* :func:`glocal_wrap`, :class:`GlocalSAITS`, :class:`GlocalTCN`: put the core into a PyPOTS imputer;
* :func:`latent_alignment_report`: how close the representations of masked and complete windows are
  (time-axis and feature-axis cosines, linear CKA), the paper's "distorted latent" diagnosis.

Randomness: the projection head is initialised, and the complete view's dropout drawn, from forks of
PyTorch's RNG, so the masks that PyPOTS's loader draws and the masked pass's dropout are exactly those of
the plain model under the same seed; with ``align_weight = 0`` no extra pass runs and training is
bit-identical to the plain PyPOTS model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Interval, Options, check_finite, validate_params
from paperzoo.data.timeseries import check_windows, quiet_stdout

__all__ = [
    "ALIGN_TYPES",
    "AlignmentProjection",
    "GlocalIBCore",
    "GlocalSAITS",  # noqa: F822 - built on first access by the module's __getattr__
    "GlocalTCN",  # noqa: F822
    "global_alignment_loss",
    "glocal_wrap",
    "latent_alignment_report",
]

#: the alignment losses: official default, official InfoNCE variant, feature-axis variant (not official)
ALIGN_TYPES = ("cos_time", "infonce_time", "cos_feature")
COMPLETE_VIEW_MASKS = ("all_ones", "observed")

_LOSS_CONSTRAINTS = {"kind": [Options(ALIGN_TYPES)], "eps": [Interval(float, 0, math.inf, closed="neither")]}


# --------------------------------------------------------------------------- the loss
def _check_pair(p_obs: torch.Tensor, z_ori: torch.Tensor) -> None:
    for name, t in (("p_obs", p_obs), ("z_ori", z_ori)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (B, T, D)")
        if t.dim() != 3:
            raise ValueError(f"{name} must have shape (B, T, D), got {tuple(t.shape)}")
    if p_obs.shape != z_ori.shape:
        raise ValueError(f"z_ori must have the shape of p_obs {tuple(p_obs.shape)}, got {tuple(z_ori.shape)}")
    if p_obs.shape[0] == 0:
        raise ValueError("empty batch: p_obs has 0 windows")
    check_finite(p_obs, "p_obs")
    check_finite(z_ori, "z_ori")


def global_alignment_loss(
    p_obs: torch.Tensor, z_ori: torch.Tensor, kind: str = "cos_time", eps: float = 1e-8
) -> torch.Tensor:
    """The global alignment loss between the projected masked view and the complete view.

    Args:
        p_obs: (B, T, D) projected representation of the masked windows, ``g(Z_obs)``.
        z_ori: (B, T, D) representation of the complete windows (the target: always detached here).
            For ``"infonce_time"`` pass the *projected* complete view ``g(Z_ori)``, as the official
            code does (:class:`GlocalIBCore` does so).
        kind: ``"cos_time"`` (official default: ``1 -`` the mean over (b, d) of the cosine along the
            time axis, as ``nn.CosineSimilarity(dim=1)`` on (B, T, D)); ``"infonce_time"`` (InfoNCE across
            the time steps of a window, temperature 1, vectors L2-normalised over D; the official
            ``CrossEntropyLoss`` on the (B, T, T) logits ``a b^T`` puts the class axis on dim 1, so for each
            complete-view step j the softmax runs over the masked-view steps i, positive i = j);
            ``"cos_feature"`` (``1 -`` the mean over (b, t) of the cosine over D).
        eps: the cosine's ``eps`` (PyTorch's ``cosine_similarity``).

    Returns:
        A scalar: in [0, 2] for the cosine kinds, >= 0 for InfoNCE.
    """
    validate_params(_LOSS_CONSTRAINTS, {"kind": kind, "eps": eps}, owner="global_alignment_loss")
    _check_pair(p_obs, z_ori)
    target = z_ori.detach()
    if kind == "cos_time":
        return 1.0 - F.cosine_similarity(p_obs, target, dim=1, eps=eps).mean()
    if kind == "cos_feature":
        return 1.0 - F.cosine_similarity(p_obs, target, dim=2, eps=eps).mean()
    a = F.normalize(p_obs, dim=2)
    b = F.normalize(target, dim=2)
    logits = a @ b.transpose(1, 2)  # (B, T_masked, T_complete); class axis = dim 1 (masked steps)
    labels = torch.arange(p_obs.shape[1], device=p_obs.device).expand(p_obs.shape[0], -1)
    return F.cross_entropy(logits, labels)


class AlignmentProjection(nn.Sequential):
    """The projection head ``Linear(D, D) -> ReLU -> Linear(D, D)`` (PyTorch's default init), applied
    to the masked view's representation only."""

    def __init__(self, dim: int) -> None:
        validate_params({"dim": [Interval(int, 1, math.inf, closed="left")]}, {"dim": dim}, owner="AlignmentProjection")
        super().__init__(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))


# --------------------------------------------------------------------------- the model core
class _StopForward(Exception):
    """Raised by the capture hook to end the complete-view pass once ``Z_ori`` is captured."""


def _rng_devices(t: torch.Tensor) -> list[torch.device]:
    return [t.device] if t.device.type == "cuda" else []


class GlocalIBCore(nn.Module):
    """A PyPOTS model core trained with the Glocal-IB objective ``L_local + align_weight * L_align``.

    Args:
        base: the PyPOTS model core (its ``forward(inputs, calc_criterion)`` computes the local loss).
        hook: dotted path (``base.get_submodule``) of the module whose output or input is ``Z``, a
            (B, T, dim) tensor (a tuple output contributes its first element).
        dim: D, the width of ``Z``.
        capture: ``"output"`` or ``"input"`` of the hooked module.
        align_weight: weight of the alignment term (0 = the plain model: no extra pass).
        align_type: one of :data:`ALIGN_TYPES` (``"cos_time"``, the official default).
        complete_view_mask: mask given with ``X_ori`` in the complete view: ``"all_ones"`` (the official
            code's choice, which also marks the data's own missing entries, zero-filled, as observed) or
            ``"observed"`` (``missing_mask + indicating_mask``: the entries observed in ``X_ori``).

    The hooked module must run once per forward of ``base``. Training results carry ``local_loss`` and
    ``align_loss`` besides ``loss``; :attr:`align_log` keeps the alignment loss of every training step.
    """

    _parameter_constraints = {
        "dim": [Interval(int, 1, math.inf, closed="left")],
        "capture": [Options(("output", "input"))],
        "align_weight": [Interval(float, 0, math.inf, closed="left")],
        "align_type": [Options(ALIGN_TYPES)],
        "complete_view_mask": [Options(COMPLETE_VIEW_MASKS)],
    }

    def __init__(
        self,
        base: nn.Module,
        hook: str,
        dim: int,
        *,
        capture: str = "output",
        align_weight: float = 1.0,
        align_type: str = "cos_time",
        complete_view_mask: str = "all_ones",
    ) -> None:
        super().__init__()
        params = {
            "dim": dim,
            "capture": capture,
            "align_weight": align_weight,
            "align_type": align_type,
            "complete_view_mask": complete_view_mask,
        }
        validate_params(self._parameter_constraints, params, owner="GlocalIBCore")
        if not isinstance(base, nn.Module):
            raise TypeError(f"GlocalIBCore: base must be a PyPOTS model core (nn.Module), got {type(base).__name__}")
        if not isinstance(hook, str):
            raise TypeError(f"GlocalIBCore: hook must be a dotted module path (str), got {type(hook).__name__}")
        try:
            base.get_submodule(hook)
        except AttributeError as err:
            raise ValueError(f"GlocalIBCore: hook {hook!r} is not a submodule of {type(base).__name__}") from err
        self.base = base
        self.hook, self.dim, self.capture = hook, dim, capture
        self.align_weight, self.align_type, self.complete_view_mask = (
            float(align_weight),
            align_type,
            complete_view_mask,
        )
        # the head's init and the complete view's RNG stream come from forks: the caller's RNG stream
        # (PyPOTS's loader masks, the masked pass's dropout) stays exactly that of the plain model
        with torch.random.fork_rng(devices=[]):
            self.head = AlignmentProjection(dim)
            self._view_seed = int(torch.randint(0, 2**62, (1,)).item())
        self._step = 0
        self.align_log: list[float] = []

    def _register(self, sink: list[torch.Tensor], stop: bool) -> Any:
        module = self.base.get_submodule(self.hook)

        def keep(t: Any) -> None:
            sink.append(t[0] if isinstance(t, tuple) else t)
            if stop:
                raise _StopForward

        if self.capture == "output":
            return module.register_forward_hook(lambda _m, _i, out: keep(out))
        return module.register_forward_pre_hook(lambda _m, args: keep(args))

    def representation(self, inputs: Mapping[str, torch.Tensor], **kwargs: Any) -> torch.Tensor:
        """``Z`` of ``inputs`` (the base forward, stopped at the hooked module; no gradients, the
        current train/eval mode)."""
        sink: list[torch.Tensor] = []
        handle = self._register(sink, stop=True)
        try:
            with torch.no_grad():
                self.base(dict(inputs), calc_criterion=False, **kwargs)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not sink:
            raise RuntimeError(f"GlocalIBCore: the hooked module {self.hook!r} did not run in the base forward")
        return sink[0]

    def complete_view(self, inputs: Mapping[str, torch.Tensor], **kwargs: Any) -> torch.Tensor:
        """``Z_ori``: the representation of ``(X_ori, complete mask)``, under its own RNG stream."""
        x_ori = inputs["X_ori"]
        if self.complete_view_mask == "all_ones":
            mask = torch.ones_like(x_ori)
        else:
            mask = (inputs["missing_mask"] + inputs["indicating_mask"]).clamp_(max=1.0)
        view = {**inputs, "X": x_ori, "missing_mask": mask}
        with torch.random.fork_rng(devices=_rng_devices(x_ori)):
            torch.manual_seed(self._view_seed + self._step)
            return self.representation(view, **kwargs)

    def forward(self, inputs: dict, calc_criterion: bool = False, **kwargs: Any) -> dict:
        if not (self.training and calc_criterion and self.align_weight > 0):
            return self.base(inputs, calc_criterion=calc_criterion, **kwargs)
        sink: list[torch.Tensor] = []
        handle = self._register(sink, stop=False)
        try:
            results = self.base(inputs, calc_criterion=True, **kwargs)
        finally:
            handle.remove()
        if not sink:
            raise RuntimeError(f"GlocalIBCore: the hooked module {self.hook!r} did not run in the base forward")
        z_obs = sink[0]
        z_ori = self.complete_view(inputs, **kwargs)
        self._step += 1
        if self.align_type == "infonce_time":
            with torch.no_grad():
                z_ori = self.head(z_ori)
        align = global_alignment_loss(self.head(z_obs), z_ori, self.align_type)
        results["local_loss"] = results["loss"]
        results["align_loss"] = align
        results["loss"] = results["loss"] + self.align_weight * align
        self.align_log.append(float(align.detach()))
        return results


# --------------------------------------------------------------------------- PyPOTS imputers
def glocal_wrap(
    imputer: Any,
    hook: str,
    dim: int,
    *,
    capture: str = "output",
    align_weight: float = 1.0,
    align_type: str = "cos_time",
    complete_view_mask: str = "all_ones",
) -> Any:
    """Give a PyPOTS neural imputer (SAITS, TCN, TimesNet, ...) the Glocal-IB objective, in place.

    Replaces ``imputer.model`` by a :class:`GlocalIBCore` around it, sends it to the imputer's device
    and re-initialises the imputer's optimiser on the new parameters (the head's included). The imputer's
    ``fit`` / ``impute`` / ``predict`` are PyPOTS's own. Returns ``imputer``.
    """
    core = imputer.model
    if isinstance(core, nn.DataParallel):
        core = core.module
    if isinstance(core, GlocalIBCore):
        raise ValueError("glocal_wrap: imputer is already wrapped")
    imputer.model = GlocalIBCore(
        core,
        hook,
        dim,
        capture=capture,
        align_weight=align_weight,
        align_type=align_type,
        complete_view_mask=complete_view_mask,
    )
    imputer._send_model_to_given_device()
    imputer.optimizer.init_optimizer(imputer.model.parameters())
    return imputer


def _check_sets(train_set: Any, val_set: Any) -> None:
    for name, data in (("train_set", train_set), ("val_set", val_set)):
        if isinstance(data, Mapping):
            check_windows(data["X"], f"{name}['X']")
            if "X_ori" in data:
                check_windows(data["X_ori"], f"{name}['X_ori']")


def _imputer_classes() -> dict[str, type]:
    """GlocalSAITS and GlocalTCN, built on first use (importing PyPOTS takes seconds, and the loss, head
    and core above do not need it)."""
    with quiet_stdout():  # PyPOTS's dependency ai4ts prints a banner on import
        from pypots.imputation import SAITS, TCN

    class _Glocal:
        """What both imputers add to their PyPOTS base: :func:`glocal_wrap` on the module ``_z_module``
        (``Z`` captured as its input, width the base's attribute ``_z_width``) and the window check in ``fit``.
        All base arguments pass through; ``align_weight``, ``align_type`` and ``complete_view_mask`` are
        :class:`GlocalIBCore`'s."""

        _z_module: str
        _z_width: str

        def __init__(
            self,
            *args: Any,
            align_weight: float = 1.0,
            align_type: str = "cos_time",
            complete_view_mask: str = "all_ones",
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            glocal_wrap(
                self,
                self._z_module,
                getattr(self, self._z_width),
                capture="input",
                align_weight=align_weight,
                align_type=align_type,
                complete_view_mask=complete_view_mask,
            )

        def fit(self, train_set: Any, val_set: Any = None, file_type: str = "hdf5") -> None:
            _check_sets(train_set, val_set)
            super().fit(train_set, val_set, file_type=file_type)  # type: ignore[misc]

    class GlocalSAITS(_Glocal, SAITS):
        """PyPOTS SAITS trained with Glocal-IB. ``Z`` is the output of the first DMSA block (its last encoder
        layer, before ``reduce_dim_z``: captured as that layer's input), D = ``d_model``, as in the official
        code. All SAITS arguments pass through; ``align_weight``, ``align_type`` and ``complete_view_mask`` are
        :class:`GlocalIBCore`'s. ``fit`` also rejects windows with every value missing."""

        _z_module, _z_width = "encoder.reduce_dim_z", "d_model"

    class GlocalTCN(_Glocal, TCN):
        """PyPOTS TCN trained with Glocal-IB. ``Z`` is the TCN backbone's output (after the SAITS embedding
        and the temporal convolutions, as (B, T, d_hidden): captured as the input of ``output_projection``)."""

        _z_module, _z_width = "output_projection", "d_hidden"

    for cls in (GlocalSAITS, GlocalTCN):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return {"GlocalSAITS": GlocalSAITS, "GlocalTCN": GlocalTCN}


def __getattr__(name: str) -> Any:
    if name in ("GlocalSAITS", "GlocalTCN"):
        classes = _imputer_classes()
        globals().update(classes)
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- diagnosis
def _linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    x = x - x.mean(0)
    y = y - y.mean(0)
    num = (y.T @ x).square().sum()
    den = (x.T @ x).square().sum().sqrt() * (y.T @ y).square().sum().sqrt()
    return float(num / den.clamp_min(1e-30))


def _as_view(x: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    mask = (~torch.isnan(t)).to(torch.float32)
    return {"X": torch.nan_to_num(t), "missing_mask": mask}


def latent_alignment_report(
    model: Any,
    X_masked: np.ndarray,
    X_full: np.ndarray,
    *,
    hook: str | None = None,
    capture: str = "output",
    batch_size: int = 256,
    **forward_kwargs: Any,
) -> dict[str, float]:
    """How close the representations of masked windows are to those of the complete windows.

    Args:
        model: a PyPOTS imputer (its ``.model`` is used) or a model core; a :class:`GlocalIBCore` brings
            its own hook and head, any other core needs ``hook`` (and ``capture``).
        X_masked: (N, T, F) windows with the evaluation missingness (NaN = missing).
        X_full: (N, T, F) the same windows before it (NaN only where the data itself is missing); the
            complete view takes the entries observed in it.
        batch_size: windows per forward.

    Returns:
        ``cos_time`` (mean over windows and latent channels of the time-axis cosine between ``Z_obs`` and
        ``Z_ori``), ``cos_feature`` (mean over windows and steps of the cosine over D), ``cka`` (linear CKA
        between the (N*T, D) matrices) and, for a Glocal core, ``cos_time_head`` (``1 -`` the training
        alignment loss ``cos_time`` of ``g(Z_obs)`` and ``Z_ori``). Evaluated in eval mode, no gradients.
    """
    core = getattr(model, "model", model)
    if isinstance(core, nn.DataParallel):
        core = core.module
    X_masked = check_windows(X_masked, "X_masked")
    X_full = check_windows(X_full, "X_full")
    if X_masked.shape != X_full.shape:
        raise ValueError(f"X_full must have the shape of X_masked {X_masked.shape}, got {X_full.shape}")
    if isinstance(core, GlocalIBCore):
        probe, head = core, core.head
    else:
        if hook is None:
            raise ValueError("latent_alignment_report: hook is required for a model that is not Glocal-wrapped")
        with torch.random.fork_rng(devices=[]):
            probe = GlocalIBCore(core, hook, 1, capture=capture, align_weight=0.0)
        head = None
    was_training = core.training
    core.eval()
    device = next(core.parameters()).device
    zs_obs, zs_ori = [], []
    try:
        for start in range(0, X_masked.shape[0], batch_size):
            obs = {k: v.to(device) for k, v in _as_view(X_masked[start : start + batch_size]).items()}
            ori = {k: v.to(device) for k, v in _as_view(X_full[start : start + batch_size]).items()}
            zs_obs.append(probe.representation(obs, **forward_kwargs).float().cpu())
            zs_ori.append(probe.representation(ori, **forward_kwargs).float().cpu())
        z_obs, z_ori = torch.cat(zs_obs), torch.cat(zs_ori)
        out = {
            "cos_time": float(F.cosine_similarity(z_obs, z_ori, dim=1).mean()),
            "cos_feature": float(F.cosine_similarity(z_obs, z_ori, dim=2).mean()),
            "cka": _linear_cka(
                z_obs.reshape(-1, z_obs.shape[-1]).double(), z_ori.reshape(-1, z_ori.shape[-1]).double()
            ),
        }
        if head is not None:
            with torch.no_grad():
                p = head(z_obs.to(device)).float().cpu()
            out["cos_time_head"] = float(1.0 - global_alignment_loss(p, z_ori, "cos_time"))
    finally:
        core.train(was_training)
    return out
