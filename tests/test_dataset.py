"""The dataset: deterministic, resumable after SIGKILL, every row kept with its status."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from icgen.core.sampling import sample_designs
from icgen.data.generate import GenerateConfig, generate

pytestmark = pytest.mark.ngspice
ICGEN = [sys.executable, "-m", "icgen.cli"]


def test_sobol_samples_are_reproducible_and_inside_bounds(ptm65):
    a = sample_designs(ptm65, seed=0, start=0, count=64)
    assert a == sample_designs(ptm65, seed=0, start=0, count=64)
    assert a[40:] == sample_designs(ptm65, seed=0, start=40, count=24)  # resuming mid-stream continues it
    assert a != sample_designs(ptm65, seed=1, start=0, count=64)
    assert all(not ptm65.out_of_bounds(d) for d in a)
    assert all(float(f"{d.W1:.3g}") == d.W1 and round(d.VIN, 3) == d.VIN for d in a)  # as a designer writes them


def test_same_seed_gives_the_same_table(tmp_path):
    config = GenerateConfig(n_working=40, chunk=32, seed=7)
    first = generate(config, tmp_path / "a", workers=2)
    second = generate(config, tmp_path / "b", workers=1)
    pd.testing.assert_frame_equal(first, second)
    assert first["working"].sum() == 40 and first["working"].iloc[-1]
    assert (first["working"] == ((first["status"] == "ok") & first["healthy"])).all()
    assert set(first["status"]) <= {"ok", "not_amplifier", "failed"}
    assert (first["status"] != "ok").any() and (~first["working"]).any()  # every simulated row is kept


def test_killed_run_resumes_to_the_uninterrupted_table(tmp_path):
    args = ["data", "generate", "--n-working", "150", "--chunk", "24", "--workers", "1", "--seed", "3"]
    reference = subprocess.run(ICGEN + args + ["--out", str(tmp_path / "ref")], capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(ICGEN + args + ["--out", str(killed_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while len(list((killed_dir / "parts").glob("part-*.parquet"))) < 3 and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # parent and its simulation workers, mid-chunk
    proc.wait()
    assert not (killed_dir / "designs.parquet").exists()
    resumed = subprocess.run(ICGEN + args + ["--out", str(killed_dir)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ref" / "designs.parquet"),
                                  pd.read_parquet(killed_dir / "designs.parquet"))
    meta = (killed_dir / "meta.json").read_text()
    assert '"sessions": 2' in meta


def test_resuming_with_other_settings_is_refused(tmp_path):
    generate(GenerateConfig(n_working=5, chunk=16, seed=1), tmp_path, workers=1)
    with pytest.raises(RuntimeError, match="seed"):
        generate(GenerateConfig(n_working=5, chunk=16, seed=2), tmp_path, workers=1)
