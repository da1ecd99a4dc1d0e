"""``paperzoo`` command line: list, show, reproduce, bench, data."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from paperzoo import catalog

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Tested implementations and reproductions of 53 ML papers."
)
bench_app = typer.Typer(no_args_is_help=True, help="Speed and memory benchmarks.")
data_app = typer.Typer(no_args_is_help=True, help="The offline data sets.")
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")
console = Console()
if not console.is_terminal:  # logs and pipes: wide enough for the result tables
    console = Console(width=160)


def _paper_or_exit(ref: str) -> catalog.Paper:
    try:
        return catalog.get(ref)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from None


@app.command("list")
def list_papers(
    family: str | None = typer.Option(None, "--family", "-f", help="Only this family."),
    status: str | None = typer.Option(None, "--status", "-s", help="planned | implemented | reproduced."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    markdown: bool = typer.Option(False, "--markdown", help="The whole catalog as a Markdown table."),
    update: Path | None = typer.Option(
        None, "--update", help="With --markdown: rewrite the catalog block of this file."
    ),
) -> None:
    """List the papers with their family and honest status."""
    if markdown:
        if update is None:
            typer.echo(catalog.markdown_table())
        else:
            from paperzoo.engine.io import atomic_write_text

            atomic_write_text(update, catalog.update_markdown_block(update.read_text()))
            typer.echo(f"updated the catalog table in {update}")
        return
    try:
        papers = catalog.select(family, status)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in papers], indent=2))
        return
    table = Table(title=f"paperzoo catalog ({len(papers)} entries)")
    for col in ("#", "title", "year", "family", "status"):
        table.add_column(col)
    colour = {"planned": "dim", "implemented": "yellow", "reproduced": "green"}
    for p in papers:
        title = p.title if len(p.title) <= 70 else p.title[:67] + "..."
        num = "base" if p.baseline else str(p.number)
        table.add_row(num, title, str(p.year), p.family, f"[{colour[p.status]}]{p.status}[/]")
    console.print(table)


def _card_path(paper: catalog.Paper) -> Path | None:
    here = Path(__file__).resolve().parents[2] / "docs" / "papers" / f"{paper.key}.md"
    return here if here.is_file() else None


@app.command()
def show(ref: str = typer.Argument(..., help="Paper number or slug.")) -> None:
    """Show a paper's card: summary, components, usage, last result."""
    p = _paper_or_exit(ref)
    lines = [
        f"# {p.number:02d} — {p.title} ({p.year})",
        f"**family** {p.family} · **status** {p.status}"
        + (f" · **builds on** {', '.join(f'#{n:02d}' for n in p.builds_on)}" if p.builds_on else ""),
    ]
    if p.summary:
        lines += ["", p.summary]
    if p.components:
        lines += ["", "## Components", *(f"- `{c}`" for c in p.components)]
    if p.usage:
        lines += ["", "## Usage", "```python", p.usage.strip(), "```"]
    if p.reproduction:
        lines += ["", "## Reproduction", f"`paperzoo reproduce {p.number}` (module `{p.reproduction}`)"]
    if p.result:
        lines += ["", "## Recorded result", p.result]
    local = Path("results") / p.key / "result.json"
    if local.is_file():
        data = json.loads(local.read_text())
        lines += ["", f"## Last local run ({local})", f"verdict: **{data['verdict']}**, seeds {data['seeds']}"]
    card = _card_path(p)
    if card:
        lines += ["", f"Full card: `{card}`"]
    if p.status == "planned":
        lines += ["", "_Not implemented yet._"]
    console.print(Markdown("\n".join(lines)))


@app.command()
def reproduce(
    ref: str = typer.Argument(..., help="Paper number or slug."),
    smoke: bool = typer.Option(False, "--smoke", help="Tiny, fast version (seconds)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Number of seeds (0..N-1)."),
    out: Path = typer.Option(Path("results"), "--out", help="Results folder."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Run a paper's scaled-down reproduction; print the table, write JSON and PNG."""
    from paperzoo import reproductions
    from paperzoo.engine import format_table

    p = _paper_or_exit(ref)
    try:
        module = reproductions.load(p.number)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from None
    result = module.run(smoke=smoke, seeds=tuple(range(seeds)), out_dir=out, progress=not no_progress)
    console.print(format_table(result))


@bench_app.command("losses")
def bench_losses(
    sizes: str = typer.Option("128,512,2048", help="Comma-separated batch sizes."),
    repeats: int = typer.Option(10, min=1, help="Timed repetitions per measurement."),
    out: Path = typer.Option(Path("results/bench/losses.json"), "--out", help="JSON output path."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Forward+backward time and peak memory of every loss beside its reference."""
    from paperzoo.bench import losses as bench

    batch_sizes = tuple(int(s) for s in sizes.split(",") if s.strip())
    report = bench.run(batch_sizes=batch_sizes, repeats=repeats, out=out)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        console.print(bench.format_report(report))
        console.print(f"Wrote {out}")


@data_app.command("install")
def data_install() -> None:
    """Install the offline data sets that are missing (or say what to run)."""
    from paperzoo.data.install import install_datasets

    install_datasets(verbose=True)


@data_app.command("status")
def data_status() -> None:
    """Which offline data sets are installed."""
    from paperzoo.data.install import dataset_status

    for name, ok in dataset_status().items():
        console.print(f"{name:16s} {'[green]installed[/]' if ok else '[red]missing[/]'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
