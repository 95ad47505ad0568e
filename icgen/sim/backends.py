"""The simulator backends: the same circuit text in, op values and the AC sweep out, or an error message.

`shared` (PySpice's NgSpiceShared on libngspice, the main one) and `batch` (an `ngspice -b` subprocess, used to
cross-check) are looked up by name in `REGISTRY`.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from ..core.deck import OP_PARAMETERS, TEMPLATE, Sweep, device_parameter
from ..core.tech import Technology

# libngspice's OpenMP threads fight over the cores when every worker has them: 40x slower under load.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass(frozen=True)
class RawSimulation:
    """What a backend returns: op values keyed like `vout`, `M1.vdsat`, the AC sweep, or an error message."""

    op: dict[str, float] = field(default_factory=dict)
    frequency_hz: np.ndarray | None = None
    response: np.ndarray | None = None
    error: str | None = None


def _op_keys(tech: Technology) -> list[tuple[str, str]]:
    """(our key, ngspice vector name) for every op value read."""
    keys = [("vout", "v(vout)"), ("vnet3", "v(net3)"), ("vnet2", "v(net2)"), ("vnet1", "v(net1)"),
            ("ivdd", "i(vdd)")]
    for d in TEMPLATE:
        keys += [(f"{d.name}.{p}", device_parameter(d, tech, p)) for p in OP_PARAMETERS]
    return keys


def _is_real_error(line: str) -> bool:
    """ngspice stderr lines that mean failure; 'Note:' (gmin stepping, init file) and warnings do not."""
    text = line.strip()
    if not text or text.startswith(("Warning:", "Note:", "warning:", "Using ")):
        return False
    benign = ("Unsupported Ngspice version", "Supplies reduced", "gmin stepping", "source stepping",
              "Trying gmin", "Trying source", "toxe, toxp and dtox")
    return not any(b in text for b in benign)


SPICEINIT_PLACEHOLDER = "* icgen: ngspice reads this empty init file instead of a .spiceinit in ~ or the user's folder\n"


@contextlib.contextmanager
def private_folder_for_init() -> Iterator[Path]:
    """Be in a fresh folder holding a harmless `.spiceinit` while libngspice starts.

    libngspice 39 sources `./.spiceinit`, else `~/.spiceinit` with ~ taken from the password database (not
    $HOME), and either may hold `shell` commands; a `.spiceinit` in the current folder stops the search.
    """
    with tempfile.TemporaryDirectory(prefix="icgen-init-") as folder:
        Path(folder, ".spiceinit").write_text(SPICEINIT_PLACEHOLDER)
        try:
            previous: str | None = os.getcwd()
        except FileNotFoundError:  # the current folder was deleted
            previous = None
        os.chdir(folder)
        try:
            yield Path(folder)
        finally:
            if previous is not None:
                with contextlib.suppress(OSError):
                    os.chdir(previous)


def _parent_death_signal():
    """A preexec_fn that makes the child get SIGKILL when its parent dies (a killed worker leaves no ngspice)."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None).prctl  # looked up here: the child, between fork and exec, only calls it
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


class SharedBackend:
    """ngspice as a shared library through PySpice, with PySpice's stderr-is-error rule replaced by ours."""

    name = "shared"

    def __init__(self) -> None:
        import logging

        from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi, ffi_string_utf8

        logging.getLogger("PySpice").setLevel(logging.CRITICAL)
        self._ffi = ffi

        class _Ngspice(NgSpiceShared):
            @staticmethod
            def _send_char(message_c, ngspice_id, user_data):  # noqa: ARG004 - ngspice's callback signature
                self_ = ffi.from_handle(user_data)
                prefix, _, content = ffi_string_utf8(message_c).partition(" ")
                (self_._stderr if prefix == "stderr" else self_._stdout).append(content)
                return 0

        with private_folder_for_init():
            self._ng = _Ngspice(ngspice_id=0)
        self._lib = self._ng._ngspice_shared
        self._ng.exec_command("set num_threads=1")

    def _command(self, command: str) -> list[str]:
        """Run a command; return the stderr lines that are real errors."""
        self._ng.clear_output()
        self._lib.ngSpice_Command(command.encode("ascii"))
        return [line for line in self._ng._stderr if _is_real_error(line)]

    def _vector(self, name: str) -> np.ndarray | None:
        ffi = self._ffi
        info = self._lib.ngGet_Vec_Info(name.encode("ascii"))
        if info == ffi.NULL or info.v_length <= 0:
            return None
        n = info.v_length
        if info.v_compdata != ffi.NULL:
            return np.frombuffer(ffi.buffer(info.v_compdata, n * 16), dtype=np.complex128).copy()
        if info.v_realdata == ffi.NULL:
            return None
        return np.frombuffer(ffi.buffer(info.v_realdata, n * 8), dtype=np.float64).copy()

    def run_vectors(self, circuit: str, analyses) -> tuple[dict[str, np.ndarray], str | None]:
        """Any analyses on a circuit: (vectors by name, error or None)."""
        return run_vectors_shared(self, circuit, analyses)

    def run(self, circuit: str, tech: Technology, sweep: Sweep) -> RawSimulation:
        try:
            self._ng.clear_output()
            self._ng.load_circuit(circuit + ".end\n")
            errors = [line for line in self._ng._stderr if _is_real_error(line)]
            if errors:
                return RawSimulation(error="; ".join(errors[:3]))
            errors = self._command("op")
            op: dict[str, float] = {}
            for key, name in _op_keys(tech):
                vec = self._vector(name)
                if vec is None or vec.size == 0:
                    return RawSimulation(error="; ".join(errors[:3]) or f"operating point did not converge ({name})")
                op[key] = float(np.real(vec[0]))
            errors = self._command(sweep.command())
            frequency, response = self._vector("frequency"), self._vector("v(vout)")
            if frequency is None or response is None or len(frequency) < 2:
                return RawSimulation(op=op, error="; ".join(errors[:3]) or "AC analysis produced no sweep")
            return RawSimulation(op=op, frequency_hz=np.real(frequency), response=response.astype(complex))
        finally:
            self._command("destroy all")
            self._command("remcirc")


