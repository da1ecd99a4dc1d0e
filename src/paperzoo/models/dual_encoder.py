"""A toy CLIP: two MLP towers over frozen image features and frozen sentence embeddings.

The stand-in for OpenAI CLIP in this project's image-text reproductions (first DeGLA, Hu et al.,
ACM MM 2025): CLIP's weights are not available offline, so a small dual encoder on frozen
EfficientNet-Lite0 features (image) and all-MiniLM-L6-v2 embeddings (text) is pre-trained
contrastively on "general" data (:func:`pretrain_dual_encoder`, stage 1) and then fine-tuned by
the paper's method (stage 2). What it keeps from CLIP: two towers, L2-normalised embeddings, a
learnable logit scale ``s = exp(logit_scale)`` initialised at 1/0.07 and clamped to ``[1, 100]``
after every step, and the symmetric image-text InfoNCE loss.

:func:`multi_positive_clip_loss` is that loss with *multi-positive* targets: in a toy set with
duplicate captions, every column sharing the row's caption id is a target (uniform weights).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo._validation import Constraint, Interval, validate_params
from paperzoo.data.cache import cache_dir

if TYPE_CHECKING:
    from paperzoo.data.composite_scenes import CompositeScenes

__all__ = [
    "DualEncoder",
    "PretrainConfig",
    "clamp_logit_scale_",
    "multi_positive_clip_loss",
    "pretrain_dual_encoder",
    "pretrained_toy_clip",
]

MAX_LOGIT_SCALE = math.log(100.0)


class DualEncoder(nn.Module):
    """Image tower ``image_dim -> hidden -> GELU -> embed_dim`` and text tower
    ``text_dim -> hidden -> GELU -> embed_dim``, both L2-normalised, and a learnable
    ``logit_scale`` (log of the inverse temperature, initialised at ``log(1 / 0.07)``).

    ``forward(image_features, text_features)`` returns ``(image_emb, text_emb, scale)`` with
    ``scale = exp(logit_scale)`` (the already-exponentiated scale CLIP losses take).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "image_dim": [Interval(int, 1, math.inf, closed="left")],
        "text_dim": [Interval(int, 1, math.inf, closed="left")],
        "hidden": [Interval(int, 1, math.inf, closed="left")],
        "embed_dim": [Interval(int, 1, math.inf, closed="left")],
        "init_temperature": [Interval(float, 0.01, 1.0, closed="both")],
    }

    def __init__(
        self,
        image_dim: int = 2560,
        text_dim: int = 384,
        hidden: int = 512,
        embed_dim: int = 256,
        init_temperature: float = 0.07,
    ) -> None:
        super().__init__()
        params = {
            "image_dim": image_dim,
            "text_dim": text_dim,
            "hidden": hidden,
            "embed_dim": embed_dim,
            "init_temperature": init_temperature,
        }
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        self.config = params
        self.image_tower = nn.Sequential(nn.Linear(image_dim, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))
        self.text_tower = nn.Sequential(nn.Linear(text_dim, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings (N, embed_dim) of image features (N, image_dim)."""
        return F.normalize(self.image_tower(x), dim=-1)

    def encode_text(self, t: torch.Tensor) -> torch.Tensor:
        """Normalised text embeddings (M, embed_dim) of sentence embeddings (M, text_dim)."""
        return F.normalize(self.text_tower(t), dim=-1)

    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)``, differentiable."""
        return self.logit_scale.exp()

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.encode_image(image), self.encode_text(text), self.scale()


def clamp_logit_scale_(model: DualEncoder, max_value: float = MAX_LOGIT_SCALE) -> None:
    """Clamp ``model.logit_scale`` in place to ``[0, max_value]`` (CLIP does it after every step)."""
    with torch.no_grad():
        model.logit_scale.clamp_(0.0, max_value)


def multi_positive_clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor | float, caption_ids: torch.Tensor
) -> torch.Tensor:
    """Symmetric CLIP loss of a batch of (image, caption) pairs with multi-positive targets.

    Row ``i`` of ``scale * image_emb @ text_emb.T`` (and of its transpose) is scored by cross
    entropy against the uniform distribution over the columns ``j`` with
    ``caption_ids[j] == caption_ids[i]``; the loss is the mean of the two directions. With
    distinct caption ids it is exactly CLIP's loss.

    Args:
        image_emb: (N, d) normalised image embeddings.
        text_emb: (N, d) normalised text embeddings of the N captions.
        scale: the (exponentiated) logit scale.
        caption_ids: (N,) caption id of each pair.
    """
    if image_emb.dim() != 2 or text_emb.shape != image_emb.shape:
        raise ValueError(
            f"image_emb and text_emb must both have shape (N, d), got {tuple(image_emb.shape)} and "
            f"{tuple(text_emb.shape)}"
        )
    if image_emb.shape[0] == 0:
        raise ValueError("image_emb is empty: it has 0 rows")
    if caption_ids.shape != (image_emb.shape[0],):
        raise ValueError(f"caption_ids must have shape ({image_emb.shape[0]},), got {tuple(caption_ids.shape)}")
    logits = scale * image_emb @ text_emb.T
    same = (caption_ids[:, None] == caption_ids[None, :]).to(logits.dtype)
    target = same / same.sum(1, keepdim=True)  # symmetric, so it serves both directions
    i2t = -(target * logits.log_softmax(1)).sum(1).mean()
    t2i = -(target * logits.T.log_softmax(1)).sum(1).mean()
    return (i2t + t2i) / 2


@dataclass(frozen=True)
class PretrainConfig:
    """Stage 1 (the stand-in for CLIP's pre-training): ``steps`` AdamW steps on batches of
    ``per_kind`` composites + ``per_kind`` Fashion singles + ``per_kind`` digit singles of the
    CompositeScenes training split, multi-positive symmetric contrastive loss."""

    steps: int = 400
    per_kind: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    hidden: int = 512
    embed_dim: int = 256

    def __post_init__(self) -> None:
        validate_params(
            {
                "steps": [Interval(int, 1, math.inf, closed="left")],
                "per_kind": [Interval(int, 1, math.inf, closed="left")],
                "lr": [Interval(float, 0, math.inf, closed="neither")],
                "weight_decay": [Interval(float, 0, math.inf, closed="left")],
                "hidden": [Interval(int, 1, math.inf, closed="left")],
                "embed_dim": [Interval(int, 1, math.inf, closed="left")],
            },
            asdict(self),
            owner="PretrainConfig",
        )


def _stage1_batches(scenes: CompositeScenes, cfg: PretrainConfig, seed: int) -> torch.Tensor:
    """Row indices of every stage-1 batch, (steps, 3 * per_kind), drawn from ``seed``."""
    rng = np.random.default_rng([seed, 1])
    parts = [
        pool[rng.integers(0, len(pool), size=(cfg.steps, cfg.per_kind))]
        for pool in (scenes.train.indices(k) for k in ("composite", "fashion", "digit"))
    ]
    return torch.from_numpy(np.concatenate(parts, axis=1))


def pretrain_dual_encoder(
    scenes: CompositeScenes,
    seed: int,
    config: PretrainConfig | None = None,
    *,
    cache: bool = True,
    progress: bool = False,
) -> DualEncoder:
    """Stage-1 contrastive pre-training of a :class:`DualEncoder` on CompositeScenes; returns the
    model in eval mode.

    Deterministic given ``seed`` (initialisation and batches; one process, CPU). Driven by
    :func:`paperzoo.engine.fit` with a ``compute_loss`` that clamps the logit scale before each
    forward (the same as CLIP's clamp after each step) and is clamped once more at the end.
    With ``cache`` the state dict is stored in :func:`paperzoo.data.cache_dir` as
    ``toy-clip-stage1-<hash>.pt`` (``<hash>`` covers the data configuration, ``config``, ``seed``
    and the torch version) and reloaded by later calls.
    """
    from paperzoo.engine import TrainConfig, fit, make_loader, seed_everything

    cfg = config or PretrainConfig()
    if scenes.caption_embeddings is None:
        raise ValueError("scenes has no caption_embeddings: load it with text=True")
    key = json.dumps({"data": scenes.digest, "cfg": asdict(cfg), "seed": int(seed), "torch": torch.__version__})
    path = cache_dir() / f"toy-clip-stage1-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    seed_everything(seed)
    model = DualEncoder(scenes.train.features.shape[1], scenes.caption_embeddings.shape[1], cfg.hidden, cfg.embed_dim)
    if cache and path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            model.eval()
            return model
        except (OSError, RuntimeError, ValueError):
            pass  # a damaged entry: retrain
    feats = torch.from_numpy(scenes.train.features)
    caps = torch.from_numpy(scenes.train.caption_ids)
    text = torch.from_numpy(scenes.caption_embeddings)
    batches = _stage1_batches(scenes, cfg, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def compute_loss(m: nn.Module, batch: Any) -> torch.Tensor:
        idx = batch[0][0]
        clamp_logit_scale_(model)
        cid = caps[idx]
        v, t, s = m(feats[idx], text[cid])
        return multi_positive_clip_loss(v, t, s, cid)

    loader = make_loader(torch.utils.data.TensorDataset(batches), 1, shuffle=False)
    fit(model, None, loader, opt, TrainConfig(seed=seed, progress=progress, desc="stage 1"), compute_loss=compute_loss)
    clamp_logit_scale_(model)
    model.eval()
    if cache:
        from paperzoo.engine.checkpoint import save_checkpoint

        save_checkpoint(path, model.state_dict())
    return model


def pretrained_toy_clip(
    seed: int, scenes: CompositeScenes | None = None, config: PretrainConfig | None = None
) -> DualEncoder:
    """The stage-1 toy CLIP of ``seed`` on (default) CompositeScenes, cached on disk."""
    if scenes is None:
        from paperzoo.data.composite_scenes import load_composite_scenes

        scenes = load_composite_scenes()
    return pretrain_dual_encoder(scenes, seed, config)
