"""The WordNet noun parser and the term -> definition task (paper 43's reproduction data), on a
small synthetic ``data.noun`` written in WordNet's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperzoo.data.cache import DatasetNotInstalledError
from paperzoo.data.wordnet import (
    INSTALL_WORDNET,
    _wordnet_files,
    load_term_definition_task,
    parse_data_noun,
    term_definition_task,
    wordnet_dir,
)

HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2 Princeton University  \n"


def line(offset: int, words: list[str], ptrs: list[tuple[str, int]], gloss: str) -> str:
    w = " ".join(f"{x} 0" for x in words)
    p = " ".join(f"{s} {o:08d} n 0000" for s, o in ptrs)
    return f"{offset:08d} 03 n {len(words):02x} {w} {len(ptrs):03d} {p} | {gloss}  \n"


def synthetic(tmp_path: Path) -> Path:
    """A root with 5 hyponyms (one an instance), 4 of them with definitions of 5+ words, one with a
    second hypernym; a child of a parent with only two hyponyms."""
    kids = [10, 11, 12, 13, 14]
    text = HEADER + line(1, ["animal", "beast"], [("~", k) for k in kids[:4]] + [("~i", 14)], "a living organism")
    text += line(
        10,
        ["domestic_cat", "house_cat"],
        [("@", 1), ("@", 20)],
        'any domesticated member of the cat genus; "the cat sat"',
    )
    text += line(11, ["dog"], [("@", 1)], "a member of the genus Canis kept as a pet")
    text += line(12, ["fox"], [("@", 1)], "short")
    text += line(13, ["wolf"], [("@", 1)], "a wild carnivorous mammal of the dog family living in packs")
    text += line(14, ["Laika"], [("@i", 1)], "the first dog to orbit the earth in a satellite")
    text += line(20, ["pet"], [("~", 10), ("~", 30)], "a domesticated animal kept for companionship")
    text += line(30, ["lonely_thing"], [("@", 20)], "a thing whose parent has only one hyponym")
    path = tmp_path / "data.noun"
    path.write_text(text)
    return path


def test_parser_reads_lemmas_gloss_and_pointers(tmp_path: Path) -> None:
    syn = parse_data_noun(synthetic(tmp_path))
    assert list(syn) == [1, 10, 11, 12, 13, 14, 20, 30]
    cat = syn[10]
    assert cat.lemmas == ("domestic cat", "house cat")
    assert cat.definition == "any domesticated member of the cat genus"
    assert cat.hypernyms == (1, 20) and cat.hyponyms == () and cat.lexfile == 3
    assert syn[1].hyponyms == (10, 11, 12, 13, 14) and syn[20].hyponyms == (10, 30) and syn[14].hypernyms == (1,)


def test_task_selection_siblings_and_split(tmp_path: Path) -> None:
    syn = parse_data_noun(synthetic(tmp_path))
    task = term_definition_task(n_queries=4, n_train=3, min_definition_words=5, min_hyponyms=4, seed=0, synsets=syn)
    # qualifying: >= 5-word definition and first hypernym with >= 4 hyponyms (12 is too short, 30's parent has 2)
    assert task.n_qualifying == 4 and set(task.query_offsets) == {10, 11, 13, 14}
    assert len(task.queries) == 4 and list(task.train) == [0, 1, 2] and list(task.test) == [3]
    for i, off in enumerate(task.query_offsets):
        assert task.corpus[task.positive[i]] == syn[int(off)].definition
        sib = int(task.corpus_offsets[task.sibling[i]])
        assert sib != off and syn[sib].hypernyms[0] == syn[int(off)].hypernyms[0] == 1
    assert len(set(task.corpus_offsets)) == len(task.corpus)  # de-duplicated by synset
    assert "domestic cat; house cat" in task.queries and list(task.query_lexfile) == [3, 3, 3, 3]
    again = term_definition_task(4, 3, synsets=syn, seed=0)
    assert again.queries == task.queries and list(again.sibling) == list(task.sibling)
    with pytest.raises(ValueError, match="qualify"):
        term_definition_task(n_queries=5, n_train=3, synsets=syn)
    with pytest.raises(ValueError, match="n_train"):
        term_definition_task(n_queries=4, n_train=4, synsets=syn)


def test_install_hint_env_override_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERZOO_WORDNET", str(tmp_path / "nowhere"))
    assert wordnet_dir() == tmp_path / "nowhere"
    with pytest.raises(DatasetNotInstalledError, match="wordnet-base") as info:
        _wordnet_files()
    assert info.value.install_command == INSTALL_WORDNET and info.value.dataset == "wordnet"
    root = tmp_path / "wn"
    root.mkdir()
    synthetic(root)
    monkeypatch.setenv("PAPERZOO_WORDNET", str(root))
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path / "cache"))
    first = load_term_definition_task(n_queries=3, n_train=2, min_definition_words=5, min_hyponyms=4)
    assert len(list((tmp_path / "cache").glob("wordnet-term-definition-*.json"))) == 1
    second = load_term_definition_task(n_queries=3, n_train=2, min_definition_words=5, min_hyponyms=4)
    assert second.queries == first.queries and list(second.positive) == list(first.positive)


def test_bad_line_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.noun"
    path.write_text(HEADER + "00000001 03 n zz broken\n")
    with pytest.raises(ValueError, match="line 3"):
        parse_data_noun(path)
