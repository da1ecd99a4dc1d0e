"""Input and feature mixup of Metrix (Venkataramanan et al., "It Takes Two to Tango: Mixup for Deep
Metric Learning", ICLR 2022): ``compute_loss(model, batch)`` procedures for :func:`paperzoo.engine.fit`.

Both return ``L_clean + w L_mix`` with the clean and mixed losses of a :class:`paperzoo.losses.MetrixLoss`
(its wrapped clean loss, its ``w``, its ``lam`` draw); the anchor of a mixed example is always the clean
embedding of the anchor.

* :class:`MetrixInputMixup`: mixes *inputs* (images) ``lam x_p + (1 - lam) x_n`` of the triples of
  :func:`paperzoo.losses.metrix.mix_pairs` with, as the official input variant, only the ``top_k = 1``
  hardest negative of each anchor (smallest clean distance), then embeds them (a second forward pass).
* :class:`MetrixFeatureMixup`: mixes an intermediate representation (the output of ``module`` inside the
  model) through :class:`FeatureMixupHook`, with every negative as the official feature variant; one
  forward pass carries the clean batch and the mixed rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from paperzoo._validation import validate_params
from paperzoo.losses.metrix import _PARAMETER_CONSTRAINTS, MetrixLoss, mix_pairs

__all__ = ["FeatureMixupHook", "MetrixFeatureMixup", "MetrixInputMixup"]


def _batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("batch must be (inputs, labels)")
    return batch[0], batch[1]


def _clean_dist(loss: MetrixLoss, emb: torch.Tensor) -> torch.Tensor:
    """Clean distances (smaller = closer) of a batch, for the hardest-negative choice."""
    with torch.no_grad():
        mat = loss.loss.distance(emb.detach())
    return -mat if loss.loss.distance.is_inverted else mat


class MetrixInputMixup(nn.Module):
    """Metrix with input mixup: ``compute_loss(model, (x, labels))``.

    Args:
        loss: the :class:`MetrixLoss` (clean loss, ``w``, ``lam`` / ``mix_alpha``).
        top_k: hardest negatives per anchor (official input variant: 1); None for all.
    """

    def __init__(self, loss: MetrixLoss, top_k: int | None = 1) -> None:
        super().__init__()
        if not isinstance(loss, MetrixLoss):
            raise TypeError(f"loss must be a MetrixLoss, got {type(loss).__name__}")
        validate_params(_PARAMETER_CONSTRAINTS, {"top_k": top_k}, owner=type(self).__name__)
        self.loss = loss
        self.top_k = top_k

    def forward(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, labels = _batch(batch)
        emb = model(x)
        clean = self.loss.loss(emb, labels)
        if self.loss.w == 0.0:
            return clean
        dist = _clean_dist(self.loss, emb) if self.top_k is not None else None
        a, p, n = mix_pairs(
            labels, top_k=self.top_k, clean_dist=dist, legacy_first_positive=self.loss.legacy_first_positive
        )
        if a.numel() == 0:
            return clean
        lam = self.loss.sample_lam()
        mixed_emb = model(lam * x[p] + (1.0 - lam) * x[n])
        mixed = self.loss.mixed_loss(emb[a], mixed_emb, lam, anchor_idx=a, num_anchors=emb.shape[0])
        return clean + self.loss.w * mixed


class FeatureMixupHook:
    """A forward hook on ``module`` that, inside :meth:`mixing`, appends mixed rows
    ``lam h[p] + (1 - lam) h[n]`` to the module's output ``h`` (B, ...), so the rest of the network
    embeds the clean batch (first B rows) and the mixed examples (next T rows) in one pass."""

    def __init__(self, module: nn.Module) -> None:
        self._mix: tuple[torch.Tensor, torch.Tensor, float] | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        if self._mix is None:
            return None
        p, n, lam = self._mix
        return torch.cat([output, lam * output[p] + (1.0 - lam) * output[n]])

    @contextmanager
    def mixing(self, pos: torch.Tensor, neg: torch.Tensor, lam: float) -> Iterator[None]:
        """Within the block, the hooked module's output gets the mixed rows appended."""
        self._mix = (pos, neg, float(lam))
        try:
            yield
        finally:
            self._mix = None

    def remove(self) -> None:
        self.handle.remove()


class MetrixFeatureMixup(nn.Module):
    """Metrix with feature mixup: ``compute_loss(model, (x, labels))`` where ``module`` is a
    sub-module of ``model`` (e.g. the backbone before the embedding layer) whose output is mixed.
    Row-wise layers after it are assumed (BatchNorm after the hook would see the mixed rows too)."""

    def __init__(self, loss: MetrixLoss, module: nn.Module) -> None:
        super().__init__()
        if not isinstance(loss, MetrixLoss):
            raise TypeError(f"loss must be a MetrixLoss, got {type(loss).__name__}")
        self.loss = loss
        self.hook = FeatureMixupHook(module)

    def forward(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, labels = _batch(batch)
        b = x.shape[0]
        a, p, n = mix_pairs(labels, legacy_first_positive=self.loss.legacy_first_positive)
        if self.loss.w == 0.0 or a.numel() == 0:
            return self.loss.loss(model(x), labels)
        lam = self.loss.sample_lam()
        with self.hook.mixing(p, n, lam):
            out = model(x)
        if out.shape[0] != b + a.numel():
            raise ValueError("the hooked module's output rows must map one-to-one to the model's output rows")
        emb, mixed_emb = out[:b], out[b:]
        clean = self.loss.loss(emb, labels)
        mixed = self.loss.mixed_loss(emb[a], mixed_emb, lam, anchor_idx=a, num_anchors=b)
        return clean + self.loss.w * mixed
