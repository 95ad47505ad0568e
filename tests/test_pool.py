"""The simulator pool's guarantees: no user init file runs, a killed worker leaves nothing behind, and a design
whose worker dies or hangs gets exactly one more try on a fresh worker."""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from icgen.core.design import EXAMPLE_DESIGN
from icgen.sim.simulate import TRACE_ENV, SimConfig, SimulatorPool

pytestmark = pytest.mark.ngspice


def booby_trapped(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A working folder and a fake home whose .spiceinit and spinit would `shell touch` a marker."""
    marker = tmp_path / "pwned"
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    for folder in (cwd, home):
        folder.mkdir()
        for name in (".spiceinit", "spinit"):
            (folder / name).write_text(f"* init\nshell touch {marker}\n")
    return cwd, home, marker


@pytest.mark.parametrize("backend", ["shared", "batch"])
def test_no_spiceinit_from_the_users_folder_or_home_runs_in_the_pool(tmp_path, monkeypatch, ptm65, backend):
    cwd, home, marker = booby_trapped(tmp_path)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    with SimulatorPool(workers=1, backend=backend) as pool:
        results = dict(pool.map([EXAMPLE_DESIGN] * 2, SimConfig(tech=ptm65, backend=backend)))
    assert all(r.status == "ok" for r in results.values())
    assert not marker.exists()


IN_PROCESS = textwrap.dedent("""
    import sys
    from icgen.core.design import EXAMPLE_DESIGN
    from icgen.core.tech import load_technology
    from icgen.sim.backends import make_backend
    from icgen.sim.simulate import SimConfig, simulate_with
    tech = load_technology("ptm65")
    result = simulate_with(make_backend(sys.argv[1]), EXAMPLE_DESIGN, SimConfig(tech=tech, backend=sys.argv[1]))
    print(result.status)
""")


@pytest.mark.parametrize("backend", ["shared", "batch"])
def test_no_spiceinit_runs_when_a_backend_is_used_in_process(tmp_path, backend):
    cwd, home, marker = booby_trapped(tmp_path)
    out = subprocess.run([sys.executable, "-c", IN_PROCESS, backend], cwd=cwd, env={**os.environ, "HOME": str(home)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "ok"
    assert not marker.exists()


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_libngspice_never_looks_for_the_spiceinit_in_the_password_databases_home(tmp_path):
    """libngspice takes ~ from getpwuid, not $HOME, so a fake HOME proves nothing; watch what it opens (from a
    folder without a .spiceinit, where libngspice 39 goes on to look in ~)."""
    _, home, _ = booby_trapped(tmp_path)
    cwd = tmp_path / "clean"
    cwd.mkdir()
    log = tmp_path / "strace.log"
    out = subprocess.run(["strace", "-f", "-e", "trace=access,openat,stat,newfstatat", "-o", str(log),
                          sys.executable, "-c", IN_PROCESS, "shared"], cwd=cwd, env={**os.environ, "HOME": str(home)},
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and "ptrace" in out.stderr:
        pytest.skip("ptrace is not allowed here")
    assert out.returncode == 0, out.stderr
    looked = [line for line in log.read_text().splitlines() if "spiceinit" in line]
    assert looked, "libngspice read no .spiceinit at all: has the search changed?"
    # only the placeholder in the private start-up folder, never ~/ (from the password database) or $HOME
    assert all('".spiceinit"' in line or "/icgen-init-" in line for line in looked), looked
    for forbidden in (pwd.getpwuid(os.getuid()).pw_dir, str(home), str(cwd)):
        assert not any(f'"{forbidden}/.spiceinit"' in line for line in looked), looked


def _watch_and_kill(pool: SimulatorPool, found: threading.Event, kills: list) -> None:
    """SIGKILL the worker whose folder holds a batch run's temporary folder, once."""
    deadline = time.time() + 60
    while time.time() < deadline and not found.is_set():
        for w in list(pool._workers):
            if w.task is not None and os.path.isdir(w.folder) and any(n.startswith("icgen-") for n in os.listdir(w.folder)):
                kills.append((w.process.pid, w.folder, w.task[0]))
                os.kill(w.process.pid, signal.SIGKILL)
                found.set()
                return
        time.sleep(0.0005)


def test_a_worker_killed_mid_run_leaves_no_temporary_files(tmp_path, monkeypatch, ptm65):
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    found, kills = threading.Event(), []
    with SimulatorPool(workers=1, backend="batch") as pool:
        assert Path(pool.folder).parent == root
        watcher = threading.Thread(target=_watch_and_kill, args=(pool, found, kills), daemon=True)
        watcher.start()
        results = dict(pool.map([EXAMPLE_DESIGN] * 40, SimConfig(tech=ptm65, backend="batch")))
        watcher.join()
        assert kills, "the batch run's temporary folder was never seen"
        _, killed_folder, index = kills[0]
        assert not os.path.exists(killed_folder)  # removed when the worker was replaced
        assert pool.retries == 1 and pool.crashes == 0
    assert results[index].status == "ok" and len(results) == 40
    assert list(root.iterdir()) == []  # the pool's folder went with the pool


def _trace_lines(path: Path) -> list[tuple[str, int, int]]:
    if not path.is_file():
        return []
    return [(what, int(pid), int(index)) for what, pid, index in (line.split() for line in path.read_text().splitlines())]


def test_a_design_that_always_kills_its_worker_fails_after_exactly_one_retry(tmp_path, monkeypatch, ptm65):
    trace = tmp_path / "trace"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    with SimulatorPool(workers=1) as pool:
        results = dict(pool.map([EXAMPLE_DESIGN] * 4, SimConfig(tech=ptm65), debug={1: "segfault"}))
        assert pool.retries == 1 and pool.crashes == 1 and pool.timeouts == 0
    assert results[1].status == "failed"
    assert "SIGSEGV" in results[1].reason and "second try" in results[1].reason
    assert all(results[i].status == "ok" for i in (0, 2, 3))
    tries = [pid for what, pid, index in _trace_lines(trace) if what == "start" and index == 1]
    assert len(tries) == 2 and tries[0] != tries[1]  # once more, on a fresh worker, and no more


def test_a_design_whose_worker_is_killed_from_outside_succeeds_on_the_retry(tmp_path, monkeypatch, ptm65):
    trace = tmp_path / "trace"
    monkeypatch.setenv(TRACE_ENV, str(trace))

    def kill_the_first_worker_on_design_1() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            started = [pid for what, pid, index in _trace_lines(trace) if what == "start" and index == 1]
            if started:
                os.kill(started[0], signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_first_worker_on_design_1, daemon=True)
    killer.start()
    with SimulatorPool(workers=2) as pool:
        results = dict(pool.map([EXAMPLE_DESIGN] * 4, SimConfig(tech=ptm65), debug={1: "slow"}))
        assert pool.retries == 1 and pool.crashes == 0
    killer.join()
    assert all(r.status == "ok" for r in results.values()) and sorted(results) == [0, 1, 2, 3]
    tries = [(what, pid) for what, pid, index in _trace_lines(trace) if index == 1]
    assert [what for what, _ in tries] == ["start", "start", "end"] and tries[0][1] != tries[1][1]


def test_a_design_that_hangs_twice_fails_and_the_rest_are_kept(ptm65):
    with SimulatorPool(workers=2, timeout_s=2.0) as pool:
        results = dict(pool.map([EXAMPLE_DESIGN] * 3, SimConfig(tech=ptm65), debug={0: "hang"}))
        assert pool.retries == 1 and pool.timeouts == 1
    assert "timed out" in results[0].reason and results[0].status == "failed"
    assert results[1].status == results[2].status == "ok"


def test_leaving_map_early_does_not_leak_answers_into_the_next_map(ptm65):
    config = SimConfig(tech=ptm65)
    with SimulatorPool(workers=2) as pool:
        for _ in pool.map([EXAMPLE_DESIGN] * 6, config):
            break
        results = list(pool.map([EXAMPLE_DESIGN] * 3, config))
    assert sorted(i for i, _ in results) == [0, 1, 2] and all(r.status == "ok" for _, r in results)


OPEN_A_POOL = "from icgen.sim.simulate import SimulatorPool\nimport time\npool = SimulatorPool(workers=1).__enter__()\n" \
              "print(pool.folder, flush=True)\ntime.sleep(120)\n"


def _pool_in_a_subprocess(root: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", OPEN_A_POOL], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(root)}, start_new_session=True)
    folder = Path(proc.stdout.readline().strip())
    assert folder.parent == root and folder.is_dir()
    return proc, folder


def test_the_workers_of_a_killed_parent_remove_their_folders(tmp_path):
    root = tmp_path / "tmp"
    root.mkdir()
    proc, _ = _pool_in_a_subprocess(root)
    proc.kill()  # the parent only: its workers see the pipe close
    proc.wait()
    deadline = time.time() + 30
    while list(root.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    assert list(root.iterdir()) == []


def test_a_pool_killed_with_its_workers_is_cleaned_up_by_the_next_pool(tmp_path, monkeypatch):
    root = tmp_path / "tmp"
    root.mkdir()
    proc, folder = _pool_in_a_subprocess(root)
    os.killpg(proc.pid, signal.SIGKILL)  # parent and workers at once: nobody is left to clean up
    proc.wait()
    assert folder.is_dir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    with SimulatorPool(workers=1) as pool:
        assert [p.name for p in root.iterdir()] == [Path(pool.folder).name]
    assert list(root.iterdir()) == []
