"""Concept Transformer (CT) and Concept-Centric Transformer (CCT) heads with their explanations.

Hong, Park & Pavlic, "Concept-Centric Transformers: Enhancing Model Interpretability through
Object-Centric Concept Learning within a Shared Global Workspace", WACV 2024 (arXiv:2305.15775),
building on the Concept Transformer of Rigotti et al. (ICLR 2022).

A CT head classifies by cross-attending from the backbone's tokens (queries) to a small set of
*concept embeddings* (keys / values); the value path is projected straight to class logits, and
the attention over concepts is the explanation, which can be supervised (see
:mod:`paperzoo.losses.concept_explanation`). In CT the concept embeddings are free parameters,
the same for every input. CCT replaces them by a *shared working memory*: a slot-attention
module *writes* the input's features into a fixed number of concept slots (image-conditioned
concept vectors, plus a learned slot position embedding that fixes each slot's identity), and
the tokens then *read* from those slots ("broadcast"). Three memories, as in the authors' code:

* :class:`ConceptSlotAttention` (SA): slot attention with a random initial state, one GRU
  update per iteration, and no residual MLP (removed on purpose in the paper's code);
* :class:`ConceptISA`: implicit slot attention, learned initial queries, ``T`` iterations whose
  fixed point is detached before one last differentiable step (first-order implicit gradient);
* :class:`ConceptBOQSA`: BO-QSA (bi-level optimised query slot attention), learned initial
  queries and a straight-through estimator on the last iteration.

Streams: *global* concepts (queries = the global token, one explanation row of ``C`` weights per
input) and *spatial* concepts (queries = every patch token, one row per patch); their logits are
summed. :class:`ConceptTransformerHead` is the CT baseline (static concepts);
:class:`ConceptCentricHead` is CCT. Both return a :class:`ConceptOutput` with the logits and the
head-averaged attention maps, which are the explanations. :class:`CompactConvEncoder` is the
small convolutional-tokeniser transformer of the paper's MNIST model (``tokens(x) -> (e_g, E)``
like :meth:`paperzoo.models.vit.TinyViT.tokens`), and :class:`ConceptClassifier` joins a backbone
and a head.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import nn

from paperzoo._validation import Constraint, Interval, Options, check_finite, validate_params

__all__ = [
    "CompactConvEncoder",
    "ConceptBOQSA",
    "ConceptCentricHead",
    "ConceptClassifier",
    "ConceptCrossAttention",
    "ConceptISA",
    "ConceptOutput",
    "ConceptSlotAttention",
    "ConceptTransformerHead",
    "SequencePooling",
    "slot_attention_routing",
]

_POS_INT = [Interval(int, 1, math.inf, closed="left")]
_NONNEG_INT = [Interval(int, 0, math.inf, closed="left")]
_PROB = [Interval(float, 0, 1, closed="left")]
_EPS = [Interval(float, 0, 1, closed="left")]


class ConceptOutput(NamedTuple):
    """What a concept head returns.

    Attributes:
        logits: ``(B, K)`` class logits (the sum of the streams' logits).
        concept_attn: ``(B, C)`` attention of the global token over the ``C`` global concepts,
            averaged over heads (rows sum to 1 in eval mode), or ``None`` without global concepts.
        spatial_concept_attn: ``(B, L, C_s)`` attention of each patch token over the spatial
            concepts, averaged over heads, or ``None`` without spatial concepts.
    """

    logits: torch.Tensor
    concept_attn: torch.Tensor | None
    spatial_concept_attn: torch.Tensor | None


def _check_tokens(x: torch.Tensor, dim: int, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor of shape (B, N, {dim})")
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (B, N, {dim}), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one token, got shape {tuple(x.shape)}")
    check_finite(x, name)


# --------------------------------------------------------------------------- memories ("write")
def slot_attention_routing(
    keys: torch.Tensor, queries: torch.Tensor, values: torch.Tensor, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """One routing step of slot attention: slots compete for inputs, then average them.

    ``A = keys @ queries^T`` (``(B, N, C)``, keys already scaled), ``attn = softmax`` over the
    slots (last axis), ``W = (attn + eps) / sum_N (attn + eps)`` (weights normalised over the
    inputs) and ``U = W^T values`` (``(B, C, D)``). Returns ``(attn, U)``.
    """
    attn = torch.softmax(keys @ queries.transpose(-1, -2), dim=-1)
    weights = attn + eps
    weights = weights / weights.sum(dim=-2, keepdim=True)
    return attn, weights.transpose(-1, -2) @ values


class ConceptSlotAttention(nn.Module):
    """SA memory: slot attention without the residual MLP (``ConceptSlotAttention`` of the authors).

    Initial slots ``S0 = mu + exp(log_sigma) * z`` with ``z ~ N(0, I)`` drawn at every call (also
    in eval mode, as in the paper's code, so predictions are stochastic unless ``slots_init`` or
    ``generator`` is given); ``mu`` and ``log_sigma`` (``(1, 1, D)``, shared by all slots) are
    initialised with ``xavier_uniform_``. Per iteration: ``Q = q(LN(S))``, the routing of
    :func:`slot_attention_routing` with ``K = k(LN(X)) / sqrt(D)`` and ``V = v(LN(X))``, then
    ``S = GRUCell(U, S)``.

    Args:
        num_slots: number of concept slots ``C``.
        dim: slot and input width ``D``.
        num_iterations: routing iterations ``T`` (1 in every configuration of the paper).
        eps: the routing's ``eps``.

    Shape:
        ``forward(x (B, N, D)) -> (slots (B, C, D), attn (B, N, C))`` (``attn``: the last
        iteration's softmax over slots, before the ``eps`` renormalisation).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "num_slots": _POS_INT,
        "dim": _POS_INT,
        "num_iterations": _POS_INT,
        "eps": _EPS,
    }

    def __init__(self, num_slots: int, dim: int, num_iterations: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        params = {"num_slots": num_slots, "dim": dim, "num_iterations": num_iterations, "eps": eps}
        validate_params(self._parameter_constraints, params, owner="ConceptSlotAttention")
        self.num_slots, self.dim, self.num_iterations, self.eps = num_slots, dim, num_iterations, eps
        self.scale = dim**-0.5
        self.slots_mu = nn.Parameter(torch.empty(1, 1, dim))
        self.slots_log_sigma = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.xavier_uniform_(self.slots_mu)
        nn.init.xavier_uniform_(self.slots_log_sigma)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.norm_inputs = nn.LayerNorm(dim)
        self.norm_slots = nn.LayerNorm(dim)

    def initial_slots(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``mu + exp(log_sigma) * z`` for ``batch`` inputs: ``(batch, C, D)``."""
        mu = self.slots_mu
        z = torch.randn(batch, self.num_slots, self.dim, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + self.slots_log_sigma.exp() * z

    def forward(
        self, x: torch.Tensor, slots_init: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_tokens(x, self.dim, "x")
        b = x.shape[0]
        slots = self.initial_slots(b, generator) if slots_init is None else slots_init
        if slots.shape != (b, self.num_slots, self.dim):
            raise ValueError(f"slots_init must have shape {(b, self.num_slots, self.dim)}, got {tuple(slots.shape)}")
        x = self.norm_inputs(x)
        k, v = self.to_k(x) * self.scale, self.to_v(x)
        attn = x.new_empty(0)
        for _ in range(self.num_iterations):
            prev = slots
            attn, updates = slot_attention_routing(k, self.to_q(self.norm_slots(slots)), v, self.eps)
            slots = self.gru(updates.reshape(-1, self.dim), prev.reshape(-1, self.dim)).reshape(b, -1, self.dim)
        return slots, attn


class _QuerySlotMemory(nn.Module):
    """Shared parts of ISA and BO-QSA: bias-free ``q, k, v`` (``xavier_uniform_``), a GRU cell
    (``xavier_uniform_`` input weights, orthogonal hidden weights, zero biases) and the step."""

    _parameter_constraints: dict[str, list[Constraint]] = {
        "dim": _POS_INT,
        "num_iterations": _POS_INT,
        "eps": _EPS,
    }
    _norm_slots: bool = False

    def __init__(self, dim: int, num_iterations: int, eps: float) -> None:
        super().__init__()
        params = {"dim": dim, "num_iterations": num_iterations, "eps": eps}
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        self.dim, self.num_iterations, self.eps = dim, num_iterations, eps
        self.scale = dim**-0.5
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.norm_inputs = nn.LayerNorm(dim)
        self.norm_slots = nn.LayerNorm(dim) if self._norm_slots else nn.Identity()
        for lin in (self.to_q, self.to_k, self.to_v):
            nn.init.xavier_uniform_(lin.weight)
        nn.init.xavier_uniform_(self.gru.weight_ih)
        nn.init.orthogonal_(self.gru.weight_hh)
        nn.init.zeros_(self.gru.bias_ih)
        nn.init.zeros_(self.gru.bias_hh)

    def _step(self, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``S -> GRUCell(W V, S)``; returns the new slots and the attention ``(B, C, N)``."""
        b, c, d = slots.shape
        logits = self.to_q(self.norm_slots(slots)) @ k.transpose(-1, -2) * self.scale
        attn = torch.softmax(logits, dim=1)  # slots compete for each input
        weights = attn / (attn.sum(dim=-1, keepdim=True) + self.eps)
        new = self.gru((weights @ v).reshape(-1, d), slots.reshape(-1, d)).reshape(b, c, d)
        return new, attn

    def _inputs(self, x: torch.Tensor, slots_init: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_tokens(x, self.dim, "x")
        if slots_init.dim() != 3 or slots_init.shape[0] != x.shape[0] or slots_init.shape[-1] != self.dim:
            raise ValueError(f"slots_init must have shape ({x.shape[0]}, C, {self.dim}), got {tuple(slots_init.shape)}")
        x = self.norm_inputs(x)
        return self.to_k(x), self.to_v(x)


class ConceptISA(_QuerySlotMemory):
    """ISA memory: implicit slot attention (``ConceptISA`` of the authors).

    ``S* = f^T(S0)`` is iterated without gradient, then one last step ``f(stopgrad(S*))`` is
    taken with gradient: the first-order implicit-differentiation estimate, so parameters get
    gradient only through the last step (and through ``k(LN(X))``, ``v(LN(X))``). Step ``f``:
    ``Q = q(S)`` (no LayerNorm on the slots), ``attn = softmax_slots(Q K^T / sqrt(D))``,
    ``W = attn / (sum_N attn + eps)``, ``S' = GRUCell(W V, S)``.

    Shape:
        ``forward(x (B, N, D), slots_init (B, C, D)) -> (slots (B, C, D), attn (B, N, C))``;
        ``attn`` is the last step's attention, transposed to (inputs, slots) like
        :class:`ConceptSlotAttention` (the authors' module returns no attention).
    """

    def __init__(self, dim: int, num_iterations: int = 3, eps: float = 1e-8) -> None:
        super().__init__(dim, num_iterations, eps)

    def forward(self, x: torch.Tensor, slots_init: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self._inputs(x, slots_init)
        slots = slots_init
        with torch.no_grad():
            for _ in range(self.num_iterations):
                slots, _ = self._step(slots, k, v)
        slots, attn = self._step(slots.detach(), k, v)
        return slots, attn.transpose(-1, -2)


class ConceptBOQSA(_QuerySlotMemory):
    """BO-QSA memory: bi-level optimised query slot attention (``ConceptQuerySlotAttention``).

    ``T`` steps of ``f`` (as :class:`ConceptISA` but with LayerNorm on the slots before ``q``);
    the last step starts from ``stopgrad(S) + S0 - stopgrad(S0)``: the value of the iterated
    slots with the gradient of the initial queries (straight-through). The earlier iterations
    are detached (run without gradient).

    Shape:
        ``forward(x (B, N, D), slots_init (B, C, D)) -> (slots (B, C, D), attn (B, N, C))``
        (the last iteration's attention, transposed to (inputs, slots)).
    """

    _norm_slots = True

    def __init__(self, dim: int, num_iterations: int = 2, eps: float = 1e-8) -> None:
        super().__init__(dim, num_iterations, eps)

    def forward(self, x: torch.Tensor, slots_init: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self._inputs(x, slots_init)
        slots = slots_init
        with torch.no_grad():
            for _ in range(self.num_iterations - 1):
                slots, _ = self._step(slots, k, v)
        slots = slots.detach() + slots_init - slots_init.detach()
        slots, attn = self._step(slots, k, v)
        return slots, attn.transpose(-1, -2)


# --------------------------------------------------------------------------- read-out ("broadcast")
class ConceptCrossAttention(nn.Module):
    """Tokens read from concepts; the value path goes straight to class logits.

    ``Q = W_q x``, ``[K; V] = W_kv c`` (bias-free), ``alpha = softmax_C(Q K^T / sqrt(D/H))`` per
    head, attention dropout on ``alpha``, ``out = W_o concat_h(alpha V)`` (``W_o: D -> K`` with
    bias) and projection dropout. The returned attention is the *post-dropout* ``alpha`` (the
    tensor used in the value product, as in the Concept Transformer code): in training some
    entries are zeroed and the rest scaled by ``1 / (1 - p)``; in eval mode it is the softmax.

    Shape:
        ``forward(x (B, Nq, D), concepts (B or 1, C, D)) -> (out (B, Nq, K), attn (B, H, Nq, C))``.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "dim": _POS_INT,
        "n_outputs": _POS_INT,
        "num_heads": _POS_INT,
        "attention_dropout": _PROB,
        "projection_dropout": _PROB,
    }

    def __init__(
        self,
        dim: int,
        n_outputs: int,
        num_heads: int = 2,
        attention_dropout: float = 0.1,
        projection_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        params = {
            "dim": dim,
            "n_outputs": n_outputs,
            "num_heads": num_heads,
            "attention_dropout": attention_dropout,
            "projection_dropout": projection_dropout,
        }
        validate_params(self._parameter_constraints, params, owner="ConceptCrossAttention")
        if dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide dim ({dim})")
        self.dim, self.num_heads = dim, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.attn_drop = nn.Dropout(attention_dropout)
        self.proj = nn.Linear(dim, n_outputs)
        self.proj_drop = nn.Dropout(projection_dropout)

    def forward(self, x: torch.Tensor, concepts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, nq, d = x.shape
        h = self.num_heads
        q = self.q(x).reshape(b, nq, h, d // h).transpose(1, 2)
        kv = self.kv(concepts).reshape(concepts.shape[0], concepts.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = self.attn_drop(torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(b, nq, d)
        return self.proj_drop(self.proj(out)), attn


# --------------------------------------------------------------------------- heads
class _ConceptHeadBase(nn.Module):
    """The read-out shared by CT and CCT: one cross-attention per stream, summed logits."""

    _parameter_constraints: dict[str, list[Constraint]] = {
        "dim": _POS_INT,
        "num_classes": _POS_INT,
        "n_concepts": _NONNEG_INT,
        "n_spatial_concepts": _NONNEG_INT,
        "num_heads": _POS_INT,
        "attention_dropout": _PROB,
        "projection_dropout": _PROB,
    }

    def _setup(
        self,
        dim: int,
        num_classes: int,
        n_concepts: int,
        n_spatial_concepts: int,
        num_heads: int,
        attention_dropout: float,
        projection_dropout: float,
    ) -> None:
        params = {
            "dim": dim,
            "num_classes": num_classes,
            "n_concepts": n_concepts,
            "n_spatial_concepts": n_spatial_concepts,
            "num_heads": num_heads,
            "attention_dropout": attention_dropout,
            "projection_dropout": projection_dropout,
        }
        validate_params(self._parameter_constraints, params, owner=type(self).__name__)
        if n_concepts == 0 and n_spatial_concepts == 0:
            raise ValueError("n_concepts and n_spatial_concepts are both 0: a concept head needs at least one concept")
        self.dim, self.num_classes = dim, num_classes
        self.n_concepts, self.n_spatial_concepts = n_concepts, n_spatial_concepts
        drop = {"attention_dropout": attention_dropout, "projection_dropout": projection_dropout}
        self.global_read = ConceptCrossAttention(dim, num_classes, num_heads, **drop) if n_concepts else None
        self.spatial_read = ConceptCrossAttention(dim, num_classes, num_heads, **drop) if n_spatial_concepts else None

    def write(self, e_g: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The global and spatial concept vectors ``((B or 1, C, D), (B or 1, C_s, D))``."""
        raise NotImplementedError

    def forward(self, e_g: torch.Tensor, tokens: torch.Tensor) -> ConceptOutput:
        """``e_g``: the global token ``(B, D)``; ``tokens``: the patch tokens ``(B, L, D)``."""
        if not isinstance(e_g, torch.Tensor) or e_g.dim() != 2 or e_g.shape[-1] != self.dim:
            raise ValueError(f"e_g must have shape (B, {self.dim}), got {tuple(getattr(e_g, 'shape', ()))}")
        _check_tokens(tokens, self.dim, "tokens")
        if tokens.shape[0] != e_g.shape[0]:
            raise ValueError(f"tokens must have {e_g.shape[0]} rows like e_g, got {tokens.shape[0]}")
        check_finite(e_g, "e_g")
        c_global, c_spatial = self.write(e_g, tokens)
        logits = e_g.new_zeros(e_g.shape[0], self.num_classes)
        concept_attn = spatial_attn = None
        if self.global_read is not None and c_global is not None:
            out, attn = self.global_read(e_g[:, None], c_global)
            logits = logits + out[:, 0]
            concept_attn = attn.mean(1)[:, 0]
        if self.spatial_read is not None and c_spatial is not None:
            out, attn = self.spatial_read(tokens, c_spatial)
            logits = logits + out.mean(1)
            spatial_attn = attn.mean(1)
        return ConceptOutput(logits, concept_attn, spatial_attn)


def _static_concepts(n: int, dim: int) -> nn.Parameter | None:
    if n == 0:
        return None
    p = nn.Parameter(torch.empty(1, n, dim))
    nn.init.trunc_normal_(p, std=1.0 / math.sqrt(dim))
    return p


class ConceptTransformerHead(_ConceptHeadBase):
    """CT (Rigotti et al., 2022): static learned concepts, the baseline CCT modifies.

    Concept embeddings are parameters ``(1, C, D)`` / ``(1, C_s, D)`` (``trunc_normal``,
    ``std = 1 / sqrt(D)``), identical for every input; no slot position embedding.

    Args:
        dim: token width ``D``.
        num_classes: classes ``K``.
        n_concepts: global concepts ``C`` (queried by the global token); 0 for none.
        n_spatial_concepts: spatial concepts ``C_s`` (queried by every patch token); 0 for none.
        num_heads: cross-attention heads (must divide ``dim``).
        attention_dropout, projection_dropout: the cross-attention's dropouts (0.1 in the paper).

    Shape:
        ``forward(e_g (B, D), tokens (B, L, D)) -> ConceptOutput``.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        n_concepts: int = 0,
        n_spatial_concepts: int = 0,
        num_heads: int = 2,
        attention_dropout: float = 0.1,
        projection_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self._setup(dim, num_classes, n_concepts, n_spatial_concepts, num_heads, attention_dropout, projection_dropout)
        self.concepts = _static_concepts(n_concepts, dim)
        self.spatial_concepts = _static_concepts(n_spatial_concepts, dim)

    def write(self, e_g: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return self.concepts, self.spatial_concepts


Memory = Literal["sa", "isa", "qsa"]


class _SlotMemory(nn.Module):
    """One stream's memory: SA / ISA / BO-QSA (with its learned initial queries) + slot position
    embedding (zeros init)."""

    def __init__(self, memory: Memory, num_slots: int, dim: int, num_iterations: int | None) -> None:
        super().__init__()
        self.memory = memory
        self.queries: nn.Embedding | None = None
        self.module: nn.Module
        if memory == "sa":
            self.module = ConceptSlotAttention(num_slots, dim, num_iterations or 1)
        else:
            cls = ConceptISA if memory == "isa" else ConceptBOQSA
            self.module = cls(dim, num_iterations or (3 if memory == "isa" else 2))
            self.queries = nn.Embedding(num_slots, dim)
            nn.init.xavier_uniform_(self.queries.weight)
        self.pos = nn.Parameter(torch.zeros(1, num_slots, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.queries is None:
            slots, attn = self.module(x)
        else:
            init = self.queries.weight[None].expand(x.shape[0], -1, -1)
            slots, attn = self.module(x, init)
        return slots + self.pos, attn


class ConceptCentricHead(_ConceptHeadBase):
    """CCT: concept slots written by a slot-attention memory, then read by the tokens.

    Global stream: the memory (``memory``: ``"sa"``, ``"isa"`` or ``"qsa"``) is fed the global
    token alone (``memory_input="global"``, as in the paper's ViT code: with one input every SA
    slot receives the same update, and slots differ through their initial states and the slot
    position embedding) or all patch tokens (``"tokens"``); the global token reads the slots.
    Spatial stream: with ``spatial_memory=True`` a second memory is fed the patch tokens
    (the paper's ISA / BO-QSA and Swin / ConvNeXt variants); with ``False`` the spatial concepts
    are CT-style static parameters (the paper's ViT SA variant). A slot position embedding
    (zeros init) is added to every memory's output.

    Args:
        dim, num_classes, n_concepts, n_spatial_concepts, num_heads, attention_dropout,
            projection_dropout: as :class:`ConceptTransformerHead`.
        memory: the slot memory.
        memory_input: what the global stream's memory reads.
        spatial_memory: whether the spatial concepts come from a memory.
        num_iterations: memory iterations (default: 1 for SA, 3 for ISA, 2 for BO-QSA).

    After ``forward``, :attr:`last_memory_attn` holds the memories' attention maps
    ``{"global": (B, N, C), "spatial": (B, L, C_s)}`` (what each slot wrote from).
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        **_ConceptHeadBase._parameter_constraints,
        "memory": [Options(("sa", "isa", "qsa"))],
        "memory_input": [Options(("global", "tokens"))],
        "spatial_memory": [Options((True, False))],
        "num_iterations": [*_POS_INT, None],
    }

    def __init__(
        self,
        dim: int,
        num_classes: int,
        n_concepts: int = 0,
        n_spatial_concepts: int = 0,
        num_heads: int = 2,
        memory: Memory = "sa",
        memory_input: Literal["global", "tokens"] = "global",
        spatial_memory: bool = True,
        num_iterations: int | None = None,
        attention_dropout: float = 0.1,
        projection_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        validate_params(
            self._parameter_constraints,
            {
                "memory": memory,
                "memory_input": memory_input,
                "spatial_memory": spatial_memory,
                "num_iterations": num_iterations,
            },
            owner="ConceptCentricHead",
        )
        self._setup(dim, num_classes, n_concepts, n_spatial_concepts, num_heads, attention_dropout, projection_dropout)
        self.memory, self.memory_input, self.spatial_memory = memory, memory_input, spatial_memory
        self.global_memory = _SlotMemory(memory, n_concepts, dim, num_iterations) if n_concepts else None
        self.spatial_memory_module = (
            _SlotMemory(memory, n_spatial_concepts, dim, num_iterations)
            if n_spatial_concepts and spatial_memory
            else None
        )
        self.spatial_concepts = (
            _static_concepts(n_spatial_concepts, dim) if n_spatial_concepts and not spatial_memory else None
        )
        self.last_memory_attn: dict[str, torch.Tensor] = {}

    def write(self, e_g: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        self.last_memory_attn = {}
        c_global = c_spatial = None
        if self.global_memory is not None:
            src = e_g[:, None] if self.memory_input == "global" else tokens
            c_global, self.last_memory_attn["global"] = self.global_memory(src)
        if self.spatial_memory_module is not None:
            c_spatial, self.last_memory_attn["spatial"] = self.spatial_memory_module(tokens)
        elif self.spatial_concepts is not None:
            c_spatial = self.spatial_concepts
        return c_global, c_spatial


# --------------------------------------------------------------------------- backbone
class SequencePooling(nn.Module):
    """Sequence pooling of the Compact Convolutional Transformer: ``softmax_L(E w + b)^T E``.

    Shape: ``(B, L, D) -> (B, D)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        validate_params({"dim": _POS_INT}, {"dim": dim}, owner="SequencePooling")
        self.attention = nn.Linear(dim, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.attention(tokens), dim=1)  # (B, L, 1)
        return (w.transpose(1, 2) @ tokens)[:, 0]


def _sine_embedding(n: int, dim: int) -> torch.Tensor:
    """The fixed sinusoidal position embedding of the CCT code, ``(1, n, dim)``."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(dim, dtype=torch.float64)[None]
    angle = pos / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / dim)
    pe = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))
    return pe[None].float()


class CompactConvEncoder(nn.Module):
    """The small model of the paper's MNIST experiment: convolutional tokeniser + transformer.

    ``n_pools`` blocks of ``Conv3x3 (stride 1, padding 1, no bias) -> ReLU -> MaxPool(3, 2, 1)``
    (the first maps ``in_channels -> dim``), flattened to tokens, a fixed sinusoidal position
    embedding, ``depth`` pre-norm transformer layers (MLP ratio ``mlp_ratio``, GELU, dropout),
    a final LayerNorm, and sequence pooling for the global token.
    :meth:`tokens` returns ``(e_g (B, D), E (B, L, D))`` like :meth:`TinyViT.tokens`. The paper's
    stochastic depth (0.1) is not implemented (the toolkit's transformer layer has none).

    Args:
        image_size: side of the square inputs.
        in_channels: input channels.
        dim: token width ``D``.
        n_pools: convolution + pooling blocks (each halves the side, rounding up).
        depth, heads, mlp_ratio, dropout: the transformer layers.
    """

    _parameter_constraints: dict[str, list[Constraint]] = {
        "image_size": _POS_INT,
        "in_channels": _POS_INT,
        "dim": _POS_INT,
        "n_pools": _POS_INT,
        "depth": _NONNEG_INT,
        "heads": _POS_INT,
        "mlp_ratio": [Interval(float, 0, math.inf, closed="neither")],
        "dropout": _PROB,
    }

    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        dim: int = 64,
        n_pools: int = 2,
        depth: int = 2,
        heads: int = 2,
        mlp_ratio: float = 1.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        params = {
            "image_size": image_size,
            "in_channels": in_channels,
            "dim": dim,
            "n_pools": n_pools,
            "depth": depth,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
            "dropout": dropout,
        }
        validate_params(self._parameter_constraints, params, owner="CompactConvEncoder")
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide dim ({dim})")
        self.image_size, self.in_channels, self.dim = image_size, in_channels, dim
        layers: list[nn.Module] = []
        side = image_size
        for i in range(n_pools):
            layers += [
                nn.Conv2d(in_channels if i == 0 else dim, dim, 3, 1, 1, bias=False),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            ]
            side = (side + 1) // 2
        self.tokenizer = nn.Sequential(*layers)
        self.num_tokens = side * side
        self.register_buffer("pos_embed", _sine_embedding(self.num_tokens, dim), persistent=False)
        self.dropout = nn.Dropout(dropout)
        if depth:
            layer = nn.TransformerEncoderLayer(
                dim,
                heads,
                dim_feedforward=max(1, int(round(dim * mlp_ratio))),
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.encoder: nn.Module = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        else:
            self.encoder = nn.Identity()
        self.norm = nn.LayerNorm(dim)
        self.pool = SequencePooling(dim)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"CompactConvEncoder expects input of shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        t = self.tokenizer(x).flatten(2).transpose(1, 2)
        t = self.norm(self.encoder(self.dropout(t + self.pos_embed)))
        return self.pool(t), t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[0]


class ConceptClassifier(nn.Module):
    """A backbone with ``tokens(x) -> (e_g, E)`` (:class:`~paperzoo.models.vit.TinyViT`,
    :class:`CompactConvEncoder`) followed by a concept head; ``forward(x) -> ConceptOutput``.
    :meth:`logits` returns the logits alone (for losses that take ``(B, K)`` logits)."""

    def __init__(self, backbone: nn.Module, head: _ConceptHeadBase) -> None:
        super().__init__()
        if not callable(getattr(backbone, "tokens", None)):
            raise TypeError("backbone must have a tokens(x) -> (e_g, E) method")
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> ConceptOutput:
        return self.head(*self.backbone.tokens(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).logits
