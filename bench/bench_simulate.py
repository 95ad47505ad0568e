"""Simulation benchmark: icgen's pool against bare ngspice on the same decks, and backend agreement.

    .venv/bin/python bench/bench_simulate.py [--n 1000] [--agree 200] [--workers N] [--out bench/results]

Prints a table and writes bench/results/simulate.json (with machine, versions and the command).
- throughput: SimulatorPool (shared libngspice, measurement and health included) over N random designs;
- bare ngspice, same decks, same run: (a) `ngspice -b` subprocesses, the same number in parallel;
  (b) raw libngspice load+op+ac in one process per core, no measurement, no IPC (the floor for our backend);
- agreement: shared vs batch backend on --agree random designs (gain dB, PM deg, UGB/power relative).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result  # noqa: E402
from icgen import __version__  # noqa: E402
from icgen.core.deck import render_circuit  # noqa: E402
from icgen.core.sampling import random_designs  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.sim.backends import batch_control_block, make_backend  # noqa: E402
from icgen.sim.simulate import SimConfig, SimulatorPool, simulate_with  # noqa: E402


def _bare_batch(deck: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deck.cir"
        path.write_text(deck.replace("__AC__", str(Path(tmp) / "ac.txt")))
        start = time.perf_counter()
        subprocess.run(["ngspice", "-b", str(path)], capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return time.perf_counter() - start


def _bare_shared(circuits: list[str]) -> float:
    """Raw libngspice: load, op, ac, free; nothing read back. Returns seconds for the chunk."""
    backend = make_backend("shared")
    start = time.perf_counter()
    for circuit in circuits:
        backend._ng.load_circuit(circuit + ".end\n")
        backend._command("op")
        backend._command("ac dec 20 1 10G")
        backend._command("destroy all")
        backend._command("remcirc")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--agree", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    tech = load_technology("ptm65")
    designs = random_designs(tech, args.n, args.seed)
    config = SimConfig(tech=tech)
    circuits = [render_circuit(d, tech, "feedback") for d in designs]

    # icgen pool
    start = time.perf_counter()
    with SimulatorPool(workers=args.workers) as pool:
        statuses = [r.status for _, r in pool.map(designs, config)]
        pool_total_s = time.perf_counter() - start
        # steady state: the same designs again on the warm workers
        started = time.perf_counter()
        list(pool.map(designs, config))
        pool_s = time.perf_counter() - started
    # bare ngspice -b on the same decks, same parallelism
    decks = [c + batch_control_block(tech, config.sweep, "__AC__") for c in circuits]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as ex:
        list(ex.map(_bare_batch, decks))
    batch_s = time.perf_counter() - start
    # raw libngspice, one process per core
    chunks = [circuits[i::args.workers] for i in range(args.workers)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as ex:
        list(ex.map(_bare_shared, chunks))
    raw_s = time.perf_counter() - start

    # backend agreement
    agree_designs = random_designs(tech, args.agree, args.seed + 1)
    shared, batch = make_backend("shared"), make_backend("batch")
    worst = {"gain_db": 0.0, "pm_deg": 0.0, "ugb_rel": 0.0, "power_rel": 0.0, "bw3db_rel": 0.0}
    compared = status_mismatch = 0
    for d in agree_designs:
        a = simulate_with(shared, d, config)
        b = simulate_with(batch, d, SimConfig(tech=tech, backend="batch"))
        if a.status != b.status:
            status_mismatch += 1
            continue
        if a.status != "ok":
            continue
        compared += 1
        worst["gain_db"] = max(worst["gain_db"], abs(a.metrics.gain_db - b.metrics.gain_db))
        worst["pm_deg"] = max(worst["pm_deg"], abs(a.metrics.pm_deg - b.metrics.pm_deg))
        worst["ugb_rel"] = max(worst["ugb_rel"], abs(a.metrics.ugb_hz / b.metrics.ugb_hz - 1))
        worst["power_rel"] = max(worst["power_rel"], abs(a.metrics.power_w / b.metrics.power_w - 1))
        if a.metrics.bw3db_hz and b.metrics.bw3db_hz:
            worst["bw3db_rel"] = max(worst["bw3db_rel"], abs(a.metrics.bw3db_hz / b.metrics.bw3db_hz - 1))

    ngspice_version = subprocess.run(["ngspice", "--version"], capture_output=True, text=True).stdout
    results = {
        "command": " ".join([sys.executable.split("/")[-1]] + sys.argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "versions": {"icgen": __version__,
                     "ngspice": next((w for w in ngspice_version.split() if w.startswith("ngspice-")), "?")},
        "designs": args.n, "workers": args.workers,
        "ok": statuses.count("ok"), "not_amplifier": statuses.count("not_amplifier"), "failed": statuses.count("failed"),
        "icgen_sims_per_s": args.n / pool_s, "icgen_with_pool_start_sims_per_s": args.n / pool_total_s,
        "bare_ngspice_b_sims_per_s": args.n / batch_s, "raw_libngspice_sims_per_s": args.n / raw_s,
        "overhead_vs_ngspice_b": pool_s / batch_s, "overhead_vs_raw_libngspice": pool_s / raw_s,
        "agreement": {"designs": args.agree, "compared_ok": compared, "status_mismatch": status_mismatch,
                      "worst": worst},
    }
    written = write_result(args.out, "simulate", results)
    print(f"{'what':<44} {'value':>12}")
    print(f"{'icgen pool warm, sims/s (' + str(args.workers) + ' workers)':<44} {results['icgen_sims_per_s']:>12.1f}")
    print(f"{'icgen incl. worker start (first pass), sims/s':<44} {results['icgen_with_pool_start_sims_per_s']:>12.1f}")
    print(f"{'bare ngspice -b, same decks, sims/s':<44} {results['bare_ngspice_b_sims_per_s']:>12.1f}")
    print(f"{'raw libngspice load+op+ac, sims/s':<44} {results['raw_libngspice_sims_per_s']:>12.1f}")
    print(f"{'time overhead vs ngspice -b':<44} {results['overhead_vs_ngspice_b']:>12.2f}x")
    print(f"{'time overhead vs raw libngspice':<44} {results['overhead_vs_raw_libngspice']:>12.2f}x")
    print(f"{'status ok / not_amplifier / failed':<44} {results['ok']:>4} / {results['not_amplifier']} / {results['failed']}")
    print(f"{'backends: designs, compared, status mismatch':<44} {args.agree:>4} / {compared} / {status_mismatch}")
    for key, value in worst.items():
        print(f"{'  worst |shared - batch| ' + key:<44} {value:>12.3g}")
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
