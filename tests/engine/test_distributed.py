import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.distributed
def test_two_process_data_parallel_on_cpu(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(worker),
        str(tmp_path),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["wrapped"] == "DistributedLossWrapper"
    # each rank sees its own half of the data; gradients are averaged so the replicas agree
    assert r0["seen"] == r1["seen"] == 32
    assert r0["steps"] == r1["steps"] == 2 * 4
    assert r0["params"] == pytest.approx(r1["params"], abs=1e-6)
    assert (tmp_path / "ckpt" / "last.pt").is_file()
