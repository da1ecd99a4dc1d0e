"""Docs that cannot rot: every python block of the docs and cards runs, every docstring
example (doctest) passes, and no comment cites internal documents."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import paperzoo

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCK = re.compile(r"```python\n(.*?)```", flags=re.S)


def _files_with_blocks() -> list[Path]:
    return [path for path in DOC_FILES if BLOCK.search(path.read_text())]


@pytest.mark.parametrize("path", _files_with_blocks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path: Path) -> None:
    """The python blocks of one document run in order in one namespace, as a reader runs them."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, code in enumerate(BLOCK.findall(path.read_text())):
        exec(compile(code, f"<{path.relative_to(ROOT)} block {i}>", "exec"), namespace)


def _modules() -> list[str]:
    modules = pkgutil.walk_packages(paperzoo.__path__, "paperzoo.")
    return sorted(m.name for m in modules if not m.name.endswith("__main__"))


def test_docstring_examples_pass() -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    ran = 0
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                ran += len(test.examples)
                runner.run(test)
    assert ran > 0
    assert runner.failures == 0, f"{runner.failures} docstring example(s) failed (see output above)"


def test_no_citation_of_internal_documents() -> None:
    pattern = re.compile(r"\bspec\s*§|§\s*\d|\bthe spec\b|\bspec's\b", re.IGNORECASE)
    offenders = []
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *DOC_FILES]:
        if path == Path(__file__):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert not offenders, "cite the paper's own sections and equations, not internal specs: " + ", ".join(
        offenders[:20]
    )
