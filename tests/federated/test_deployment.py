"""A real Flower deployment on localhost: one SuperLink and two SuperNodes as separate processes,
``flwr run`` of the module-level FedAvg apps for two rounds; the result equals the in-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paperzoo.federated import run_federation
from paperzoo.federated.apps import client_app, server_app

pytestmark = pytest.mark.slow

APP = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "paperzoo-fedavg"
version = "1.0.0"
description = "FedAvg on digits"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "paperzoo"

[tool.flwr.app.components]
serverapp = "paperzoo.federated.apps:server_app"
clientapp = "paperzoo.federated.apps:client_app"

[tool.flwr.app.config]
num-clients = 2
num-rounds = 2
history-file = "{history}"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_superlink_and_two_supernodes_finish_two_rounds(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    history = tmp_path / "history.json"
    app = tmp_path / "app"
    app.mkdir()
    (app / "pyproject.toml").write_text(APP.format(history=history))
    (app / "app.py").write_text('"""The apps live in paperzoo.federated.apps."""\n')
    link = _free_port()
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local-deployment"\n\n[superlink.local-deployment]\naddress = "127.0.0.1:{link}"\n'
        "insecure = true\n"
    )
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("superlink", "supernode0", "supernode1")]  # noqa: SIM115
    superlink = [
        str(bin_dir / "flower-superlink"), "--insecure", "--isolation", "subprocess",
        "--disable-runtime-dependency-installation", "--port", str(link), "--database", ":flwr-in-memory:",
    ]  # fmt: skip
    processes = [subprocess.Popen(superlink, env=env, stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        time.sleep(5)
        for k in range(2):
            node = [
                str(bin_dir / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                "--port", str(_free_port()), "--node-config", f"partition-id={k} num-partitions=2",
            ]  # fmt: skip
            processes.append(subprocess.Popen(node, env=env, stdout=logs[k + 1], stderr=subprocess.STDOUT))
        time.sleep(5)
        run = subprocess.run(
            [str(bin_dir / "flwr"), "run", str(app), "local-deployment", "--stream"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        deadline = time.time() + 60
        while not history.exists() and time.time() < deadline:
            time.sleep(1)
        deployed = json.loads(history.read_text())
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(timeout=30)
        for log in logs:
            log.close()
    local = tmp_path / "local.json"
    run_federation(server_app, client_app, 2, run_config={"num-rounds": 2, "history-file": str(local)})
    assert deployed["rounds"] == 2
    assert deployed == json.loads(local.read_text())
