"""The Dask engine gives what the local pool gives: the same table for the same seed, nothing lost when a worker or
the client is killed, and a poisoned design that costs only itself."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("distributed")

from icgen.core.sampling import random_designs  # noqa: E402
from icgen.core.status import Status  # noqa: E402
from icgen.data.config import GenerateConfig  # noqa: E402
from icgen.data.generate import generate  # noqa: E402
from icgen.sim.cluster import DaskPool  # noqa: E402
from icgen.sim.simulate import SimConfig, SimulatorPool  # noqa: E402

pytestmark = pytest.mark.ngspice
ICGEN = [sys.executable, "-m", "icgen.cli"]
DASK = str(Path(sys.executable).with_name("dask"))
CONFIG = GenerateConfig(n_working=120, chunk=96, seed=5)
ARGS = ["data", "generate", "--n-working", "120", "--chunk", "96", "--seed", "5"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The local pool's table for CONFIG."""
    return generate(CONFIG, tmp_path_factory.mktemp("local") / "data", workers=2)


def test_a_local_cluster_writes_the_same_table_as_the_local_pool(tmp_path, reference):
    table = generate(CONFIG, tmp_path / "data", scheduler="local:2")
    pd.testing.assert_frame_equal(table, reference)
    parts = sorted(p.name for p in (tmp_path / "data" / "parts").glob("part-*.parquet"))
    assert parts[0] == "part-00000000-00000096.parquet"  # part boundaries by design index, as locally
    meta = (tmp_path / "data" / "meta.json").read_text()
    assert '"engine": "dask"' in meta and '"scheduler": "local:2"' in meta


def test_a_poisoned_design_costs_only_itself(ptm65):
    designs = random_designs(ptm65, 40, seed=2)
    config = SimConfig(tech=ptm65)
    with SimulatorPool(workers=2) as local:
        expected = dict(local.map(designs, config))
    with DaskPool("local:2", chunk=8) as pool:
        results = dict(pool.map(designs, config, debug={13: "segfault"}))
    assert results[13].status == Status.FAILED and "second try" in results[13].reason
    assert all(results[i].metrics == expected[i].metrics and results[i].status == expected[i].status
               for i in range(40) if i != 13)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_parts(folder: Path, n: int, proc, deadline_s: float = 120) -> None:
    deadline = time.time() + deadline_s
    while len(list((folder / "parts").glob("part-*.parquet"))) < n:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() < deadline, "no progress"
        time.sleep(0.05)


def test_a_real_scheduler_survives_a_worker_killed_mid_run(tmp_path, reference):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    workers = [subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for _ in range(2)]
    try:
        out = tmp_path / "data"
        run = subprocess.Popen(ICGEN + ARGS + ["--out", str(out), "--scheduler", address],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_parts(out, 2, run)
        os.kill(workers[0].pid, signal.SIGKILL)  # mid-run: the client is still submitting and writing parts
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        pd.testing.assert_frame_equal(pd.read_parquet(out / "designs.parquet"), reference)
    finally:
        for proc in workers + [scheduler]:
            proc.kill()
            proc.wait()


def test_a_client_killed_mid_run_resumes_without_a_duplicate_row(tmp_path, reference):
    out = tmp_path / "data"
    command = ICGEN + ARGS + ["--out", str(out), "--scheduler", "local:2"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_parts(out, 2, run)
    os.killpg(run.pid, signal.SIGKILL)  # the client and its local cluster
    run.wait()
    assert not (out / "designs.parquet").exists()
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    table = pd.read_parquet(out / "designs.parquet")
    assert table["index"].is_unique
    pd.testing.assert_frame_equal(table, reference)


def test_eval_on_a_local_cluster_gives_the_local_outcomes(tmp_path):
    """icgen eval --scheduler: the same designs and verdicts as the local pool, target by target."""
    import json

    from click.testing import CliRunner

    from icgen.cli import main

    args = ["eval", "--n", "3", "--no-hand", "--model", "none", "--budget", "6", "--methods", "nearest-neighbour,loop"]
    outcomes = {}
    for name, extra in (("local", []), ("dask", ["--scheduler", "local:2"])):
        result = CliRunner().invoke(main, args + ["--out", str(tmp_path / name)] + extra)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in (tmp_path / name / "outcomes.jsonl").read_text().splitlines()]
        outcomes[name] = {(o["method"], o["target"]): (o["met"], o["design"], o["simulations"]) for o in rows}
    assert outcomes["dask"] == outcomes["local"] and len(outcomes["local"]) == 6
    meta = json.loads((tmp_path / "dask" / "meta.json").read_text())
    assert meta["engine"]["engine"] == "dask" and meta["engine"]["workers"] == 2
