"""``paperzoo bench losses``: forward+backward time and memory of every loss in the project
beside its reference implementation and a "floor", measured in the same run.

Each entry of :data:`LOSSES` (the ``bench`` entries of the paper records) names our loss, the well-kept reference it should match (e.g.
pytorch-metric-learning's version) if one exists, and a floor: the least work a loss of that
kind can do. For metric losses the floor is one normalised B x B similarity matmul plus a
row-wise logsumexp; for classification losses it is ``F.cross_entropy``. To add a loss, add a
:class:`paperzoo.papers.LossBench` to its paper's record.

Timing (honest by construction): every implementation gets the same inputs (one seeded draw per
entry and batch size), two warm-up calls, then ``repeats`` timed samples taken round-robin
across the implementations (so drift hits all alike); a sample times ``n`` consecutive
forward+backward calls on a fresh leaf tensor, with ``n`` chosen once from the warm-up so a
sample lasts at least ~2 ms (timer resolution), and reports the per-call time. The median over
samples is reported. Threads: PyTorch's default (all cores), recorded in the output.

Memory on CPU (``tracemalloc`` does not see PyTorch's allocator), two numbers per call:

* ``peak_mb``: the peak, above the starting point, of the bytes held by tensors created during
  one forward+backward, from the allocation timeline that ``torch.profiler`` records with
  ``profile_memory=True`` (every tensor creation and destruction with its size). It includes
  the transient temporaries. It uses the profiler's memory-timeline reader
  (``profile._memory_profile()``, not a public API): if that is unavailable the value is
  ``None``;
* ``saved_mb``: the bytes of the distinct tensors kept for backward between the forward and the
  backward pass, counted with ``torch.autograd.graph.saved_tensors_hooks`` (public API); it
  includes inputs that are saved (the embeddings or logits).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from paperzoo._validation import Interval, validate_params
from paperzoo.engine import atomic_write_json
from paperzoo.papers import LossBench

__all__ = ["LOSSES", "LossBenchEntry", "format_report", "measure_memory", "run", "time_fwd_bwd"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EMBEDDING_DIM = 128
NUM_CLASSES = 1000
SAMPLES_PER_CLASS = 4
MULTILABEL_RATE = 0.005
#: batch size from which ``floor_target`` applies
FLOOR_TARGET_BATCH = 4096
MIN_SAMPLE_S = 0.002
_RUN_CONSTRAINTS = {"repeats": [Interval(int, 1, math.inf, closed="left")]}


@dataclass(frozen=True)
class LossBenchEntry:
    """One benchmarked loss.

    Attributes:
        name: our loss's name.
        kind: "metric" (embeddings (B, D), labels (B,)) or "classification" (logits (B, C), target).
        ours: builds our implementation, a callable ``(x, y) -> scalar``.
        make_inputs: ``(batch_size, generator) -> (x, y)`` with ``x`` the differentiated input.
        floor: builds the floor callable; ``floor_name`` says what it is.
        reference: builds the reference implementation, or ``None`` if no library has one.
        reference_name: what the reference is.
        target_ratio: if set, our time must be at most this fraction of the reference's at
            batch sizes >= ``target_min_batch`` (reported as ``meets_target``).
        floor_target: if set, our time must be at most this multiple of the floor's at batch
            sizes >= :data:`FLOOR_TARGET_BATCH` (reported as ``meets_floor_target``).
    """

    name: str
    kind: str
    ours: Callable[[], LossFn]
    make_inputs: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    floor: Callable[[], LossFn]
    floor_name: str
    reference: Callable[[], LossFn] | None = None
    reference_name: str | None = None
    target_ratio: float | None = None
    target_min_batch: int = 0
    floor_target: float | None = None
    notes: str = ""


# --------------------------------------------------------------------------- inputs and floors
def _metric_inputs(batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian embeddings (B, 128) and P x K labels (K = 4, B // 4 classes, shuffled)."""
    emb = torch.randn(batch_size, EMBEDDING_DIM, generator=gen)
    labels = (torch.arange(batch_size) // SAMPLES_PER_CLASS)[torch.randperm(batch_size, generator=gen)]
    return emb, labels


def _classification_inputs(batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian logits (B, 1000) and uniform targets."""
    return torch.randn(batch_size, NUM_CLASSES, generator=gen), torch.randint(
        0, NUM_CLASSES, (batch_size,), generator=gen
    )


def _multilabel_inputs(batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian logits (B, 1000) and multi-hot float targets, each class on with probability
    :data:`MULTILABEL_RATE` (5 positives per row on average)."""
    logits = torch.randn(batch_size, NUM_CLASSES, generator=gen)
    return logits, (torch.rand(batch_size, NUM_CLASSES, generator=gen) < MULTILABEL_RATE).float()


def _distillation_inputs(batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian student logits (B, 1000) and teacher logits (B, 1000) (the target)."""
    return torch.randn(batch_size, NUM_CLASSES, generator=gen), torch.randn(batch_size, NUM_CLASSES, generator=gen)


def _metric_floor() -> LossFn:
    def floor(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = F.normalize(emb, dim=1)
        return torch.logsumexp(x @ x.T, dim=1).mean()

    return floor


def _ce_floor() -> LossFn:
    return F.cross_entropy


def _bce_floor() -> LossFn:
    return F.binary_cross_entropy_with_logits


def _soft_ce_floor() -> LossFn:
    def floor(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(student, teacher.softmax(dim=1))

    return floor


#: kind -> (inputs, floor, the floor's name)
_KINDS: dict[
    str, tuple[Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]], Callable[[], LossFn], str]
] = {
    "metric": (_metric_inputs, _metric_floor, "normalised BxB matmul + logsumexp"),
    "classification": (_classification_inputs, _ce_floor, "F.cross_entropy"),
    "multilabel": (_multilabel_inputs, _bce_floor, "F.binary_cross_entropy_with_logits"),
    "distillation": (_distillation_inputs, _soft_ce_floor, "F.cross_entropy to the teacher's softmax"),
}


# --------------------------------------------------------------------------- the registry
def _entry(spec: LossBench) -> LossBenchEntry:
    from paperzoo.catalog import resolve

    if spec.kind not in _KINDS:
        raise ValueError(f"LossBench {spec.name!r}: kind must be one of {', '.join(_KINDS)}, got {spec.kind!r}")
    inputs, floor, floor_name = _KINDS[spec.kind]
    return LossBenchEntry(
        name=spec.name,
        kind=spec.kind,
        ours=resolve(spec.ours),  # type: ignore[arg-type]
        make_inputs=inputs,
        floor=floor,
        floor_name=floor_name,
        reference=resolve(spec.reference) if spec.reference else None,  # type: ignore[arg-type]
        reference_name=spec.reference_name,
        target_ratio=spec.target_ratio,
        target_min_batch=spec.target_min_batch,
        floor_target=spec.floor_target,
        notes=spec.notes,
    )


def _registry() -> list[LossBenchEntry]:
    from paperzoo.papers import records

    return [_entry(spec) for record in records().values() for spec in record.bench]


LOSSES: list[LossBenchEntry] = _registry()
"""The benchmarked losses, from the ``bench`` entries of the paper records (discovered)."""


# --------------------------------------------------------------------------- measuring
def _call(fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> None:
    leaf = x.detach().clone().requires_grad_(True)
    fn(leaf, y).backward()


def time_fwd_bwd(fns: dict[str, LossFn], x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per forward+backward call of each function, timed round-robin."""
    inner: dict[str, int] = {}
    for name, fn in fns.items():
        _call(fn, x, y)
        t0 = time.perf_counter()
        _call(fn, x, y)
        warm = time.perf_counter() - t0
        inner[name] = max(1, math.ceil(MIN_SAMPLE_S / max(warm, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            leaves = [x.detach().clone().requires_grad_(True) for _ in range(inner[name])]
            t0 = time.perf_counter()
            for leaf in leaves:
                fn(leaf, y).backward()
            samples[name].append((time.perf_counter() - t0) / inner[name])
    return {name: statistics.median(v) for name, v in samples.items()}


def _saved_bytes(fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> int:
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # e.g. tensors without storage
            pass
        return t

    leaf = x.detach().clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn(leaf, y)
    loss.backward()
    return sum(seen.values())


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the profiler's C++ side prints a start/stop
    marker line per use, which would bury the report."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def _peak_bytes(fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> int | None:
    try:
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import Action
    except ImportError:  # pragma: no cover - older / newer torch
        return None
    leaf = x.detach().clone().requires_grad_(True)
    try:
        with (
            _stderr_silenced(),
            profile(
                activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
            ) as prof,
        ):
            fn(leaf, y).backward()
        timeline = prof._memory_profile().timeline
    except Exception:  # pragma: no cover - private API changed
        return None
    current = peak = 0
    for _, action, _, size in timeline:
        if action == Action.CREATE:
            current += size
        elif action == Action.DESTROY:
            current -= size
        peak = max(peak, current)
    return peak


def measure_memory(fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> dict[str, float | None]:
    """``{"peak_mb", "saved_mb"}`` of one forward+backward call (see the module docstring)."""
    peak = _peak_bytes(fn, x, y)
    return {"peak_mb": None if peak is None else peak / 2**20, "saved_mb": _saved_bytes(fn, x, y) / 2**20}


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _bench_entry(entry: LossBenchEntry, batch_sizes: Sequence[int], repeats: int, seed: int) -> dict[str, Any]:
    fns: dict[str, LossFn] = {"ours": entry.ours(), "floor": entry.floor()}
    if entry.reference is not None:
        fns["reference"] = entry.reference()
    rows = []
    for b in batch_sizes:
        gen = torch.Generator().manual_seed(seed + b)
        x, y = entry.make_inputs(int(b), gen)
        times = time_fwd_bwd(fns, x, y, repeats)
        memory = {name: measure_memory(fn, x, y) for name, fn in fns.items()}
        t_ms = {name: times[name] * 1e3 for name in fns}
        ref_t = t_ms.get("reference")
        row: dict[str, Any] = {
            "batch_size": int(b),
            "time_ms": t_ms,
            "peak_mb": {name: memory[name]["peak_mb"] for name in fns},
            "saved_mb": {name: memory[name]["saved_mb"] for name in fns},
            "ratios": {
                "ours/reference": _ratio(t_ms["ours"], ref_t),
                "ours/floor": _ratio(t_ms["ours"], t_ms["floor"]),
                "reference/floor": _ratio(ref_t, t_ms["floor"]),
            },
            "peak_ratios": {
                "ours/reference": _ratio(memory["ours"]["peak_mb"], memory.get("reference", {}).get("peak_mb")),
                "ours/floor": _ratio(memory["ours"]["peak_mb"], memory["floor"]["peak_mb"]),
            },
        }
        if entry.target_ratio is not None and ref_t is not None and b >= entry.target_min_batch:
            row["meets_target"] = bool(t_ms["ours"] <= entry.target_ratio * ref_t)
        if entry.floor_target is not None and b >= FLOOR_TARGET_BATCH:
            row["meets_floor_target"] = bool(t_ms["ours"] <= entry.floor_target * t_ms["floor"])
        rows.append(row)
    return {
        "name": entry.name,
        "kind": entry.kind,
        "reference": entry.reference_name,
        "floor": entry.floor_name,
        "target": (
            None
            if entry.target_ratio is None
            else {"ours/reference_at_most": entry.target_ratio, "from_batch_size": entry.target_min_batch}
        ),
        "floor_target": (
            None
            if entry.floor_target is None
            else {"ours/floor_at_most": entry.floor_target, "from_batch_size": FLOOR_TARGET_BATCH}
        ),
        "notes": entry.notes,
        "results": rows,
    }


def run(
    batch_sizes: Sequence[int] = (128, 512, 2048, FLOOR_TARGET_BATCH), repeats: int = 10, out: Path | None = None
) -> dict[str, Any]:
    """Benchmark every entry of :data:`LOSSES` at each batch size; return the report and write it
    as JSON (atomically) to ``out`` if given.

    Args:
        batch_sizes: batch sizes B (metric losses: B x 128 embeddings, 4 per class;
            classification losses: B x 1000 logits).
        repeats: timed samples per implementation (median reported).
        out: JSON path, or ``None``.
    """
    sizes = [int(b) for b in batch_sizes]
    if not sizes or any(b < 2 for b in sizes):
        raise ValueError(f"batch_sizes must be a non-empty list of ints >= 2, got {list(batch_sizes)!r}")
    validate_params(_RUN_CONSTRAINTS, {"repeats": repeats}, owner="bench.losses.run")
    import pytorch_metric_learning

    report: dict[str, Any] = {
        "config": {
            "batch_sizes": sizes,
            "repeats": repeats,
            "embedding_dim": EMBEDDING_DIM,
            "samples_per_class": SAMPLES_PER_CLASS,
            "num_classes_logits": NUM_CLASSES,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "pytorch_metric_learning": pytorch_metric_learning.__version__,
            "machine": platform.machine(),
            "timing": "median over repeats of per-call forward+backward wall time, round-robin, 2 warm-ups",
            "memory": "peak_mb: profiler allocation timeline peak above start; saved_mb: saved-for-backward bytes",
        },
        "losses": [_bench_entry(entry, sizes, repeats, seed=0) for entry in LOSSES],
    }
    if out is not None:
        atomic_write_json(out, report)
    return report


# --------------------------------------------------------------------------- report
def _f(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_report(report: dict[str, Any]) -> Any:
    """A ``rich`` renderable: one table row per loss and batch size."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cfg = report["config"]
    table = Table(
        title=f"Loss benchmark: forward+backward, median of {cfg['repeats']}, {cfg['threads']} thread(s), torch {cfg['torch']}",
        title_justify="left",
    )
    for col in (
        "loss",
        "B",
        "ours ms",
        "ref ms",
        "floor ms",
        "ours/ref",
        "ours/floor",
        "ref/floor",
        "peak MB ours/ref/floor",
        "saved MB ours/ref/floor",
    ):
        table.add_column(col, justify="left" if col == "loss" else "right")
    notes = []
    for entry in report["losses"]:
        for i, row in enumerate(entry["results"]):
            t, r = row["time_ms"], row["ratios"]
            ratio = _f(r["ours/reference"], ".2f")
            if "meets_target" in row:
                ratio += " ✓" if row["meets_target"] else " ✗"
            floor_ratio = _f(r["ours/floor"], ".2f")
            if "meets_floor_target" in row:
                floor_ratio += " ✓" if row["meets_floor_target"] else " ✗"
            peak = "/".join(_f(row["peak_mb"].get(k), ".1f") for k in ("ours", "reference", "floor"))
            saved = "/".join(_f(row["saved_mb"].get(k), ".1f") for k in ("ours", "reference", "floor"))
            table.add_row(
                entry["name"] if i == 0 else "",
                str(row["batch_size"]),
                _f(t.get("ours"), ".2f"),
                _f(t.get("reference"), ".2f"),
                _f(t.get("floor"), ".2f"),
                ratio,
                floor_ratio,
                _f(r["reference/floor"], ".2f"),
                peak,
                saved,
            )
        line = f"{entry['name']}: reference = {entry['reference'] or 'none'}; floor = {entry['floor']}"
        if entry.get("target"):
            line += f"; target ours/ref <= {entry['target']['ours/reference_at_most']} from B = {entry['target']['from_batch_size']}"
        if entry.get("floor_target"):
            ft = entry["floor_target"]
            line += f"; target ours/floor <= {ft['ours/floor_at_most']} from B = {ft['from_batch_size']}"
        notes.append(Text(line))
    return Group(table, *notes)
