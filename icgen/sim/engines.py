"""Which engine simulates: the local process pool, or a Dask cluster when a scheduler is named.

    with open_pool(workers=2) as pool: ...                  # SimulatorPool, this machine
    with open_pool(scheduler="local:2") as pool: ...        # DaskPool on a LocalCluster
    ICGEN_SCHEDULER=tcp://host:8786 icgen data generate ... # DaskPool on a running scheduler
"""
from __future__ import annotations

import os

from .simulate import SimulatorPool

SCHEDULER_ENV = "ICGEN_SCHEDULER"
"""Environment variable naming the scheduler when --scheduler is not given."""


def scheduler_from(scheduler: str | None) -> str | None:
    """The scheduler to use: the one given, else $ICGEN_SCHEDULER, else None (the local pool)."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


def open_pool(workers: int | None = None, scheduler: str | None = None):
    """The local SimulatorPool, or a DaskPool (icgen.sim.cluster) when a scheduler is named."""
    scheduler = scheduler_from(scheduler)
    if scheduler is None:
        return SimulatorPool(workers=workers)
    from .cluster import DaskPool  # dask is imported only when a cluster is asked for

    return DaskPool(scheduler)


def pool_provenance(pool) -> dict:
    """Engine, scheduler, workers (and versions for Dask) of an open pool, for meta.json."""
    if hasattr(pool, "provenance"):
        return pool.provenance()
    return {"engine": "local", "workers": pool.n_workers, "backend": pool.backend}
