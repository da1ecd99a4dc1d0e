"""``compare_command`` registered on a typer app the way the main CLI registers it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from paperzoo.compare.cli import compare_command

app = typer.Typer()
app.command("compare")(compare_command)


@app.callback()
def _group() -> None:
    """A group, as the main CLI is."""


runner = CliRunner()


def test_list() -> None:
    res = runner.invoke(app, ["compare", "--list"])
    assert res.exit_code == 0, res.output
    for word in (
        "classification",
        "zloss",
        "paper 05",
        "retrieval",
        "ms",
        "fashion-mnist",
        "breast-cancer",
        "PATH.npz",
    ):
        assert word in res.output


def test_a_run_prints_the_table_and_writes_files(
    tmp_path: Path, make_npz: Callable[..., Path], blobs: Callable[..., Any]
) -> None:
    x, y = blobs(80, 0)
    path = make_npz("my data", x=x, y=y)
    args = ["compare", "--task", "classification", "--data", str(path), "--methods", "ce, zloss", "--seeds", "2"]
    res = runner.invoke(app, [*args, "--epochs", "1", "--jobs", "1", "--out", str(tmp_path), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "classification on my data" in res.output and "zloss" in res.output and "paper 05" in res.output
    assert "budget: 1 epoch, at most 10,000 training samples" in res.output
    folder = tmp_path / "compare" / "classification-my-data"
    assert (folder / "result.json").is_file() and (folder / "plot.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--task", "sorting", "--data", "digits"],
            "unknown task 'sorting'; tasks: classification, fewshot, gcd, multilabel, pruning, retrieval, unlearning",
        ),
        (["--task", "classification", "--data", "digits", "--methods", "ce,nope"], "unknown method nope for task"),
        (["--task", "classification", "--data", "nowhere.npz"], "unknown data 'nowhere.npz': neither a built-in"),
        (["--task", "retrieval", "--data", "digits", "--epochs", "3"], "'retrieval' is budgeted in steps; use --steps"),
        (
            ["--data", "digits"],
            "give --task (classification, fewshot, gcd, multilabel, pruning, retrieval, unlearning) and --data",
        ),
    ],
)
def test_errors_are_one_line_with_status_2(args: list[str], message: str) -> None:
    res = runner.invoke(app, ["compare", *args])
    assert res.exit_code == 2 and res.output.startswith("Error: ") and message in res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output


def test_a_bad_npz_is_one_line(make_npz: Callable[..., Path], blobs: Callable[..., Any]) -> None:
    x, _ = blobs(20, 0)
    path = make_npz("nolabels", x=x)
    res = runner.invoke(app, ["compare", "--task", "classification", "--data", str(path)])
    assert (
        res.exit_code == 2
        and res.output == f"Error: {path}: missing key 'y', expected (N,) integer labels; keys present: x\n"
    )
