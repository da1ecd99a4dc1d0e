import re
from pathlib import Path
from typing import Any

import pytest

from paperzoo import catalog, papers
from paperzoo.docsync import sync

ROOT = Path(__file__).resolve().parents[1]


def test_all_53_papers_plus_baseline() -> None:
    numbers = [p.number for p in catalog.PAPERS if not p.baseline]
    assert sorted(numbers) == list(range(1, 54))
    assert len({p.slug for p in catalog.PAPERS}) == len(catalog.PAPERS)
    assert all(n in {p.number for p in catalog.PAPERS} for p in catalog.PAPERS for n in p.builds_on)


def test_identity_record_reproduction_and_result_agree() -> None:
    assert catalog.check_catalog() == []


def test_status_is_derived() -> None:
    for p in catalog.PAPERS:
        if p.record is None:
            assert p.status == "planned" and not p.components
        elif p.reproduction and p.result:
            assert p.status == "reproduced"
        else:
            assert p.status == "implemented"


def _fake(monkeypatch: pytest.MonkeyPatch, record: papers.Record, result: dict[str, Any] | None) -> catalog.Paper:
    paper = catalog.get(record.number)
    monkeypatch.setattr(papers, "records", lambda: {record.number: record})
    monkeypatch.setattr(papers, "recorded_result", lambda key: result if key == paper.key else None)
    return paper


def test_check_detects_false_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    real = catalog.get(28)
    record, result = real.record, real.result
    assert record is not None and result is not None
    broken = papers.Record(28, "s", ("paperzoo.losses.NoSuchLoss",), "", record.paper_result)
    assert any("does not import" in m for m in catalog.check_paper(_fake(monkeypatch, broken, result)))
    assert any("without a recorded result" in m for m in catalog.check_paper(_fake(monkeypatch, record, None)))
    tampered = {**result, "verdict": "holds" if result["verdict"] != "holds" else "does not hold"}
    assert any("does not follow" in m for m in catalog.check_paper(_fake(monkeypatch, record, tampered)))
    flipped = {**result, "claims": [{**c, "outcome": "holds", "interval": [-1.0, 1.0]} for c in result["claims"]]}
    assert any("against its interval" in m for m in catalog.check_paper(_fake(monkeypatch, record, flipped)))
    smoke = {**result, "budget": "smoke"}
    assert any("not the full one" in m for m in catalog.check_paper(_fake(monkeypatch, record, smoke)))
    other = {**result, "paper_result": "something else"}
    assert any("disagree" in m for m in catalog.check_paper(_fake(monkeypatch, record, other)))


def test_every_implemented_paper_has_a_card() -> None:
    for p in catalog.PAPERS:
        if p.status != "planned":
            assert (ROOT / "docs" / "papers" / f"{p.key}.md").is_file(), p.key


def test_lookup() -> None:
    assert (
        catalog.get(28)
        is catalog.get("28")
        is catalog.get("multi-similarity-loss")
        is catalog.get("28-multi-similarity-loss")
    )
    with pytest.raises(KeyError, match="no paper number 54"):
        catalog.get(54)
    with pytest.raises(KeyError):
        catalog.get("nope")
    assert all(p.family == "discovery" for p in catalog.select(family="discovery"))
    with pytest.raises(ValueError, match="unknown family"):
        catalog.select(family="astrology")
    with pytest.raises(ValueError, match="unknown status"):
        catalog.select(status="done")


def test_generated_docs_agree_with_the_data() -> None:
    assert sync(ROOT, check=True) == [], "run `make docs`"


def test_usage_snippets_run() -> None:
    for p in catalog.PAPERS:
        if p.status != "planned":
            assert p.usage and p.summary, p.key
            exec(compile(p.usage, f"<usage of {p.key}>", "exec"), {})


def test_readme_python_example_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "<README example>", "exec"), {})


def test_a_recorded_cell_is_complete_or_not_applicable() -> None:
    """A cell must hold a value for every seed, or be null in every seed (a metric that does not apply
    to the method, shown as n/a); a cell missing a seed or missing altogether is a problem."""
    import copy

    from paperzoo.catalog import _check_result

    paper = catalog.get(16)
    assert paper.result is not None and _check_result(paper, paper.result) == []
    broken = copy.deepcopy(paper.result)
    method, metric = broken["methods"][0], broken["metrics"][0]
    broken["table"][method][metric]["n"] = 2
    del broken["table"][method][broken["metrics"][1]]
    problems = _check_result(paper, broken)
    assert len(problems) == 2 and all("recorded table lacks" in p for p in problems)
