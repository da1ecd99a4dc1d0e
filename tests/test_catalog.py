import pytest

from paperzoo import catalog


def test_all_53_papers_plus_baseline() -> None:
    numbers = [p.number for p in catalog.PAPERS if not p.baseline]
    assert sorted(numbers) == list(range(1, 54))
    assert len({p.slug for p in catalog.PAPERS}) == len(catalog.PAPERS)


def test_status_claims_are_backed_by_code() -> None:
    assert catalog.check_catalog() == []


def test_check_detects_false_claims() -> None:
    fake = catalog.Paper(
        99, "fake", "Fake", 2024, "losses", status="implemented", components=("paperzoo.losses.NoSuchLoss",)
    )
    assert any("does not import" in m for m in catalog.check_paper(fake))
    fake = catalog.Paper(
        99, "fake", "Fake", 2024, "losses", status="reproduced", components=("paperzoo.metrics.accuracy",)
    )
    problems = catalog.check_paper(fake)
    assert any("names no reproduction" in m for m in problems)
    assert any("no measured result" in m for m in problems)
    fake = catalog.Paper(99, "fake", "Fake", 2024, "losses", status="planned", components=("x",))
    assert catalog.check_paper(fake)


def test_reproduced_papers_have_a_reproduction_module_and_card() -> None:
    from pathlib import Path

    from paperzoo import reproductions

    root = Path(__file__).resolve().parents[1]
    available = reproductions.available()
    for p in catalog.PAPERS:
        if p.status == "reproduced":
            assert available.get(p.number) == p.reproduction
        if p.status != "planned":
            assert (root / "docs" / "papers" / f"{p.key}.md").is_file(), p.key
    for number in available:
        assert catalog.get(number).status == "reproduced"


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


def test_readme_table_is_generated_from_catalog() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert catalog.update_markdown_block(readme) == readme, "run `make readme`"


def test_usage_snippets_run() -> None:
    for p in catalog.PAPERS:
        if p.status != "planned":
            assert p.usage and p.summary, p.key
            exec(compile(p.usage, f"<usage of {p.key}>", "exec"), {})


def test_readme_python_example_runs() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "<README example>", "exec"), {})
