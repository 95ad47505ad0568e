"""Turn designs into measured results with ngspice, crash-proof and in parallel.

    simulate(design)                       # one design, in a worker process
    with SimulatorPool(workers=2) as pool:   # many designs; a crash or hang costs only that design
        for index, result in pool.map(designs): ...   # (after one more try on a fresh worker)

Two backends run the same deck: `shared` (PySpice's NgSpiceShared on libngspice, the main one) and `batch`
(an `ngspice -b` subprocess, used to cross-check). Each result has a status: ok, not_amplifier, failed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from ..core.corner import BIASES, Bias, Corner
from ..core.deck import Sweep, at_corner, render_circuit
from ..core.design import Design, Metrics
from ..core.measure import V2_HEALTH, Health, HealthRule, assess_health, measure
from ..core.signoff import BENCHES, SHELF_RATIO, Signoff, area_m2, estimates, has_shelf
from ..core.status import Status
from ..core.tech import Technology, load_technology
from .backends import BACKENDS, make_backend


@dataclass(frozen=True)
class SimResult:
    """One simulated design: status (ok | not_amplifier | failed), reason, metrics, health, and the sweep."""

    design: Design
    status: Status
    reason: str | None
    metrics: Metrics | None
    health: Health | None
    tech: str
    testbench: str
    backend: str
    seconds: float
    frequency_hz: np.ndarray | None = None
    response: np.ndarray | None = None
    signoff: Signoff | None = None
    corner: Corner | None = None
    """The PVT corner it was simulated at (None: the technology's own VDD and 27 °C)."""

    def to_dict(self, with_sweep: bool = False) -> dict[str, Any]:
        """JSON form: {"design", "metrics", "status", "reason", "health", ...}, SI units."""
        out: dict[str, Any] = {
            "design": self.design.to_dict(),
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "status": str(self.status), "reason": self.reason,
            "health": self.health.to_dict() if self.health else None,
            "tech": self.tech, "testbench": self.testbench, "backend": self.backend, "seconds": self.seconds,
        }
        if self.signoff is not None:
            out["signoff"] = self.signoff.to_dict()
        if self.corner is not None:
            out["corner"] = self.corner.to_dict()
        if with_sweep and self.frequency_hz is not None and self.response is not None:
            out["sweep"] = {"frequency_hz": self.frequency_hz.tolist(), "real": self.response.real.tolist(),
                            "imag": self.response.imag.tolist()}
        return out


# ----------------------------------------------------------------------------- one design

@dataclass(frozen=True)
class SimConfig:
    """How to simulate: technology, testbench, sweep and backend."""

    tech: Technology
    """The process to simulate on."""
    testbench: str = "feedback"
    """feedback (DC loop closed through a huge inductor) or fixed (both inputs at VIN, the original set-up)."""
    sweep: Sweep = Sweep()
    """The AC sweep."""
    backend: str = "shared"
    """shared (libngspice via PySpice) or batch (ngspice -b)."""
    signoff: bool = False
    """Also run every sign-off bench (icgen.core.signoff: buffer, steps, CMRR, PSRR, noise, swing) on an amplifier."""
    benches: tuple[str, ...] = ()
    """Run only these sign-off benches (e.g. ("buffer_ac",), which the UGB check needs); ignored with signoff."""
    estimates: bool = False
    """Compute the operating-point figures (offset, area, tail current, GBW and pole/zero estimates) even when no
    bench runs; they come with every bench anyway and cost no simulation."""
    health: HealthRule = V2_HEALTH
    """What a healthy operating point is: V2_HEALTH (a 50 mV saturation margin, inversion by gm/Id), the rule of
    dataset v2; V1_HEALTH reproduces the shipped dataset v1."""
    corner: Corner | None = None
    """Simulate at this PVT corner (its process, VDD and temperature; every bench too); None: the technology as is."""
    bias: str = Bias.TRACK_VDD
    """How VB1 follows a corner's supply: track-vdd (VDD - VB1 kept, the default) or fixed; VIN never moves."""
    mismatch: tuple[tuple[str, float], ...] = ()
    """Per-device threshold offsets ((M1, dVth), ...) in volts, as BSIM4's `delvto` (icgen.core.mismatch); the
    open-loop simulation only: no sign-off bench runs with them."""
    mismatch_seed: int | None = None
    """The ngspice seed (`.options seed=N`) of the models' own mismatch draws (icgen.core.mismatch's `models` mode,
    on a technology with its mismatch switched on); the open-loop simulation only, like `mismatch`."""

    def __post_init__(self) -> None:
        if (self.mismatch or self.mismatch_seed is not None) and (self.signoff or self.benches):
            raise ValueError("mismatch offsets apply to the open-loop simulation only; run no sign-off bench with them")
        if self.bias not in BIASES:
            raise ValueError(f"unknown bias {self.bias!r}; use one of {', '.join(BIASES)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        if (self.signoff or self.benches) and self.backend != "shared":
            raise ValueError("the sign-off benches run on the shared backend only")
        unknown = [b for b in self.benches if b not in BENCHES]
        if unknown:
            raise ValueError(f"unknown sign-off bench {unknown[0]!r}; use {', '.join(BENCHES)}")


def simulate_with(backend, design: Design, config: SimConfig) -> SimResult:
    """Simulate one design on a backend in this process and measure it (no crash protection)."""
    start = time.perf_counter()
    common = dict(design=design, tech=config.tech.name, testbench=config.testbench, backend=backend.name,
                  corner=config.corner)
    if config.corner is not None:  # simulate the moved design on the technology at the corner; report the design
        design, tech = at_corner(design, config.tech, config.corner, config.bias)
        config = dataclasses.replace(config, tech=tech, corner=None)
    circuit = render_circuit(design, config.tech, config.testbench, delvto=dict(config.mismatch),
                             seed=config.mismatch_seed)
    raw = backend.run(circuit, config.tech, config.sweep)
    if raw.error is not None and not raw.op:
        return SimResult(status=Status.FAILED, reason=raw.error, metrics=None, health=None,
                         seconds=time.perf_counter() - start, **common)
    health = assess_health(raw.op, config.tech.vdd_v, config.health)
    power_w = config.tech.vdd_v * abs(raw.op["ivdd"])
    if raw.error is not None:
        return SimResult(status=Status.FAILED, reason=raw.error, metrics=None, health=health,
                         seconds=time.perf_counter() - start, **common)
    metrics, reason = measure(raw.frequency_hz, raw.response, power_w)
    wanted = tuple(BENCHES) if config.signoff else config.benches
    figures = run_signoff(backend, design, config, raw, metrics, wanted) \
        if (wanted or config.estimates) and reason is None else None
    if figures is not None and figures.ugb_shelf:  # the open-loop UGB is not what the buffer delivers
        shelf = (f"UGB shelf (buffer bandwidth {figures.buffer_bw_hz or 0:.3g} Hz < {SHELF_RATIO:g} x UGB "
                 f"{metrics.ugb_hz:.3g} Hz)")
        health = dataclasses.replace(health, flags=health.flags + (shelf,))
    return SimResult(status=Status.OK if reason is None else Status.NOT_AMPLIFIER, reason=reason, metrics=metrics,
                     health=health, seconds=time.perf_counter() - start, frequency_hz=raw.frequency_hz,
                     response=raw.response, signoff=figures, **common)


def run_signoff(backend, design: Design, config: SimConfig, raw, metrics: Metrics,
                benches: tuple[str, ...] = tuple(BENCHES), timings: dict[str, float] | None = None) -> Signoff:
    """The sign-off benches (all, or those named) on one amplifier, in registry order; a bench that fails leaves its
    figures None and says why in `problems`. `timings`, when given, gains each bench's seconds (summed)."""
    tech = config.tech
    context = {"ugb_hz": metrics.ugb_hz, "open_loop": raw.response, "tail_current_a": abs(raw.op["M5.id"]),
               "c0_f": design.C0}
    figures: dict = {"offset_v": design.VIN - raw.op["vout"], "area_m2": area_m2(design, tech),
                     "itail_a": context["tail_current_a"],
                     **estimates(design, tech, raw.op, metrics.gain_db, metrics.bw3db_hz)}
    problems = []
    for bench in (b for name, b in BENCHES.items() if name in benches):
        started = time.perf_counter()
        vectors, error = backend.run_vectors(bench.circuit(design, tech, context), bench.analyses(design, tech, context))
        if timings is not None:
            timings[bench.name] = timings.get(bench.name, 0.0) + time.perf_counter() - started
        if error is not None:
            problems.append(f"{bench.name}: {error}")
            continue
        try:
            found = bench.measure(vectors, design, tech, context)
        except (ValueError, IndexError, FloatingPointError) as err:
            problems.append(f"{bench.name}: {type(err).__name__}: {err}")
            continue
        figures.update({k: v for k, v in found.items() if not k.startswith("_")})  # "_": for later benches only
        context.update(found)
    figures["ugb_shelf"] = "buffer_ac" in benches and has_shelf(metrics.ugb_hz, figures.get("buffer_bw_hz"))
    return Signoff(problems=tuple(problems), **figures)


# ----------------------------------------------------------------------------- worker pool

TRACE_ENV = "ICGEN_WORKER_TRACE"
"""Tests only: a file where each worker appends `start PID INDEX` and `end PID INDEX` around every design."""


def _trace(path: str | None, what: str, index: int) -> None:
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{what} {os.getpid()} {index}\n".encode())  # one write: lines from workers never mix
        finally:
            os.close(fd)


def _enter_private_folder(folder: str) -> None:
    """Work in `folder` (owned and removed by the parent) with HOME and TMPDIR there too.

    ngspice then never sees the user's folder or home, and whatever a killed worker leaves is inside `folder`.
    """
    sys.path[:] = [p or os.getcwd() for p in sys.path]  # '' meant the parent's folder; keep it importable
    os.chdir(folder)
    os.environ.update(HOME=folder, TMPDIR=folder)
    tempfile.tempdir = folder


def _worker_main(conn, backend_name: str, folder: str) -> None:
    """A worker: build the backend once, then simulate tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    _enter_private_folder(folder)
    backend = make_backend(backend_name)
    trace = os.environ.get(TRACE_ENV)
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent died without closing the pool: clean up after it
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(folder))  # the pool's folder, once its last worker has gone
            return
        if task is None:
            return
        index, design, config, debug = task
        _trace(trace, "start", index)
        if debug == "segfault":  # for tests: die the way libngspice does
            os.kill(os.getpid(), signal.SIGSEGV)
        if debug == "hang":
            time.sleep(3600)
        if debug == "slow":  # for tests: time to kill this worker from outside mid-design
            time.sleep(1.0)
        try:
            result = simulate_with(backend, design, config)
        except Exception as err:  # a bug in measurement must not kill the run; report it on the design
            result = SimResult(design=design, status=Status.FAILED, reason=f"{type(err).__name__}: {err}", metrics=None,
                               health=None, tech=config.tech.name, testbench=config.testbench,
                               backend=backend_name, seconds=0.0, corner=config.corner)
        _trace(trace, "end", index)
        conn.send((index, result))


class _Worker:
    def __init__(self, ctx, backend: str, parent_folder: str) -> None:
        self.folder = tempfile.mkdtemp(prefix="worker-", dir=parent_folder)
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, backend, self.folder), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple | None = None
        self.attempt = 0
        self.started = 0.0
        self.done = 0

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _exit_reason(process) -> str:
    process.join(timeout=1)
    code = process.exitcode
    if code is not None and code < 0:
        return f"killed by signal {-code}, {signal.Signals(-code).name}"
    return f"exit code {code}"


_POOL_PREFIX = "icgen-pool-"


def _remove_stale_pool_folders() -> None:
    """Remove the folders of pools whose process was killed with its workers (SIGKILL to the process group)."""
    root = tempfile.gettempdir()
    if not hasattr(os, "getuid"):
        return
    try:
        names = [n for n in os.listdir(root) if n.startswith(_POOL_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        try:
            pid = int(name[len(_POOL_PREFIX):].split("-")[0])
            if os.stat(path).st_uid != os.getuid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, OSError):  # not ours, or its process is alive (or not ours to signal)
            continue


class SimulatorPool:
    """Worker processes that each own one ngspice; a segfault or hang costs one design, never the run.

    A design whose worker dies (crash, killed from outside) or hangs is tried once more on a fresh worker; if
    that one dies or hangs too, the design is `failed` with the reason. `crashes` and `timeouts` count the
    designs lost that way, `retries` the second tries. Workers are replaced after `recycle_after` simulations
    to bound ngspice's slow memory growth (None: never): about 1 MB per 1000 simulations, while a restart costs
    about 0.2 s, so every 10000 bounds it to ~10 MB at no measurable cost (bench/bench_recycle.py). Each worker
    runs in a temporary folder of the pool's, removed when the worker is replaced and when the pool closes.
    """

    ATTEMPTS = 2
    """Tries per design when its worker dies or hangs: the first, and one on a fresh worker."""

    def __init__(self, workers: int | None = None, backend: str = "shared", timeout_s: float = 30.0,
                 recycle_after: int | None = 10_000) -> None:
        self.n_workers = max(1, workers or os.cpu_count() or 1)
        self.backend = backend
        self.timeout_s = timeout_s
        self.recycle_after = recycle_after
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._folder: str | None = None
        self.crashes = 0
        self.timeouts = 0
        self.retries = 0

    @property
    def folder(self) -> str | None:
        """The temporary folder holding the workers' folders (None when closed)."""
        return self._folder

    def __enter__(self) -> "SimulatorPool":
        _remove_stale_pool_folders()
        self._folder = tempfile.mkdtemp(prefix=f"{_POOL_PREFIX}{os.getpid()}-")
        try:
            self._workers = [self._start() for _ in range(self.n_workers)]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> _Worker:
        return _Worker(self._ctx, self.backend, self._folder)

    def close(self) -> None:
        for w in self._workers:
            try:
                if w.process.is_alive() and w.task is None:
                    w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self._workers:
            w.process.join(timeout=2)
            w.kill()
        self._workers = []
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = self._start()
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def _assign(self, worker: _Worker, task: tuple, attempt: int) -> _Worker:
        """Send a task; a worker that died while idle (killed from outside) is replaced first."""
        for _ in range(2):
            worker.task, worker.attempt, worker.started = task, attempt, time.perf_counter()
            try:
                worker.conn.send(task)
                return worker
            except OSError:
                worker.task = None
                worker = self._replace(worker)
        raise RuntimeError("a fresh simulation worker could not be reached")

    def _give_up_or_retry(self, worker: _Worker, why: str, retry: deque,
                          timed_out: bool = False) -> tuple[int, SimResult] | None:
        """The one rule for a design whose worker died or hung: again on a fresh worker, then failed."""
        task, attempt = worker.task, worker.attempt
        seconds = time.perf_counter() - worker.started
        worker.task = None
        self._replace(worker)
        if attempt + 1 < self.ATTEMPTS:
            self.retries += 1
            retry.append((task, attempt + 1))
            return None
        if timed_out:
            self.timeouts += 1
        else:
            self.crashes += 1
        index, design, config, _ = task
        reason = f"{why} on its second try, on a fresh worker; the design was skipped"
        return index, SimResult(design=design, status=Status.FAILED, reason=reason, metrics=None, health=None,
                                tech=config.tech.name, testbench=config.testbench, backend=self.backend,
                                seconds=seconds, corner=config.corner)

    def map(self, designs: Iterable[Design], config: SimConfig | Sequence[SimConfig],
            debug: dict[int, str] | None = None) -> Iterator[tuple[int, SimResult]]:
        """Yield (index, result) for every design, in completion order; `config` may also be one config per design
        (Monte Carlo samples of one design, each with its own offsets)."""
        if not self._workers:
            raise RuntimeError("use SimulatorPool as a context manager")
        debug = debug or {}
        pending = iter(enumerate(designs))
        retry: deque = deque()
        exhausted = False
        try:
            while True:
                for w in list(self._workers):
                    if w.task is not None:
                        continue
                    if retry:
                        task, attempt = retry.popleft()
                    elif exhausted or (nxt := next(pending, None)) is None:
                        exhausted = True
                        continue
                    else:
                        own = config if isinstance(config, SimConfig) else config[nxt[0]]
                        task, attempt = (nxt[0], nxt[1], own, debug.get(nxt[0])), 0
                    if self.recycle_after is not None and w.done >= self.recycle_after:
                        w = self._replace(w)
                    self._assign(w, task, attempt)
                busy = [w for w in self._workers if w.task is not None]
                if not busy:
                    return
                now = time.perf_counter()
                wait_s = max(0.0, min(w.started + self.timeout_s - now for w in busy))
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wait_s + 0.01)
                for w in busy:
                    lost = None
                    if w.conn in ready or w.conn.poll():  # an answer (or EOF) that came after the wait
                        try:
                            index, result = w.conn.recv()
                        except (EOFError, OSError):
                            lost = self._give_up_or_retry(w, f"simulator crashed ({_exit_reason(w.process)})", retry)
                        else:
                            w.task = None
                            w.done += 1
                            yield index, result
                            continue
                    elif w.process.sentinel in ready or not w.process.is_alive():
                        lost = self._give_up_or_retry(w, f"simulator crashed ({_exit_reason(w.process)})", retry)
                    elif time.perf_counter() - w.started > self.timeout_s:
                        lost = self._give_up_or_retry(w, f"simulation timed out after {self.timeout_s:g} s", retry,
                                                      timed_out=True)
                    if lost is not None:
                        yield lost
        finally:
            # left early (an exception, or the caller stopped): a busy worker would answer the next map, so it
            # is stopped here and replaced when next given a task
            for w in self._workers:
                if w.task is not None:
                    w.task = None
                    w.kill()


def simulate(design: Design, tech: Technology | str = "ptm65", testbench: str = "feedback",
             sweep: Sweep = Sweep(), backend: str = "shared", timeout_s: float = 60.0,
             signoff: bool = False) -> SimResult:
    """Simulate one design in a worker process (safe against simulator crashes) and measure it (and, with
    `signoff`, run the sign-off benches of icgen.core.signoff)."""
    config = SimConfig(tech=load_technology(tech) if isinstance(tech, str) else tech, testbench=testbench,
                       sweep=sweep, backend=backend, signoff=signoff)
    with SimulatorPool(workers=1, backend=backend, timeout_s=timeout_s) as pool:
        return next(pool.map([design], config))[1]


def simulate_many(designs: list[Design], config: SimConfig, workers: int | None = None,
                  timeout_s: float = 30.0) -> list[SimResult]:
    """Simulate designs in parallel; results in input order."""
    results: list[SimResult | None] = [None] * len(designs)
    with SimulatorPool(workers=workers, backend=config.backend, timeout_s=timeout_s) as pool:
        for index, result in pool.map(designs, config):
            results[index] = result
    return results  # type: ignore[return-value]
