"""What recycling simulation workers costs and buys: simulations/s and worker memory per `recycle_after`.

    .venv/bin/python bench/bench_recycle.py [--n 4000] [--rounds 4] [--workers 2] [--intervals 500,2000,10000,never]

One pool per interval, all open at once, fed the same random designs in rounds (the order of the pools rotates
each round, so a change in machine load falls on all of them alike). Worker RSS is read from /proc after each
round. Prints a table and writes bench/results/recycle.json.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result
from icgen import __version__
from icgen.core.sampling import random_designs
from icgen.core.tech import load_technology
from icgen.sim.backends import ngspice_version
from icgen.sim.simulate import SimConfig, SimulatorPool


class CountingPool(SimulatorPool):
    """A pool that counts the workers it starts (the first ones and every replacement)."""

    starts = 0

    def _start(self):
        self.starts += 1
        return super()._start()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="designs, simulated once by each pool")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--intervals", default="500,2000,10000,never")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    tech = load_technology("ptm65")
    config = SimConfig(tech=tech)
    designs = random_designs(tech, args.n, args.seed)
    warm = random_designs(tech, 2 * args.workers, args.seed + 1)
    size = -(-args.n // args.rounds)
    blocks = [designs[i:i + size] for i in range(0, args.n, size)]
    labels = [s.strip() for s in args.intervals.split(",")]
    intervals = {label: None if label == "never" else int(label) for label in labels}
    stats = {label: {"seconds": 0.0, "rss_mb": [], "results": {}} for label in labels}
    wall = time.perf_counter()
    with contextlib.ExitStack() as stack:
        pools = {label: stack.enter_context(CountingPool(workers=args.workers, recycle_after=interval))
                 for label, interval in intervals.items()}
        for label, pool in pools.items():  # libngspice loaded in every worker before timing starts
            list(pool.map(warm, config))
            stats[label]["rss_mb"].append(max(rss_mb(w.process.pid) for w in pool._workers))
        offset = 0
        for r, block in enumerate(blocks):
            order = labels[r % len(labels):] + labels[:r % len(labels)]
            for label in order:
                pool = pools[label]
                start = time.perf_counter()
                for index, result in pool.map(block, config):
                    stats[label]["results"][offset + index] = result.to_dict()
                stats[label]["seconds"] += time.perf_counter() - start
                stats[label]["rss_mb"].append(max(rss_mb(w.process.pid) for w in pool._workers))
            offset += len(block)
            print(f"round {r + 1}/{len(blocks)} done, {time.perf_counter() - wall:.0f} s", file=sys.stderr)
        starts = {label: pool.starts for label, pool in pools.items()}
    reference = stats[labels[-1]]["results"]
    for s in stats.values():  # recycling must not change a single result
        s["identical"] = all({k: v for k, v in s["results"][i].items() if k != "seconds"}
                             == {k: v for k, v in reference[i].items() if k != "seconds"} for i in reference)
    baseline = stats["never"]["seconds"] if "never" in stats else None
    per_worker = args.n / args.workers
    rows = []
    for label in labels:
        s = stats[label]
        rss = s["rss_mb"]
        rows.append({
            "recycle_after": intervals[label], "label": label, "seconds": round(s["seconds"], 2),
            "sims_per_s": round(args.n / s["seconds"], 1),
            "time_vs_never": round(s["seconds"] / baseline, 3) if baseline else None,
            "worker_starts": starts[label] - args.workers,
            "rss_start_mb": round(rss[0], 1), "rss_end_mb": round(rss[-1], 1), "rss_peak_mb": round(max(rss), 1),
            "rss_growth_mb": round(rss[-1] - rss[0], 1),
            "rss_growth_mb_per_1000_sims_per_worker": round((max(rss) - rss[0]) / per_worker * 1000, 2),
            "rss_after_each_round_mb": [round(x, 1) for x in rss], "identical_results": s["identical"],
        })
    summary = {
        "command": " ".join([sys.executable.split("/")[-1]] + sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "load_avg_1min_at_end": os.getloadavg()[0]},
        "versions": {"icgen": __version__, "ngspice": ngspice_version()},
        "designs": args.n, "workers": args.workers, "rounds": len(blocks), "sims_per_worker": per_worker,
        "wall_s": round(time.perf_counter() - wall, 1), "intervals": rows,
    }
    written = write_result(args.out, "recycle", summary)
    print(f"{args.n} random designs, {args.workers} workers, {len(blocks)} interleaved rounds "
          f"({per_worker:.0f} simulations per worker slot)")
    print(f"{'recycle_after':>13} {'sims/s':>8} {'time vs never':>13} {'restarts':>8} {'RSS start':>9} "
          f"{'peak':>7} {'end':>7} {'MB/1000 sims':>12} {'same results':>12}")
    for row in rows:
        ratio = f"{row['time_vs_never']:.3f}" if row["time_vs_never"] else "-"
        print(f"{row['label']:>13} {row['sims_per_s']:>8.1f} {ratio:>13} {row['worker_starts']:>8} "
              f"{row['rss_start_mb']:>9.1f} {row['rss_peak_mb']:>7.1f} {row['rss_end_mb']:>7.1f} "
              f"{row['rss_growth_mb_per_1000_sims_per_worker']:>12.2f} {str(row['identical_results']):>12}")
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
