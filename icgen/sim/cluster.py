"""Simulation past one machine: a pool on a Dask cluster with the same `map(designs, config)` as `SimulatorPool`.

    with DaskPool("local:2") as pool:                 # a LocalCluster of 2 worker processes
    with DaskPool("tcp://10.0.0.5:8786") as pool:     # workers started with `dask worker`
        for index, result in pool.map(designs, SimConfig(tech)): ...

`icgen.sim.engines.open_pool(workers, scheduler)` picks this or the local pool.

Each Dask worker owns its simulator: a worker plugin starts one `SimulatorPool(workers=1)` per worker process,
which loads libngspice once and keeps it, so a segfault costs one design under the pool's own rule (retried once
on a fresh simulator, then `failed` with the reason) and never the Dask worker. A Dask worker that dies (SIGKILL,
a lost machine) has its chunks rescheduled by Dask; a chunk that kills workers again and again is split and its
designs are sent alone, so a design that kills every worker it meets costs only itself. Tasks are chunks of
designs; results come back as `SimResult`s without the AC sweep (small records), in completion order.

Dask workers must be allowed to start child processes: `DASK_DISTRIBUTED__WORKER__DAEMON=False dask worker ...`
(`open_pool` sets it for the LocalCluster it starts).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator

from distributed.diagnostics.plugin import WorkerPlugin

from ..core.design import Design
from ..core.errors import IcgenError
from ..core.status import Status
from .simulate import SimConfig, SimResult, SimulatorPool

PLUGIN = "icgen-simulator"
CHUNK = 32
"""Designs per Dask task (measured in bench/bench_cluster.py: small enough to spread, large enough that the
scheduler's per-task cost is a small share)."""


class ClusterError(IcgenError):
    """A scheduler that cannot be reached or used."""


def _worker_pool():
    from distributed import get_worker

    return get_worker().plugins[PLUGIN].pool


class SimulatorPlugin(WorkerPlugin):
    """A Dask worker plugin: one simulator pool (one libngspice process) per Dask worker, for its lifetime."""

    name = PLUGIN

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.pool: SimulatorPool | None = None

    def setup(self, worker) -> None:  # noqa: ARG002 - Dask's plugin signature
        import multiprocessing

        if multiprocessing.current_process().daemon:
            raise RuntimeError("this Dask worker is a daemon process and cannot start its simulator; start it with "
                               "DASK_DISTRIBUTED__WORKER__DAEMON=False")
        self.pool = SimulatorPool(workers=1, timeout_s=self.timeout_s).__enter__()

    def teardown(self, worker) -> None:  # noqa: ARG002
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _without_sweep(result: SimResult) -> SimResult:
    return dataclasses.replace(result, frequency_hz=None, response=None)


def simulate_chunk_task(items: list[tuple[int, Design]], config: SimConfig,
                        debug: dict[int, str]) -> list[tuple[int, SimResult]]:
    """A Dask task: simulate (index, design) pairs on this worker's simulator."""
    pool = _worker_pool()
    local = {i: index for i, (index, _) in enumerate(items)}
    local_debug = {i: debug[index] for i, (index, _) in enumerate(items) if index in debug}
    return [(local[i], _without_sweep(result))
            for i, result in pool.map([d for _, d in items], config, debug=local_debug)]


class DaskPool:
    """A pool of Dask workers, used like SimulatorPool: `with DaskPool(address) as pool: pool.map(...)`."""

    def __init__(self, scheduler: str, chunk: int = CHUNK, timeout_s: float = 30.0) -> None:
        self.scheduler = scheduler
        self.chunk = chunk
        self.timeout_s = timeout_s
        self.client = None
        self._cluster = None
        self.splits = 0

    def __enter__(self) -> DaskPool:
        import dask
        from distributed import Client, LocalCluster

        try:
            if self.scheduler.startswith("local:"):
                n = int(self.scheduler.partition(":")[2] or os.cpu_count() or 1)
                dask.config.set({"distributed.worker.daemon": False})
                self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                             dashboard_address=None)
                self.client = Client(self._cluster)
            else:
                self.client = Client(self.scheduler, timeout="10s")
        except (OSError, ValueError, TimeoutError) as err:
            self.close()
            raise ClusterError(f"{{scheduler}} {self.scheduler}: {err}; give tcp://HOST:PORT of a running "
                               f"`dask scheduler`, or local:N") from err
        self.client.register_plugin(SimulatorPlugin(self.timeout_s), name=PLUGIN)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info()["workers"]) if self.client is not None else 0

    def provenance(self) -> dict:
        """Engine, scheduler, worker count and versions, for meta.json."""
        import dask
        import distributed

        return {"engine": "dask", "scheduler": self.scheduler, "workers": self.n_workers, "dask": dask.__version__,
                "distributed": distributed.__version__}

    def map(self, designs: Iterable[Design], config: SimConfig,
            debug: dict[int, str] | None = None) -> Iterator[tuple[int, SimResult]]:
        """Yield (index, result) for every design, in completion order."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        if self.client is None:
            raise RuntimeError("use DaskPool as a context manager")
        items = list(enumerate(designs))
        debug = debug or {}
        chunks = [items[i:i + self.chunk] for i in range(0, len(items), self.chunk)]
        futures = {self._submit(c, config, debug): c for c in chunks}
        pending = as_completed(list(futures))
        for future in pending:
            chunk = futures.pop(future)
            try:
                yield from future.result()
            except KilledWorker:
                if len(chunk) == 1:  # it killed every worker it was given to
                    index, design = chunk[0]
                    yield index, SimResult(design=design, status=Status.FAILED,
                                           reason="the design killed every Dask worker it was sent to",
                                           metrics=None, health=None, tech=config.tech.name,
                                           testbench=config.testbench, backend=config.backend, seconds=0.0,
                                           corner=config.corner)
                    continue
                self.splits += 1
                for item in chunk:  # alone, so a poisoned design costs only itself
                    single = self._submit([item], config, debug)
                    futures[single] = [item]
                    pending.add(single)

    def _submit(self, chunk: list[tuple[int, Design]], config: SimConfig, debug: dict[int, str]):
        return self.client.submit(simulate_chunk_task, chunk, config, {i: debug[i] for i, _ in chunk if i in debug},
                                  pure=False)
