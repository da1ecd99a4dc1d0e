"""CompositeScenes: a toy, offline image-text set for compositional understanding.

The proxy for COCO + LLM-written hard negatives used by this project's reproduction of DeGLA
(Hu et al., "Decoupled Global-Local Alignment for Improving Compositional Understanding",
ACM MM 2025), also used by other image-text papers of the project. Everything is offline:

* **items**: Fashion-MNIST images (10 nouns: ``t-shirt`` ... ``ankle boot``) coloured by
  multiplying the grey image by one of 4 RGB colours (red, green, blue, yellow), placed at
  ``[2:30, 2:30]`` of a black 32x32 tile;
* **composites**: a 3x32x64 canvas with tile ``(c1, n1)`` on the left and ``(c2, n2)`` on the
  right (``c1 != c2``, ``n1 != n2``), caption ``"a {c1} {n1} to the left of a {c2} {n2}"``
  (1,080 distinct captions); training composites use Fashion-MNIST train images, test
  composites test images;
* **general single-object data** (the "pre-training domain", used to measure forgetting): one
  coloured item in a random half of the canvas: Fashion items with caption
  ``"a photo of a {c} {n}"`` and scikit-learn digits (8x8 upsampled bilinearly to 28x28; the first
  1,200 images for training, the other 597 for testing) with caption
  ``"a photo of a {c} number {w}"``; both sets of 40 captions are the zero-shot prompts;
* **negatives**: the five rewrite types of :class:`paperzoo.embeddings.compositional.CompositionalNegativeGenerator`
  on the composite captions (every negative of a composite is again one of the 1,080 captions,
  so a negative is a caption id);
* **features**: frozen ImageNet EfficientNet-Lite0 features of each canvas (ImageNet
  normalisation, ``extract_features`` of the 32x64 canvas is a 1280x1x2 map; both spatial
  columns are kept, 2,560-d = [left, right]), cached once on disk, standardised with the
  training composites' mean and std; text: all-MiniLM-L6-v2 normalised embeddings (384-d) of
  the 1,160 captions, cached once.

Caption ids: ``0 .. 1079`` composites (row-major over ``(c1, n1, c2, n2)`` among valid tuples),
``1080 .. 1119`` Fashion singles (``1080 + 10 c + n``), ``1120 .. 1159`` digit singles
(``1120 + 10 c + digit``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from paperzoo._validation import Constraint, Interval, validate_params
from paperzoo.data.cache import cache_dir, save_npy_atomic
from paperzoo.embeddings.compositional import NEGATIVE_TYPES, CompositionalNegativeGenerator

__all__ = [
    "CAPTION_TEMPLATE",
    "COLOURS",
    "COLOUR_RGB",
    "DIGIT_WORDS",
    "FEATURE_DIM",
    "KINDS",
    "NEGATIVE_TYPES",
    "NOUNS",
    "NUM_CAPTIONS",
    "NUM_COMPOSITE_CAPTIONS",
    "CompositeScenes",
    "CompositeScenesConfig",
    "SceneSplit",
    "caption_embeddings",
    "caption_texts",
    "composite_caption_ids",
    "composite_slots",
    "digit_caption_ids",
    "fashion_caption_ids",
    "load_composite_scenes",
    "negative_generator",
    "render_canvases",
]

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
COLOUR_RGB = np.array([[1.0, 0.15, 0.15], [0.15, 1.0, 0.15], [0.2, 0.4, 1.0], [1.0, 1.0, 0.15]], dtype=np.float32)
NOUNS: tuple[str, ...] = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAPTION_TEMPLATE = "a {a1} {n1} to the left of a {a2} {n2}"
FASHION_TEMPLATE = "a photo of a {c} {n}"
DIGIT_TEMPLATE = "a photo of a {c} number {w}"
#: ``kind`` codes of a canvas.
KINDS: tuple[str, ...] = ("composite", "fashion", "digit")
COMPOSITE, FASHION, DIGIT = 0, 1, 2
FEATURE_DIM = 2 * 1280
_FORMAT = 1  # bumped when the rendering or the feature layout changes

_NC, _NN = len(COLOURS), len(NOUNS)
_VALID = np.array(
    [(c1, n1, c2, n2) for c1 in range(_NC) for n1 in range(_NN) for c2 in range(_NC) for n2 in range(_NN)
     if c1 != c2 and n1 != n2],
    dtype=np.int64,
)  # fmt: skip
NUM_COMPOSITE_CAPTIONS = len(_VALID)  # 1080
_SLOT_TO_ID = np.full((_NC, _NN, _NC, _NN), -1, dtype=np.int64)
_SLOT_TO_ID[tuple(_VALID.T)] = np.arange(NUM_COMPOSITE_CAPTIONS)
FASHION_BASE = NUM_COMPOSITE_CAPTIONS
DIGIT_BASE = FASHION_BASE + _NC * _NN
NUM_CAPTIONS = DIGIT_BASE + _NC * 10  # 1160


def composite_caption_ids(slots: np.ndarray) -> np.ndarray:
    """Caption ids (N,) of composite slot rows ``(c1, n1, c2, n2)`` (N, 4); raises on invalid rows."""
    s = np.asarray(slots, dtype=np.int64)
    if s.ndim != 2 or s.shape[1] != 4:
        raise ValueError(f"slots must have shape (N, 4), got {s.shape}")
    ok = (s[:, [0, 2]] >= 0).all(1) & (s[:, [0, 2]] < _NC).all(1) & (s[:, [1, 3]] >= 0).all(1)
    ok &= (s[:, [1, 3]] < _NN).all(1)
    ids = np.full(len(s), -1, dtype=np.int64)
    ids[ok] = _SLOT_TO_ID[tuple(s[ok].T)]
    if (ids < 0).any():
        bad = int(np.flatnonzero(ids < 0)[0])
        raise ValueError(f"slots row {bad} = {s[bad].tolist()} is not a composite caption (needs c1 != c2, n1 != n2)")
    return ids


def composite_slots(caption_ids: np.ndarray) -> np.ndarray:
    """Slot rows ``(c1, n1, c2, n2)`` (N, 4) of composite caption ids in ``[0, 1080)``."""
    ids = np.asarray(caption_ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= NUM_COMPOSITE_CAPTIONS):
        raise ValueError(f"caption_ids must lie in [0, {NUM_COMPOSITE_CAPTIONS}) (composites)")
    return _VALID[ids]


def fashion_caption_ids(colour: np.ndarray, noun: np.ndarray) -> np.ndarray:
    """Caption ids of ``"a photo of a {c} {n}"``."""
    return FASHION_BASE + np.asarray(colour, dtype=np.int64) * _NN + np.asarray(noun, dtype=np.int64)


def digit_caption_ids(colour: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """Caption ids of ``"a photo of a {c} number {w}"``."""
    return DIGIT_BASE + np.asarray(colour, dtype=np.int64) * 10 + np.asarray(digit, dtype=np.int64)


@lru_cache(maxsize=1)
def _caption_texts() -> tuple[str, ...]:
    comp = CompositionalNegativeGenerator.render(_VALID, CAPTION_TEMPLATE, COLOURS, NOUNS)
    fash = [FASHION_TEMPLATE.format(c=c, n=n) for c in COLOURS for n in NOUNS]
    dig = [DIGIT_TEMPLATE.format(c=c, w=w) for c in COLOURS for w in DIGIT_WORDS]
    return tuple(comp + fash + dig)


def caption_texts() -> list[str]:
    """All 1,160 captions, indexed by caption id."""
    return list(_caption_texts())


def caption_embeddings(cache_key: str | None = "composite-scenes") -> np.ndarray:
    """all-MiniLM-L6-v2 normalised embeddings of :func:`caption_texts`, (1160, 384) float32, cached."""
    from paperzoo.models.text_encoders import minilm_embeddings

    return minilm_embeddings(caption_texts(), cache_key=cache_key)


def negative_generator() -> CompositionalNegativeGenerator:
    """The five-rule negative generator over this set's 4 colours and 10 nouns."""
    return CompositionalNegativeGenerator(_NC, _NN)


