"""Where data live on disk, and the ``.npy`` cache of decoded data sets.

* :func:`cache_dir` — decoded arrays (``$PAPERZOO_CACHE``, default ``~/.cache/paperzoo``).
* :func:`data_home` — data sets installed by ``paperzoo data install`` that have no system
  location (``$PAPERZOO_DATA``, default ``~/.local/share/paperzoo``).

A cache entry is keyed by the data set's name and a fingerprint of its source files (path,
size, modification time), so pointing a loader at other source files never returns stale
arrays. Entries are written atomically: a reader sees either no entry or a complete one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

#: Bumped whenever the layout of cached arrays changes, so old entries are ignored.
CACHE_FORMAT = 1


class DatasetNotInstalledError(FileNotFoundError):
    """A data set's source files are missing. The message names the command that installs it.

    Attributes:
        dataset: short name of the data set (``"fashion-mnist"``, ``"mnist"``, ...).
        install_command: the shell command that installs it.
    """

    def __init__(self, dataset: str, install_command: str, detail: str) -> None:
        self.dataset = dataset
        self.install_command = install_command
        super().__init__(f"data set {dataset!r} is not installed: {detail}. Install it with: {install_command}")


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var, "").strip()
    return Path(value).expanduser() if value else default


def cache_dir() -> Path:
    """Directory of the decoded-array cache: ``$PAPERZOO_CACHE`` or ``~/.cache/paperzoo``.

    The directory is not created here; :func:`save_npy_atomic` creates it when writing.
    """
    return _env_path("PAPERZOO_CACHE", Path.home() / ".cache" / "paperzoo")


def data_home() -> Path:
    """Directory of installed data sets: ``$PAPERZOO_DATA`` or ``~/.local/share/paperzoo``."""
    return _env_path("PAPERZOO_DATA", Path.home() / ".local" / "share" / "paperzoo")


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Save ``array`` as ``.npy`` at ``path`` atomically (temporary file in the same folder,
    flushed, then renamed over ``path``). Creates the parent folder. Returns the path."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"path must end with '.npy', got {str(path)!r}")
    arr = np.asarray(array)
    if arr.dtype == object:
        raise TypeError("array must not have dtype object (it cannot be loaded without pickle)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; cached data are not secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def fingerprint(paths: Iterable[str | os.PathLike[str]], extra: str = "") -> str:
    """Short hash of the resolved path, size and modification time of each file, plus ``extra``.

    Cheap (one ``stat`` per file); changes when a source file is replaced or moved.
    """
    h = hashlib.sha256(f"format={CACHE_FORMAT};{extra}".encode())
    for p in sorted(str(Path(p).resolve()) for p in paths):
        st = os.stat(p)
        h.update(f"|{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached_arrays(
    name: str, key: str, build: Callable[[], Mapping[str, np.ndarray]], fields: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Return the arrays ``fields`` of cache entry ``name``/``key``, building them on a miss.

    On a hit the arrays are read from ``cache_dir()/<name>-<key>.<field>.npy`` and ``build`` is
    not called. On a miss (or an unreadable entry) ``build()`` must return a mapping with every
    field; each array is saved atomically, then returned.
    """
    if not name or not key:
        raise ValueError("name and key must be non-empty strings")
    root = cache_dir()
    files = {f: root / f"{name}-{key}.{f}.npy" for f in fields}
    if all(p.is_file() for p in files.values()):
        try:
            return {f: np.load(p, allow_pickle=False) for f, p in files.items()}
        except (OSError, ValueError):
            pass  # a damaged entry: rebuild it below
    built = build()
    missing = [f for f in fields if f not in built]
    if missing:
        raise KeyError(f"build() for cache entry {name!r} did not return fields {missing}")
    out = {f: np.ascontiguousarray(built[f]) for f in fields}
    for f, p in files.items():
        save_npy_atomic(p, out[f])
    return out
