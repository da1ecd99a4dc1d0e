"""Docs generated from data: the README's catalog table and each paper card's results block.

Both are generated from the catalog and the committed result summaries; ``paperzoo docs``
rewrites them and ``paperzoo docs --check`` (run by the tests) fails when text and data
disagree.
"""

from __future__ import annotations

from pathlib import Path

from paperzoo import catalog
from paperzoo.summaries import summary_markdown

RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"


def source_root() -> Path | None:
    """The repository root when running from a source checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "docs").is_dir() else None


def card_path(paper: catalog.Paper, root: Path) -> Path:
    return root / "docs" / "papers" / f"{paper.key}.md"


def results_block(paper: catalog.Paper) -> str:
    """The generated results block of ``paper``'s card."""
    result = paper.result
    if result is None:
        return "No recorded result yet."
    plot = f"../../src/paperzoo/papers/results/{paper.key}.png"
    return summary_markdown(result, plot=plot)


def render_card(paper: catalog.Paper, text: str) -> str:
    return catalog.replace_block(text, RESULTS_START, RESULTS_END, results_block(paper))


def sync(root: Path, *, check: bool = False) -> list[Path]:
    """Regenerate the README table and every card's results block under ``root``; return the
    files that changed (with ``check=True``: that would change, writing nothing)."""
    from paperzoo.engine.io import atomic_write_text

    targets: list[tuple[Path, str]] = []
    readme = root / "README.md"
    text = readme.read_text()
    targets.append((readme, catalog.update_markdown_block(text)))
    for paper in catalog.PAPERS:
        path = card_path(paper, root)
        if paper.status != "planned" and path.is_file():
            targets.append((path, render_card(paper, path.read_text())))
    changed = [path for path, new in targets if path.read_text() != new]
    if not check:
        for path, new in targets:
            if path in changed:
                atomic_write_text(path, new)
    return changed
