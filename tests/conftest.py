import os

# One thread per test process: on a small, shared machine torch's and BLAS's extra threads
# make the many tiny tensor operations of the tests up to 100x slower (`paperzoo bench threads`).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("PAPERZOO_PROGRESS", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to the user's cache; the decoded data sets are shared per session."""
    if "PAPERZOO_CACHE" not in os.environ:
        monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path_factory.getbasetemp() / "paperzoo-cache"))


@pytest.fixture
def planned_paper(monkeypatch: pytest.MonkeyPatch) -> int:
    """A paper seen as ``planned``: paper 53's record and reproduction hidden, for the paths that
    handle papers not implemented yet (every paper of the list is implemented now)."""
    import paperzoo.papers
    import paperzoo.reproductions

    number = 53
    records = {n: r for n, r in paperzoo.papers.records().items() if n != number}
    available = {n: m for n, m in paperzoo.reproductions.available().items() if n != number}
    monkeypatch.setattr(paperzoo.papers, "records", lambda: records)
    monkeypatch.setattr(paperzoo.reproductions, "available", lambda: available)
    return number
