"""WordNet 3.0 nouns as a term -> definition retrieval task (offline, from Debian's ``wordnet-base``).

Used by the reproduction of KaLM-Embedding-V2 (paper 43) as a small asymmetric retrieval task:
the query is a synset's lemmas, the document is its definition, and the definitions of its
co-hyponyms (siblings under the same hypernym) are natural hard negatives.

:func:`parse_data_noun` reads WordNet's ``data.noun`` (format of ``wndb(5)``): per synset its
offset, lemmas (``_`` -> space), pointers (hypernyms ``@`` / ``@i``, hyponyms ``~`` / ``~i``) and
gloss; the definition is the gloss up to its first example (``; "``). :func:`term_definition_task`
builds the task: synsets whose definition has at least ``min_definition_words`` words and whose
first hypernym has at least ``min_hyponyms`` hyponyms qualify; ``n_queries`` of them are sampled
with Python's ``random.Random(seed)``; the corpus holds their definitions plus the definition of
one random sibling each (de-duplicated by synset); the first ``n_train`` queries train, the rest test.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperzoo.data.cache import DatasetNotInstalledError, cache_dir, fingerprint

__all__ = [
    "INSTALL_WORDNET",
    "NounSynset",
    "TermDefinitionTask",
    "load_term_definition_task",
    "parse_data_noun",
    "term_definition_task",
    "wordnet_dir",
]

INSTALL_WORDNET = "apt-get install -y --no-install-recommends wordnet-base"
_DEFAULT_DIR = Path("/usr/share/wordnet")


def wordnet_dir() -> Path:
    """The WordNet database folder: ``$PAPERZOO_WORDNET`` or ``/usr/share/wordnet``."""
    value = os.environ.get("PAPERZOO_WORDNET", "").strip()
    return Path(value).expanduser() if value else _DEFAULT_DIR


def _wordnet_files() -> dict[str, Path]:
    """``{"data.noun": path}``; raises :class:`DatasetNotInstalledError` when it is missing."""
    path = wordnet_dir() / "data.noun"
    if not path.is_file():
        raise DatasetNotInstalledError("wordnet", INSTALL_WORDNET, f"missing {path}")
    return {"data.noun": path}


@dataclass(frozen=True)
class NounSynset:
    """One noun synset of ``data.noun``."""

    offset: int
    lexfile: int  # lexicographer file number (noun.animal, noun.artifact, ...)
    lemmas: tuple[str, ...]
    definition: str
    hypernyms: tuple[int, ...]  # @ and @i pointers, in file order
    hyponyms: tuple[int, ...]  # ~ and ~i pointers, in file order


def _definition(gloss: str) -> str:
    cut = gloss.find('; "')
    text = gloss[:cut] if cut >= 0 else gloss
    if cut < 0 and text.startswith('"'):  # a gloss made of an example only
        return ""
    return text.strip().rstrip(";").strip()


def _parse_line(line: str) -> NounSynset:
    head, _, gloss = line.partition("|")
    f = head.split()
    offset, n_words = int(f[0]), int(f[3], 16)
    lemmas = tuple(f[4 + 2 * i].replace("_", " ") for i in range(n_words))
    pos = 4 + 2 * n_words
    n_ptr = int(f[pos])
    ptrs = [f[pos + 1 + 4 * j : pos + 5 + 4 * j] for j in range(n_ptr)]
    hyper = tuple(int(p[1]) for p in ptrs if p[0] in ("@", "@i") and p[2] == "n")
    hypo = tuple(int(p[1]) for p in ptrs if p[0] in ("~", "~i") and p[2] == "n")
    return NounSynset(offset, int(f[1]), lemmas, _definition(gloss), hyper, hypo)


def parse_data_noun(path: str | os.PathLike[str] | None = None) -> dict[int, NounSynset]:
    """All synsets of a ``data.noun`` file, keyed by offset, in file order (licence lines, which
    start with a space, are skipped). Default: the installed WordNet's."""
    path = Path(path) if path is not None else _wordnet_files()["data.noun"]
    out: dict[int, NounSynset] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh):
            if not line.strip() or line[0] == " ":
                continue
            try:
                s = _parse_line(line.rstrip("\n"))
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}: line {i + 1} is not a data.noun synset line: {line[:60]!r}") from exc
            out[s.offset] = s
    return out


