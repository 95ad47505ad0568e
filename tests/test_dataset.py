"""The dataset: deterministic, resumable after SIGKILL, every row kept with its status."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from icgen.core.sampling import sample_designs
from icgen.data.generate import GenerateConfig, generate
from icgen.sim.simulate import TRACE_ENV

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


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class _Trace:
    """The workers' `start|end PID INDEX` lines (TRACE_ENV), read as they grow."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, []

    def read(self) -> list[tuple[str, int, int]]:
        if self.path.is_file():
            with open(self.path) as fh:
                fh.seek(self.offset)
                text = fh.read()
            complete = text[: text.rfind("\n") + 1]
            self.offset += len(complete)
            self.lines += [(w, int(p), int(i)) for w, p, i in (line.split() for line in complete.splitlines())]
        return self.lines

    def last_of(self, pid: int) -> tuple[str, int, int] | None:
        return next((line for line in reversed(self.read()) if line[1] == pid), None)


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds worker processes through /proc")
def test_workers_killed_mid_design_leave_the_table_unchanged(tmp_path):
    """Three SIGKILLs, each on a worker while it simulates a design: each design is retried on a fresh worker."""
    args = ["data", "generate", "--n-working", "150", "--chunk", "24", "--workers", "2", "--seed", "3"]
    reference = subprocess.run(ICGEN + args + ["--out", str(tmp_path / "ref")], capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    trace = _Trace(tmp_path / "trace")
    proc = subprocess.Popen(ICGEN + args + ["--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, TRACE_ENV: str(trace.path)})
    landed: list[tuple[int, int]] = []
    next_kill_at = 60  # trace lines; kills are spread over the run
    while proc.poll() is None and len(landed) < 3:
        lines = trace.read()
        if len(lines) >= next_kill_at and lines[-1][0] == "start" and _parent_of(lines[-1][1]) == proc.pid:
            _, pid, index = lines[-1]
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
            if trace.last_of(pid) == ("start", pid, index):  # it died inside that design, not between two
                landed.append((pid, index))
                next_kill_at = len(trace.read()) + 60
        time.sleep(0.0005)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert len(landed) == 3, f"only {len(landed)} kills landed inside a design"
    lines = trace.read()
    for pid, index in landed:  # ...and the design was simulated again, to the end, by another worker
        assert any(w == "end" and p != pid and i == index for w, p, i in lines)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ref" / "designs.parquet"),
                                  pd.read_parquet(tmp_path / "killed" / "designs.parquet"))


def test_every_killed_session_is_counted_with_its_wall_time(tmp_path):
    """Four invocations, three SIGKILLed (one while its workers start, two mid-chunk): four sessions, and the
    wall time of each, from the moment it is counted, kept to within about a second."""
    out, trace = tmp_path / "data", _Trace(tmp_path / "trace")
    args = ["data", "generate", "--n-working", "150", "--chunk", "700", "--workers", "2", "--seed", "3",
            "--out", str(out)]
    env = {**os.environ, TRACE_ENV: str(trace.path)}
    progress = out / "progress.json"

    def sessions() -> int:
        try:
            return json.loads(progress.read_text())["sessions"]
        except (OSError, ValueError):
            return 0

    real = counted = 0.0
    for invocation in range(4):
        begun = time.time()
        proc = subprocess.Popen(ICGEN + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        while sessions() <= invocation and proc.poll() is None:
            time.sleep(0.002)
        counted_at = time.time()
        if invocation < 3:
            if invocation > 0:  # mid-chunk: the chunk is the whole run, so no part is written before this
                lines = len(trace.read())
                while len(trace.read()) < lines + 800 and proc.poll() is None:
                    time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=300)
        ended = time.time()
        assert proc.returncode == (0 if invocation == 3 else -signal.SIGKILL)
        real += ended - begun
        # the finished run's session ends at its last write (the splits and the exit come after)
        counted += (progress.stat().st_mtime if invocation == 3 else ended) - counted_at
    meta, state = json.loads((out / "meta.json").read_text()), json.loads(progress.read_text())
    assert meta["sessions"] == state["sessions"] == 4
    print(f"wall_s {state['wall_s']:.2f} s; real {real:.2f} s, of it after each session was counted {counted:.2f} s")
    assert counted - 3 * 1.15 - 0.2 <= state["wall_s"] <= real, (state["wall_s"], counted, real)  # <= ~1 s per kill
    assert meta["wall_s"] <= state["wall_s"] + 0.05  # meta is written just before the session closes


def test_a_dataset_of_a_users_own_technology_finds_it_through_its_descriptor(tmp_path):
    """A user's technology is named only in its descriptor: the fix and preference draws load it from the path the
    dataset records (a name alone would be refused as unknown)."""
    import json

    from icgen.core.tech import TechError, load_technology, spice_dir
    from icgen.data.dataset import Dataset, dataset_technology

    text = (spice_dir() / "ptm65.yaml").read_text().replace("name: ptm65", "name: mytech", 1)
    text = text.replace("model_file: ptm65.lib", f"model_file: {spice_dir() / 'ptm65.lib'}", 1)
    descriptor = tmp_path / "mytech.yaml"
    descriptor.write_text(text)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"technology": {"name": "mytech", "descriptor": str(descriptor)}}))
    assert dataset_technology(Dataset(folder)).name == "mytech"
    with pytest.raises(TechError, match="unknown technology 'mytech'"):
        load_technology("mytech")
    (folder / "meta.json").write_text(json.dumps({"technology": {"name": "ptm65"}}))
    assert dataset_technology(Dataset(folder)).name == "ptm65"
