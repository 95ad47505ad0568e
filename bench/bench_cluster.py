"""Cluster benchmark: the local pool against the Dask engine (1 and 2 workers) on the same designs, in one run.

    .venv/bin/python bench/bench_cluster.py [--n 3000] [--chunks 8,32,128] [--out bench/results]

Prints a table and writes bench/results/cluster.json: simulations/s of each engine (pool start excluded, so the
figures are the steady rate), the Dask path's overhead per simulation, simulations/s per Dask chunk size, the
scheduler's rate of empty tasks, and a paper projection for N machines of this kind.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result  # noqa: E402
from icgen import __version__  # noqa: E402
from icgen.core.sampling import random_designs  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.sim.cluster import DaskPool  # noqa: E402
from icgen.sim.simulate import SimConfig, SimulatorPool  # noqa: E402


def _rate(pool, designs, config) -> float:
    list(pool.map(designs[:64], config))  # warm: every worker has loaded libngspice
    start = time.perf_counter()
    n = sum(1 for _ in pool.map(designs, config))
    return n / (time.perf_counter() - start)


def _noop(x):
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--chunks", default="8,32,128")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    tech = load_technology("ptm65")
    config = SimConfig(tech=tech)
    designs = random_designs(tech, args.n, seed=11)
    rates = {}
    with SimulatorPool(workers=2) as pool:
        rates["local pool, 2 workers"] = _rate(pool, designs, config)
    for workers in (1, 2):
        with DaskPool(f"local:{workers}") as pool:
            rates[f"dask, {workers} worker(s), chunk {pool.chunk}"] = _rate(pool, designs, config)
    by_chunk = {}
    with DaskPool("local:2") as pool:
        for chunk in (int(c) for c in args.chunks.split(",")):
            pool.chunk = chunk
            by_chunk[chunk] = _rate(pool, designs, config)
        pool.client.gather(pool.client.map(_noop, range(2000), pure=False))  # warm
        futures = pool.client.map(_noop, range(2000, 4000), pure=False)
        start = time.perf_counter()
        pool.client.gather(futures)
        task_rate = 2000 / (time.perf_counter() - start)
    local = rates["local pool, 2 workers"]
    dask2 = next(v for k, v in rates.items() if k.startswith("dask, 2"))
    dask1 = next(v for k, v in rates.items() if k.startswith("dask, 1"))
    per_worker = dask2 / 2
    summary = {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "icgen": __version__,
        "designs": args.n, "simulations_per_s": rates, "dask_2_over_local": dask2 / local,
        "dask_overhead_ms_per_simulation": 1000 * (1 / dask2 - 1 / local),
        "simulations_per_s_by_chunk_2_workers": by_chunk, "scheduler_empty_tasks_per_s": task_rate,
        "projection": {f"{m} machines x 2 workers": min(m * 2 * per_worker, task_rate * 32) for m in (1, 10, 100)},
        "projection_note": "per-worker rate measured here times workers, capped by the scheduler's task rate times "
                           "the chunk (32 designs a task); a paper figure, not measured on a cluster",
        "dask_1_worker_over_local_1_core": dask1 / (local / 2),
    }
    print(f"{'engine':<34} {'simulations/s':>14}")
    for name, rate in rates.items():
        print(f"{name:<34} {rate:>14.0f}")
    print(f"{'dask 2 workers / local pool':<34} {dask2 / local:>14.2f}")
    print(f"{'dask overhead per simulation':<34} {summary['dask_overhead_ms_per_simulation']:>12.2f}ms")
    for chunk, rate in by_chunk.items():
        print(f"{'dask 2 workers, chunk ' + str(chunk):<34} {rate:>14.0f}")
    print(f"{'scheduler: empty tasks/s':<34} {task_rate:>14.0f}")
    for name, rate in summary["projection"].items():
        print(f"{'projection ' + name:<34} {rate:>14.0f}")
    print(write_result(args.out, "cluster", summary))


if __name__ == "__main__":
    main()