# --------------------------------------------------------------------------- config and rendering
_CONFIG_CONSTRAINTS: dict[str, list[Constraint]] = {
    **{
        k: [Interval(int, 1, math.inf, closed="left")]
        for k in (
            "n_train_composites",
            "n_test_composites",
            "n_train_fashion",
            "n_test_fashion",
            "n_train_digits",
            "n_test_digits",
        )
    },  # fmt: skip
    "digit_train_images": [Interval(int, 1, 1796, closed="both")],
    "seed": [Interval(int, 0, math.inf, closed="left")],
}
"""Fields of :class:`CompositeScenesConfig`."""


@dataclass(frozen=True)
class CompositeScenesConfig:
    """Sizes of CompositeScenes. The defaults are this project's: smaller than the first toy
    planned for DeGLA (8,000 / 1,500 composites, 4,000 / 1,500 Fashion singles and 3,000 / 1,000
    digit singles), to keep the one-off feature extraction near a CPU-minute."""

    n_train_composites: int = 5000
    n_test_composites: int = 1000
    n_train_fashion: int = 2500
    n_test_fashion: int = 1000
    n_train_digits: int = 2000
    n_test_digits: int = 1000
    digit_train_images: int = 1200
    seed: int = 0

    def __post_init__(self) -> None:
        validate_params(_CONFIG_CONSTRAINTS, asdict(self), owner="CompositeScenesConfig")

    def fingerprint(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


#: A small configuration for smoke runs and tests.
SMOKE_CONFIG = CompositeScenesConfig(
    n_train_composites=400, n_test_composites=200, n_train_fashion=200, n_test_fashion=120,
    n_train_digits=200, n_test_digits=120,
)  # fmt: skip


@dataclass
class _Spec:
    """What to draw on each canvas: kind, left/right item (source index, colour), caption id."""

    kind: np.ndarray  # (N,)
    src: np.ndarray  # (N, 2) source image index per half (-1: empty)
    pool: np.ndarray  # (N, 2) 0: fashion-train, 1: fashion-test, 2: digits
    colour: np.ndarray  # (N, 2) colour per half (-1: empty)
    caption: np.ndarray  # (N,)
    label: np.ndarray  # (N,) noun (fashion), digit (digit) or -1 (composite)
    slots: np.ndarray  # (N, 4) composite slots; singles (c, n, -1, -1)
    side: np.ndarray  # (N,) half of a single (0 left, 1 right), -1 for composites


def _pick_by_class(rng: np.random.Generator, y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """One random index of class ``classes[i]`` in ``y`` per row (vectorised)."""
    order = np.argsort(y, kind="stable")
    counts = np.bincount(y, minlength=int(classes.max()) + 1 if classes.size else 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    u = rng.random(len(classes))
    return order[starts[classes] + np.floor(u * counts[classes]).astype(np.int64)]


def _composites(rng: np.random.Generator, n: int, y: np.ndarray, pool: int) -> _Spec:
    cap = rng.integers(0, NUM_COMPOSITE_CAPTIONS, size=n)
    s = _VALID[cap]
    src = np.stack([_pick_by_class(rng, y, s[:, 1]), _pick_by_class(rng, y, s[:, 3])], 1)
    return _Spec(
        kind=np.full(n, COMPOSITE),
        src=src,
        pool=np.full((n, 2), pool),
        colour=s[:, [0, 2]],
        caption=cap,
        label=np.full(n, -1),
        slots=s.copy(),
        side=np.full(n, -1),
    )


def _singles(rng: np.random.Generator, n: int, kind: int, idx_pool: np.ndarray, y: np.ndarray, pool: int) -> _Spec:
    item = idx_pool[rng.integers(0, len(idx_pool), size=n)]
    colour = rng.integers(0, _NC, size=n)
    side = rng.integers(0, 2, size=n)
    label = y[item]
    src = np.full((n, 2), -1)
    col = np.full((n, 2), -1)
    src[np.arange(n), side] = item
    col[np.arange(n), side] = colour
    cap = fashion_caption_ids(colour, label) if kind == FASHION else digit_caption_ids(colour, label)
    slots = np.stack([colour, label, np.full(n, -1), np.full(n, -1)], 1)
    return _Spec(np.full(n, kind), src, np.full((n, 2), pool), col, cap, label, slots, side)


def _concat(specs: list[_Spec]) -> _Spec:
    return _Spec(*(np.concatenate([getattr(s, f) for s in specs]) for f in _Spec.__dataclass_fields__))


def render_canvases(
    items: list[np.ndarray], spec_src: np.ndarray, spec_pool: np.ndarray, colour: np.ndarray
) -> np.ndarray:
    """Canvases (N, 3, 32, 64) float32 in [0, 1]: half ``h`` shows ``items[pool][src]`` (28x28,
    [0, 1]) times ``COLOUR_RGB[colour]`` at ``[2:30, 2:30]`` of its 32x32 tile; ``src == -1`` is
    an empty (black) half. Vectorised over canvases."""
    n = len(spec_src)
    out = np.zeros((n, 3, 32, 64), dtype=np.float32)
    for h in range(2):
        for p, images in enumerate(items):
            rows = np.flatnonzero((spec_src[:, h] >= 0) & (spec_pool[:, h] == p))
            if rows.size == 0:
                continue
            grey = images[spec_src[rows, h]]  # (m, 28, 28)
            rgb = COLOUR_RGB[colour[rows, h]]  # (m, 3)
            out[rows, :, 2:30, 32 * h + 2 : 32 * h + 30] = rgb[:, :, None, None] * grey[:, None]
    return out


def _sources() -> list[np.ndarray]:
    from paperzoo.data.images import load_digits, load_fashion_mnist

    tr, te = load_fashion_mnist("train"), load_fashion_mnist("test")
    dg = load_digits()
    up = F.interpolate(torch.from_numpy(dg.x), size=(28, 28), mode="bilinear", align_corners=False)
    digits = up.clamp(0, 1).numpy()[:, 0]
    return [tr.x[:, 0], te.x[:, 0], digits, tr.y, te.y, dg.y]  # type: ignore[list-item]


def _specs(cfg: CompositeScenesConfig, src: list[np.ndarray]) -> tuple[_Spec, _Spec]:
    """The training and test canvases, drawn with ``default_rng(cfg.seed)``."""
    y_tr, y_te, y_dg = src[3], src[4], src[5]
    rng = np.random.default_rng(cfg.seed)
    dig_tr = np.arange(cfg.digit_train_images)
    dig_te = np.arange(cfg.digit_train_images, len(y_dg))
    train = _concat(
        [
            _composites(rng, cfg.n_train_composites, y_tr, 0),
            _singles(rng, cfg.n_train_fashion, FASHION, np.arange(len(y_tr)), y_tr, 0),
            _singles(rng, cfg.n_train_digits, DIGIT, dig_tr, y_dg, 2),
        ]
    )
    test = _concat(
        [
            _composites(rng, cfg.n_test_composites, y_te, 1),
            _singles(rng, cfg.n_test_fashion, FASHION, np.arange(len(y_te)), y_te, 1),
            _singles(rng, cfg.n_test_digits, DIGIT, dig_te, y_dg, 2),
        ]
    )
    return train, test


def _extract_columns(canvases: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """EfficientNet-Lite0 ``extract_features`` of 32x64 canvases, both columns: (N, 2560) float32."""
    from paperzoo.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, load_efficientnet_lite0

    model = load_efficientnet_lite0()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = np.empty((len(canvases), FEATURE_DIM), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, len(canvases), batch_size):
            b = torch.from_numpy(canvases[s : s + batch_size])
            fmap = model.extract_features((b - mean) / std)  # (B, 1280, 1, 2)
            out[s : s + len(b)] = fmap[:, :, 0, :].transpose(1, 2).reshape(len(b), FEATURE_DIM).numpy()
    return out


def _features(spec: _Spec, src: list[np.ndarray], tag: str, chunk: int = 2048) -> np.ndarray:
    """Raw (unstandardised) features of the canvases of ``spec``, cached by a fingerprint of the
    drawn items (their pixels included) and colours."""
    items = src[:3]
    h = hashlib.sha256(f"{_FORMAT}".encode())
    for a in (spec.src, spec.pool, spec.colour):
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    for p, images in enumerate(items):
        used = np.unique(spec.src[(spec.pool == p) & (spec.src >= 0)])
        h.update(np.round(images[used] * 255).astype(np.uint8).tobytes())
    path = cache_dir() / f"composite-scenes-effnet-{tag}-{h.hexdigest()[:16]}.npy"
    if path.is_file():
        try:
            feats = np.load(path, allow_pickle=False)
            if feats.shape == (len(spec.src), FEATURE_DIM):
                return feats
        except (OSError, ValueError):
            pass  # a damaged entry: recompute
    feats = np.empty((len(spec.src), FEATURE_DIM), dtype=np.float32)
    for s in range(0, len(spec.src), chunk):
        sl = slice(s, s + chunk)
        feats[sl] = _extract_columns(render_canvases(items, spec.src[sl], spec.pool[sl], spec.colour[sl]))
    save_npy_atomic(path, feats)
    return feats


# --------------------------------------------------------------------------- the data set
@dataclass
class SceneSplit:
    """The canvases of one split (composites, then Fashion singles, then digit singles).

    Attributes:
        features: (N, 2560) float32 image features, standardised with the training composites'
            mean and std.
        caption_ids: (N,) int64 caption id of each canvas (index into the caption table).
        kind: (N,) int64, 0 composite / 1 Fashion single / 2 digit single (:data:`KINDS`).
        slots: (N, 4) int64, ``(c1, n1, c2, n2)`` for composites, ``(c, class, -1, -1)`` for singles.
        label: (N,) int64 class of singles (noun or digit), -1 for composites.
        side: (N,) int64 half of a single (0 left, 1 right), -1 for composites.
    """

    features: np.ndarray
    caption_ids: np.ndarray
    kind: np.ndarray
    slots: np.ndarray
    label: np.ndarray
    side: np.ndarray

    def __len__(self) -> int:
        return len(self.caption_ids)

    def indices(self, kind: str) -> np.ndarray:
        """Row indices of the canvases of one kind (``"composite"``, ``"fashion"``, ``"digit"``)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return np.flatnonzero(self.kind == KINDS.index(kind))


@dataclass
class CompositeScenes:
    """CompositeScenes features, captions and negatives (see the module docstring).

    Attributes:
        train, test: the two :class:`SceneSplit` s.
        caption_texts: the 1,160 captions (index = caption id).
        caption_embeddings: (1160, 384) float32 MiniLM embeddings (unit norm), or None when
            loaded with ``text=False``.
        feature_mean, feature_std: (2560,) the standardisation applied to ``features``.
        config: the :class:`CompositeScenesConfig`.
    """

    train: SceneSplit
    test: SceneSplit
    caption_texts: list[str]
    caption_embeddings: np.ndarray | None
    feature_mean: np.ndarray
    feature_std: np.ndarray
    config: CompositeScenesConfig

    @property
    def digest(self) -> str:
        """A short fingerprint of the configuration (for cache keys built on this set)."""
        return hashlib.sha256(f"{_FORMAT}{self.config.fingerprint()}".encode()).hexdigest()[:16]

    def sample_negatives(
        self, caption_ids: np.ndarray, k: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``k`` hard-negative caption ids per composite caption, of ``k`` distinct types drawn at
        random (replace-adjective / replace-noun change slot 1 or 2 at random to an unused value).

        Returns:
            ``(neg_ids (N, k), type_ids (N, k))``, ``type_ids`` indexing :data:`NEGATIVE_TYPES`.
        """
        neg, types = negative_generator().sample(composite_slots(caption_ids), k, rng)
        return composite_caption_ids(neg.reshape(-1, 4)).reshape(neg.shape[:2]), types

    def test_negatives(self, caption_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Deterministic negatives per type: ``{type: neg_ids (N,)}`` (reshuffle ``(c2,n2,c1,n1)``,
        swap-noun ``(c1,n2,c2,n1)``, swap-adjective ``(c2,n1,c1,n2)``, replace-adjective/noun:
        slot 1 set to the lowest-index colour/noun not in the caption)."""
        gen, slots = negative_generator(), composite_slots(caption_ids)
        return {t: composite_caption_ids(gen.make(slots, t)) for t in NEGATIVE_TYPES}

    @staticmethod
    def zero_shot_prompts(domain: str) -> tuple[np.ndarray, np.ndarray]:
        """The 40 prompts of a single-object domain: ``(caption_ids (40,), class_of_prompt (40,))``
        (``"fashion"``: class = noun; ``"digit"``: class = digit)."""
        c, k = np.repeat(np.arange(_NC), 10), np.tile(np.arange(10), _NC)
        if domain == "fashion":
            return fashion_caption_ids(c, k), k
        if domain == "digit":
            return digit_caption_ids(c, k), k
        raise ValueError(f"domain must be 'fashion' or 'digit', got {domain!r}")


def load_composite_scenes(config: CompositeScenesConfig | None = None, text: bool = True) -> CompositeScenes:
    """Build (or load from the cache) CompositeScenes.

    The first call renders the canvases and extracts their EfficientNet-Lite0 features (about
    3-4 ms per canvas on one CPU thread; ``PAPERZOO_THREADS`` threads, default 1), caching them
    under :func:`paperzoo.data.cache_dir`;
    later calls only read the cache. Needs Fashion-MNIST, scikit-learn, the ``vision`` extra and
    (for ``text=True``) the ``text`` extra.
    """
    cfg = config or CompositeScenesConfig()
    if not isinstance(cfg, CompositeScenesConfig):
        raise TypeError(f"config must be a CompositeScenesConfig, got {type(cfg).__name__}")
    return _load(cfg, bool(text))


@lru_cache(maxsize=2)
def _load(cfg: CompositeScenesConfig, text: bool) -> CompositeScenes:
    from paperzoo.engine.parallel import limit_threads, unit_threads

    src = _sources()
    tr_spec, te_spec = _specs(cfg, src)
    # one thread (PAPERZOO_THREADS): on a shared 2-core machine more threads are several times slower
    with limit_threads(unit_threads()):
        f_tr, f_te = _features(tr_spec, src, "train"), _features(te_spec, src, "test")
        emb = caption_embeddings() if text else None
    comp = tr_spec.kind == COMPOSITE
    mean = f_tr[comp].mean(0)
    std = f_tr[comp].std(0) + 1e-6
    splits = [
        SceneSplit(((f - mean) / std).astype(np.float32), s.caption, s.kind, s.slots, s.label, s.side)
        for f, s in ((f_tr, tr_spec), (f_te, te_spec))
    ]
    return CompositeScenes(splits[0], splits[1], caption_texts(), emb, mean, std, cfg)
