import os

import pytest

os.environ.setdefault("PAPERZOO_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to the user's cache; the decoded data sets are shared per session."""
    if "PAPERZOO_CACHE" not in os.environ:
        monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path_factory.getbasetemp() / "paperzoo-cache"))
