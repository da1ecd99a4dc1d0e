"""``paperzoo`` command line: list, show, reproduce, bench, data."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from paperzoo import catalog
from paperzoo.compare.cli import compare_command
from paperzoo.report import report_command

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
) -> None:
    """List the papers with their family, status (derived from the code) and verdict."""
    if markdown:
        typer.echo(catalog.markdown_table())
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
    for col in ("#", "title", "year", "family", "status", "verdict"):
        table.add_column(col)
    colour = {"planned": "dim", "implemented": "yellow", "reproduced": "green"}
    for p in papers:
        title = p.title if len(p.title) <= 70 else p.title[:67] + "..."
        num = "base" if p.baseline else str(p.number)
        verdict = (p.result or {}).get("verdict", "")
        table.add_row(num, title, str(p.year), p.family, f"[{colour[p.status]}]{p.status}[/]", verdict)
    console.print(table)


@app.command()
def show(ref: str = typer.Argument(..., help="Paper number or slug.")) -> None:
    """A paper's card: summary, components, usage and its recorded results table."""
    from paperzoo.summaries import format_summary

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
    if p.status == "planned":
        lines += ["", "_Not implemented yet._"]
    console.print(Markdown("\n".join(lines)))
    result = p.result
    if result is not None:
        console.print()
        console.print(format_summary(result))


@app.command()
def reproduce(
    ref: str = typer.Argument(..., help="Paper number or slug."),
    smoke: bool = typer.Option(False, "--smoke", help="Tiny, fast version (seconds)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Number of seeds (0..N-1)."),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, help="Worker processes (default: PAPERZOO_JOBS or the number of cores)."
    ),
    budget: str | None = typer.Option(None, "--budget", help="A reduced budget the reproduction offers."),
    out: Path = typer.Option(Path("results"), "--out", help="Results folder."),
    record: bool = typer.Option(
        False, "--record", help="Also commit the summary and plot into the package (full runs, source checkout)."
    ),
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
    if record and (smoke or budget):
        console.print("[red]--record takes the full run only (no --smoke, no --budget)[/red]")
        raise typer.Exit(2)
    try:
        result = module.run(
            smoke=smoke, seeds=tuple(range(seeds)), out_dir=out, progress=not no_progress, jobs=jobs, budget=budget
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(format_table(result))
    if record:
        from paperzoo.engine.recording import record_result

        for path in record_result(result):
            console.print(f"recorded {path}")


app.command("compare")(compare_command)
app.command("report")(report_command)


@app.command()
def docs(check: bool = typer.Option(False, "--check", help="Exit 1 if a generated block is out of date.")) -> None:
    """Regenerate the README catalog table and each card's results block from the data."""
    from paperzoo.docsync import source_root, sync

    root = source_root()
    if root is None:
        console.print("[red]paperzoo docs needs a source checkout (README.md and docs/ beside src/)[/red]")
        raise typer.Exit(2)
    changed = sync(root, check=check)
    for path in changed:
        console.print(f"{'out of date' if check else 'updated'}: {path}")
    if check and changed:
        raise typer.Exit(1)


@bench_app.command("losses")
def bench_losses(
    sizes: str = typer.Option("128,512,2048,4096", help="Comma-separated batch sizes."),
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


@bench_app.command("threads")
def bench_threads(
    steps: int = typer.Option(30, min=1, help="Training steps per measurement."),
    busy: int | None = typer.Option(None, min=0, help="Competing spinning processes (default: cores - 1)."),
    unit_steps: int | None = typer.Option(
        None, min=1, help="Steps per unit in the jobs comparison (default 10 x steps)."
    ),
    out: Path = typer.Option(Path("results/bench/threads.json"), "--out", help="JSON output path."),
) -> None:
    """Milliseconds per training step with 1 vs 2 threads, idle and on a loaded machine."""
    from paperzoo.bench import threads as bench

    report = bench.run(steps=steps, busy=busy, unit_steps=unit_steps, out=out)
    console.print(bench.format_report(report))
    console.print(f"Wrote {out}")


@bench_app.command("federated")
def bench_federated(
    clients: int = typer.Option(4, min=1, help="Clients."),
    rounds: int = typer.Option(3, min=1, help="Rounds."),
    simulation: bool = typer.Option(True, help="Also time Flower's simulation engine (Ray; about a minute)."),
    out: Path = typer.Option(Path("results/bench/federated.json"), "--out", help="JSON output path."),
) -> None:
    """FedAvg through Flower (in process, simulation engine) against a plain loop doing the same work."""
    from paperzoo.bench import federated as bench

    report = bench.run(clients=clients, rounds=rounds, simulation=simulation, out=out)
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