def run_vectors_shared(backend: SharedBackend, circuit: str, analyses) -> tuple[dict[str, np.ndarray], str | None]:
    """Load a circuit, run each analysis (icgen.core.signoff.Analysis) and read its vectors right after it."""
    vectors: dict[str, np.ndarray] = {}
    try:
        backend._ng.clear_output()
        backend._ng.load_circuit(circuit + ".end\n")
        errors = [line for line in backend._ng._stderr if _is_real_error(line)]
        if errors:
            return vectors, "; ".join(errors[:3])
        for analysis in analyses:
            errors = backend._command(analysis.command)
            for name in analysis.vectors:
                vec = backend._vector(name)
                if vec is None or vec.size == 0:
                    return vectors, "; ".join(errors[:3]) or f"{analysis.command.split()[0]} gave no {name}"
                vectors[name] = vec
        return vectors, None
    finally:
        backend._command("destroy all")
        backend._command("remcirc")


class BatchBackend:
    """`ngspice -b -n` on the same circuit, op values printed, the AC sweep written with wrdata.

    `-n` skips `.spiceinit` (current folder and $HOME); the deck runs in its own temporary folder.
    """

    name = "batch"

    def __init__(self, executable: str = "ngspice", timeout_s: float = 60.0) -> None:
        path = shutil.which(executable)
        if path is None:
            raise RuntimeError(f"{executable} not found; install Debian's ngspice (apt-get install ngspice)")
        self.executable = path
        self.timeout_s = timeout_s
        self._preexec = _parent_death_signal()

    def run(self, circuit: str, tech: Technology, sweep: Sweep) -> RawSimulation:
        with tempfile.TemporaryDirectory(prefix="icgen-") as tmp:
            ac_file = Path(tmp) / "ac.txt"
            deck_file = Path(tmp) / "deck.cir"
            deck_file.write_text(circuit + batch_control_block(tech, sweep, str(ac_file)))
            try:
                proc = subprocess.run([self.executable, "-b", "-n", str(deck_file)], capture_output=True, text=True,
                                      timeout=self.timeout_s, cwd=tmp, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                      preexec_fn=self._preexec)
            except subprocess.TimeoutExpired:
                return RawSimulation(error=f"ngspice -b timed out after {self.timeout_s:g} s")
            values = _parse_prints(proc.stdout)
            op = {}
            for key, name in _op_keys(tech):
                if name.lower() not in values:
                    errors = [line for line in proc.stderr.splitlines() if _is_real_error(line)]
                    return RawSimulation(error="; ".join(errors[:3]) or f"operating point did not converge ({name})")
                op[key] = values[name.lower()]
            if not ac_file.is_file():
                return RawSimulation(op=op, error="AC analysis produced no sweep")
            data = np.loadtxt(ac_file, ndmin=2)
            return RawSimulation(op=op, frequency_hz=data[:, 0], response=data[:, 1] + 1j * data[:, 2])


def batch_control_block(tech: Technology, sweep: Sweep, ac_file: str) -> str:
    prints = "\n".join(f"print {name}" for _, name in _op_keys(tech))
    return (".control\nset num_threads=1\nop\n" + prints + "\n" + sweep.command() + "\n"
            + f"set wr_singlescale\nwrdata {ac_file} v(vout)\nquit\n.endc\n.end\n")


def _parse_prints(stdout: str) -> dict[str, float]:
    values = {}
    for line in stdout.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            try:
                values[name.strip().lower()] = float(value.split()[0])
            except (ValueError, IndexError):
                continue
    return values


class Backend(StrEnum):
    """The simulator backends, by name: shared (libngspice through PySpice) and batch (`ngspice -b`)."""

    SHARED = "shared"
    BATCH = "batch"


REGISTRY = {Backend.SHARED: SharedBackend, Backend.BATCH: BatchBackend}
"""Backend name -> class; a new backend is one class with `name` and `run(circuit, tech, sweep)`, and one entry."""
BACKENDS: tuple[str, ...] = tuple(b.value for b in Backend)
_LOADED: dict[str, object] = {}


def make_backend(name: str):
    """The backend by name, one per process (libngspice can be loaded only once per process)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    if name not in _LOADED:
        _LOADED[name] = REGISTRY[Backend(name)]()
    return _LOADED[name]


def ngspice_version() -> str:
    """`ngspice-39` or "unknown": the version of the ngspice on PATH, for provenance."""
    try:
        out = subprocess.run(["ngspice", "--version"], capture_output=True, text=True, timeout=10).stdout
        return next((w for w in out.split() if w.startswith("ngspice-")), "unknown")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


