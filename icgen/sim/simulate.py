"""Turn designs into measured results with ngspice, crash-proof and in parallel.

    simulate(design)                       # one design, in a worker process
    with SimulatorPool(workers=2) as pool:   # many designs; a crash or hang costs only that design
        for index, result in pool.map(designs): ...

Two backends run the same deck: `shared` (PySpice's NgSpiceShared on libngspice, the main one) and `batch`
(an `ngspice -b` subprocess, used to cross-check). Each result has a status: ok, not_amplifier, failed.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from ..core.deck import Sweep, render_circuit
from ..core.design import Design, Metrics
from ..core.measure import Health, assess_health, measure
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

    def to_dict(self, with_sweep: bool = False) -> dict[str, Any]:
        """JSON form: {"design", "metrics", "status", "reason", "health", ...}, SI units."""
        out: dict[str, Any] = {
            "design": self.design.to_dict(),
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "status": str(self.status), "reason": self.reason,
            "health": self.health.to_dict() if self.health else None,
            "tech": self.tech, "testbench": self.testbench, "backend": self.backend, "seconds": self.seconds,
        }
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

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")


def simulate_with(backend, design: Design, config: SimConfig) -> SimResult:
    """Simulate one design on a backend in this process and measure it (no crash protection)."""
    start = time.perf_counter()
    circuit = render_circuit(design, config.tech, config.testbench)
    raw = backend.run(circuit, config.tech, config.sweep)
    common = dict(design=design, tech=config.tech.name, testbench=config.testbench, backend=backend.name)
    if raw.error is not None and not raw.op:
        return SimResult(status=Status.FAILED, reason=raw.error, metrics=None, health=None,
                         seconds=time.perf_counter() - start, **common)
    health = assess_health(raw.op, config.tech.vdd_v)
    power_w = config.tech.vdd_v * abs(raw.op["ivdd"])
    if raw.error is not None:
        return SimResult(status=Status.FAILED, reason=raw.error, metrics=None, health=health,
                         seconds=time.perf_counter() - start, **common)
    metrics, reason = measure(raw.frequency_hz, raw.response, power_w)
    return SimResult(status=Status.OK if reason is None else Status.NOT_AMPLIFIER, reason=reason, metrics=metrics,
                     health=health, seconds=time.perf_counter() - start, frequency_hz=raw.frequency_hz,
                     response=raw.response, **common)


# ----------------------------------------------------------------------------- worker pool

def _worker_main(conn, backend_name: str) -> None:
    """A worker: build the backend once, then simulate tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    backend = make_backend(backend_name)
    while True:
        task = conn.recv()
        if task is None:
            return
        index, design, config, debug = task
        if debug == "segfault":  # for tests: die the way libngspice does
            os.kill(os.getpid(), signal.SIGSEGV)
        if debug == "hang":
            time.sleep(3600)
        try:
            result = simulate_with(backend, design, config)
        except Exception as err:  # a bug in measurement must not kill the run; report it on the design
            result = SimResult(design=design, status=Status.FAILED, reason=f"{type(err).__name__}: {err}", metrics=None,
                               health=None, tech=config.tech.name, testbench=config.testbench,
                               backend=backend_name, seconds=0.0)
        conn.send((index, result))


class _Worker:
    def __init__(self, ctx, backend: str) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, backend), daemon=True)
        self.process.start()
        child.close()
        self.task: tuple | None = None
        self.started = 0.0
        self.done = 0

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


def _exit_reason(process) -> str:
    process.join(timeout=1)
    code = process.exitcode
    if code is not None and code < 0:
        return f"killed by signal {-code}, {signal.Signals(-code).name}"
    return f"exit code {code}"


class SimulatorPool:
    """Worker processes that each own one ngspice; a segfault or hang costs one design, never the run.

    Workers are replaced after `recycle_after` simulations to bound ngspice's slow memory growth.
    """

    def __init__(self, workers: int | None = None, backend: str = "shared", timeout_s: float = 30.0,
                 recycle_after: int = 500) -> None:
        self.n_workers = max(1, workers or os.cpu_count() or 1)
        self.backend = backend
        self.timeout_s = timeout_s
        self.recycle_after = recycle_after
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self.crashes = 0
        self.timeouts = 0

    def __enter__(self) -> "SimulatorPool":
        self._workers = [_Worker(self._ctx, self.backend) for _ in range(self.n_workers)]
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = _Worker(self._ctx, self.backend)
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def _lost(self, worker: _Worker, why: str) -> tuple[int, SimResult]:
        index, design, config, _ = worker.task
        result = SimResult(design=design, status=Status.FAILED, reason=why, metrics=None, health=None,
                           tech=config.tech.name, testbench=config.testbench, backend=self.backend,
                           seconds=time.perf_counter() - worker.started)
        return index, result

    def map(self, designs: Iterable[Design], config: SimConfig,
            debug: dict[int, str] | None = None) -> Iterator[tuple[int, SimResult]]:
        """Yield (index, result) for every design, in completion order."""
        if not self._workers:
            raise RuntimeError("use SimulatorPool as a context manager")
        debug = debug or {}
        pending = iter(enumerate(designs))
        exhausted = False
        while True:
            for w in list(self._workers):
                if w.task is None and not exhausted:
                    if w.done >= self.recycle_after:
                        w = self._replace(w)
                    nxt = next(pending, None)
                    if nxt is None:
                        exhausted = True
                        break
                    index, design = nxt
                    w.task = (index, design, config, debug.get(index))
                    w.started = time.perf_counter()
                    try:
                        w.conn.send(w.task)
                    except OSError:  # the worker died while idle (killed from outside): start a fresh one
                        task = w.task
                        w = self._replace(w)
                        w.task, w.started = task, time.perf_counter()
                        w.conn.send(w.task)
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                return
            now = time.perf_counter()
            wait_s = max(0.0, min(w.started + self.timeout_s - now for w in busy))
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wait_s + 0.01)
            for w in busy:
                if w.conn in ready:
                    try:
                        index, result = w.conn.recv()
                    except (EOFError, OSError):
                        self.crashes += 1
                        yield self._lost(w, f"simulator crashed ({_exit_reason(w.process)}); the design was skipped")
                        self._replace(w)
                        continue
                    w.task = None
                    w.done += 1
                    yield index, result
                elif w.process.sentinel in ready or not w.process.is_alive():
                    self.crashes += 1
                    yield self._lost(w, f"simulator crashed ({_exit_reason(w.process)}); the design was skipped")
                    self._replace(w)
                elif time.perf_counter() - w.started > self.timeout_s:
                    self.timeouts += 1
                    yield self._lost(w, f"simulation timed out after {self.timeout_s:g} s; the design was skipped")
                    self._replace(w)


def simulate(design: Design, tech: Technology | str = "ptm65", testbench: str = "feedback",
             sweep: Sweep = Sweep(), backend: str = "shared", timeout_s: float = 60.0) -> SimResult:
    """Simulate one design in a worker process (safe against simulator crashes) and measure it."""
    config = SimConfig(tech=load_technology(tech) if isinstance(tech, str) else tech, testbench=testbench,
                       sweep=sweep, backend=backend)
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
