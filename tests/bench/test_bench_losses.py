"""Tests of ``paperzoo bench losses`` (``paperzoo.bench.losses``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from paperzoo.bench import losses as bench


def test_registry_covers_every_loss_with_its_reference() -> None:
    names = {e.name for e in bench.LOSSES}
    assert {"MultiSimilarityLoss", "ZLoss"} <= names
    ms = next(e for e in bench.LOSSES if e.name == "MultiSimilarityLoss")
    assert ms.reference is not None and "PML" in (ms.reference_name or "")
    assert ms.target_ratio == 0.7 and ms.target_min_batch == 512
    for entry in bench.LOSSES:
        assert entry.kind in ("metric", "classification", "multilabel", "distillation")
        x, y = entry.make_inputs(8, torch.Generator().manual_seed(0))
        leaf = x.clone().requires_grad_(True)
        for build in (entry.ours, entry.floor, *([entry.reference] if entry.reference else [])):
            out = build()(leaf, y)
            assert out.ndim == 0 and torch.isfinite(out)


def test_ms_reference_matches_ours_on_the_bench_inputs() -> None:
    ms = next(e for e in bench.LOSSES if e.name == "MultiSimilarityLoss")
    x, y = ms.make_inputs(64, torch.Generator().manual_seed(1))
    assert abs(ms.ours()(x, y).item() - ms.reference()(x, y).item()) < 1e-6  # type: ignore[misc]


def test_tiny_run_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "bench" / "losses.json"
    report = bench.run(batch_sizes=(16, 32), repeats=2, out=out)
    assert out.is_file()
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(report))
    assert data["config"]["batch_sizes"] == [16, 32] and data["config"]["repeats"] == 2
    assert [e["name"] for e in data["losses"]] == [e.name for e in bench.LOSSES]
    for entry in data["losses"]:
        assert len(entry["results"]) == 2
        for row in entry["results"]:
            impls = {"ours", "floor"} | ({"reference"} if entry["reference"] else set())
            assert set(row["time_ms"]) == impls and all(v > 0 for v in row["time_ms"].values())
            assert set(row["saved_mb"]) == impls and all(v >= 0 for v in row["saved_mb"].values())
            assert set(row["peak_mb"]) == impls
            assert row["ratios"]["ours/floor"] == pytest.approx(row["time_ms"]["ours"] / row["time_ms"]["floor"])
            if entry["reference"]:
                assert row["ratios"]["ours/reference"] == pytest.approx(
                    row["time_ms"]["ours"] / row["time_ms"]["reference"]
                )
            else:
                assert row["ratios"]["ours/reference"] is None
            assert "meets_target" not in row and "meets_floor_target" not in row  # below the targets' range
    console = Console(record=True, width=200)
    console.print(bench.format_report(report))
    text = console.export_text()
    assert "MultiSimilarityLoss" in text and "ZLoss" in text


def test_saved_memory_counts_a_bxb_matrix() -> None:
    """The saved-for-backward count sees the B x B weight matrix of the MS loss."""
    ms = next(e for e in bench.LOSSES if e.name == "MultiSimilarityLoss")
    x, y = ms.make_inputs(256, torch.Generator().manual_seed(0))
    mem = bench.measure_memory(ms.ours(), x, y)
    assert mem["saved_mb"] >= 256 * 256 * 4 / 2**20
    if mem["peak_mb"] is not None:
        assert mem["peak_mb"] >= mem["saved_mb"] * 0.99


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="batch_sizes"):
        bench.run(batch_sizes=(), repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        bench.run(batch_sizes=(8,), repeats=0)


@pytest.mark.slow
def test_ms_is_at_most_0_7x_pml_at_512_and_2048() -> None:
    report = bench.run(batch_sizes=(512, 2048), repeats=10)
    ms = next(e for e in report["losses"] if e["name"] == "MultiSimilarityLoss")
    for row in ms["results"]:
        assert row["meets_target"], row
        assert row["ratios"]["ours/reference"] <= 0.7


def test_floor_target_is_judged_from_4096() -> None:
    z = next(e for e in bench.LOSSES if e.name == "ZLoss")
    assert z.floor_target == 2.0
    entry = bench._bench_entry(z, (bench.FLOOR_TARGET_BATCH,), repeats=1, seed=0)
    (row,) = entry["results"]
    assert row["meets_floor_target"] == (row["time_ms"]["ours"] <= 2.0 * row["time_ms"]["floor"])
    assert entry["floor_target"] == {"ours/floor_at_most": 2.0, "from_batch_size": 4096}


def test_multilabel_inputs_are_multi_hot() -> None:
    logits, targets = bench._multilabel_inputs(512, torch.Generator().manual_seed(0))
    assert logits.shape == targets.shape == (512, bench.NUM_CLASSES)
    assert set(targets.unique().tolist()) <= {0.0, 1.0} and 4.0 < float(targets.sum(1).mean()) < 6.0


#: losses known to miss their floor target (measured; each card says why)
_MISSES = {
    "LDRKLLoss": "softplus/mean normalisation adds two transcendental passes: ~3.6x F.cross_entropy",
    "ALDRKLLoss": "the per-sample temperature update: ~10x F.cross_entropy",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            e.name, marks=[pytest.mark.xfail(strict=True, reason=_MISSES[e.name])] if e.name in _MISSES else []
        )
        for e in bench.LOSSES
        if e.floor_target is not None
    ],
)
def test_losses_meet_their_floor_targets(name: str) -> None:
    entry = next(e for e in bench.LOSSES if e.name == name)
    (row,) = bench._bench_entry(entry, (bench.FLOOR_TARGET_BATCH,), repeats=7, seed=0)["results"]
    assert row["meets_floor_target"], row["ratios"]
