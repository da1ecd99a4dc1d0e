"""An installed wheel (not the source checkout) carries the records and recorded results:
`paperzoo show` prints the results table from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_show_works_from_an_installed_wheel(tmp_path: Path) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(wheels)], check=True)
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), *map(str, wheels.glob("*.whl"))], check=True)
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    where = subprocess.run(
        [sys.executable, "-c", "import paperzoo.papers as p; print(p.results_dir())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(site))
    out = subprocess.run(
        [sys.executable, "-m", "paperzoo", "show", "28"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Verdict:" in out and "contrastive (baseline)" in out
