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


def _blocks() -> list[tuple[str, str]]:
    out = []
    for path in DOC_FILES:
        for i, block in enumerate(BLOCK.findall(path.read_text())):
            out.append((f"{path.relative_to(ROOT)}#{i}", block))
    return out


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[w for w, _ in _blocks()])
def test_python_blocks_run(where: str, code: str) -> None:
    exec(compile(code, f"<{where}>", "exec"), {"__name__": "__docs__"})


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(paperzoo.__path__, "paperzoo."))


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
    pattern = re.compile(r"\bspec\s*§|§\s*\d")
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