@dataclass
class TermDefinitionTask:
    """Queries (lemmas joined with "; "), a corpus of definitions and the relevance of each query.

    ``positive[i]`` / ``sibling[i]`` index the corpus for query i; ``train`` / ``test`` index the
    queries; ``query_offsets`` / ``corpus_offsets`` are the WordNet synset offsets and
    ``query_lexfile`` each query's lexicographer file (a semantic domain, usable as a task label).
    """

    queries: list[str]
    corpus: list[str]
    positive: np.ndarray
    sibling: np.ndarray
    query_offsets: np.ndarray
    corpus_offsets: np.ndarray
    train: np.ndarray
    test: np.ndarray
    query_lexfile: np.ndarray
    n_qualifying: int = 0


def _words(text: str) -> int:
    return len(text.split())


def term_definition_task(
    n_queries: int = 2500,
    n_train: int = 2000,
    min_definition_words: int = 5,
    min_hyponyms: int = 4,
    seed: int = 0,
    synsets: dict[int, NounSynset] | None = None,
) -> TermDefinitionTask:
    """The term -> definition retrieval task (see the module docstring). ``synsets`` defaults to
    the installed WordNet's nouns (:func:`parse_data_noun`)."""
    if not 0 < n_train < n_queries:
        raise ValueError(f"need 0 < n_train < n_queries, got n_train={n_train}, n_queries={n_queries}")
    syn = parse_data_noun() if synsets is None else synsets
    qualifying = [
        s.offset
        for s in syn.values()
        if _words(s.definition) >= min_definition_words
        and s.hypernyms
        and s.hypernyms[0] in syn
        and len(syn[s.hypernyms[0]].hyponyms) >= min_hyponyms
    ]
    if len(qualifying) < n_queries:
        raise ValueError(f"only {len(qualifying)} synsets qualify, fewer than n_queries={n_queries}")
    rng = random.Random(seed)
    picked = rng.sample(qualifying, n_queries)
    siblings = []
    for off in picked:
        pool = [o for o in syn[syn[off].hypernyms[0]].hyponyms if o != off and o in syn and syn[o].definition]
        siblings.append(rng.choice(pool) if pool else off)
    corpus_offsets = list(dict.fromkeys([*picked, *siblings]))
    where = {o: i for i, o in enumerate(corpus_offsets)}
    return TermDefinitionTask(
        queries=["; ".join(syn[o].lemmas) for o in picked],
        corpus=[syn[o].definition for o in corpus_offsets],
        positive=np.array([where[o] for o in picked], dtype=np.int64),
        sibling=np.array([where[o] for o in siblings], dtype=np.int64),
        query_offsets=np.array(picked, dtype=np.int64),
        corpus_offsets=np.array(corpus_offsets, dtype=np.int64),
        train=np.arange(n_train, dtype=np.int64),
        test=np.arange(n_train, n_queries, dtype=np.int64),
        query_lexfile=np.array([syn[o].lexfile for o in picked], dtype=np.int64),
        n_qualifying=len(qualifying),
    )


def load_term_definition_task(
    n_queries: int = 2500, n_train: int = 2000, min_definition_words: int = 5, min_hyponyms: int = 4, seed: int = 0
) -> TermDefinitionTask:
    """:func:`term_definition_task` on the installed WordNet, cached as JSON in
    :func:`paperzoo.data.cache.cache_dir` (keyed by the ``data.noun`` file's fingerprint and the
    arguments), so that only the first call parses WordNet (a few seconds)."""
    params = (n_queries, n_train, min_definition_words, min_hyponyms, seed)
    source = _wordnet_files()["data.noun"]
    key = fingerprint([source], extra="wordnet-task-v2;" + ",".join(map(str, params)))
    path = cache_dir() / f"wordnet-term-definition-{key}.json"
    if path.is_file():
        try:
            return _from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged entry: rebuild it below
    task = term_definition_task(n_queries, n_train, min_definition_words, min_hyponyms, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_to_json(task), fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return task


_ARRAYS = ("positive", "sibling", "query_offsets", "corpus_offsets", "train", "test", "query_lexfile")


def _to_json(task: TermDefinitionTask) -> dict[str, object]:
    out: dict[str, object] = {"queries": task.queries, "corpus": task.corpus, "n_qualifying": task.n_qualifying}
    out.update({k: getattr(task, k).tolist() for k in _ARRAYS})
    return out


def _from_json(d: dict[str, object]) -> TermDefinitionTask:
    arrays = {k: np.asarray(d[k], dtype=np.int64) for k in _ARRAYS}
    return TermDefinitionTask(
        queries=list(d["queries"]),  # type: ignore[call-overload]
        corpus=list(d["corpus"]),  # type: ignore[call-overload]
        n_qualifying=int(d["n_qualifying"]),  # type: ignore[call-overload]
        **arrays,
    )
