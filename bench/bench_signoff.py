"""What each sign-off bench costs per design: the open-loop run against every bench of icgen.core.signoff.

    .venv/bin/python bench/bench_signoff.py [--n 100] [--data data/ptm65-v2] [--out bench/results]

One process, one core, the shared libngspice backend: for N working designs of the dataset's test split, time the
operating point + open-loop AC run (what every candidate costs), then each bench in registry order. Prints a table
of milliseconds per design and writes bench/results/signoff_cost.json (with machine, versions and the command).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result  # noqa: E402
from icgen import __version__  # noqa: E402
from icgen.core.deck import render_circuit  # noqa: E402
from icgen.core.signoff import BENCHES  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.data.dataset import Dataset, design_of  # noqa: E402
from icgen.sim.backends import make_backend, ngspice_version  # noqa: E402
from icgen.sim.simulate import SimConfig, run_signoff  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--data", default="data/ptm65-v2")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    tech = load_technology("ptm65")
    rows = Dataset(args.data).rows("test").head(args.n)
    config = SimConfig(tech=tech)
    backend = make_backend("shared")
    from icgen.core.measure import measure

    timings: dict[str, float] = {}
    base = 0.0
    problems = 0
    for _, row in rows.iterrows():
        design = design_of(row)
        start = time.perf_counter()
        raw = backend.run(render_circuit(design, tech, config.testbench), tech, config.sweep)
        metrics, _ = measure(raw.frequency_hz, raw.response, tech.vdd_v * abs(raw.op["ivdd"]))
        base += time.perf_counter() - start
        problems += len(run_signoff(backend, design, config, raw, metrics, tuple(BENCHES), timings).problems)
    n = len(rows)
    per = {"open_loop_op_ac": 1e3 * base / n, **{name: 1e3 * timings.get(name, 0.0) / n for name in BENCHES}}
    total = sum(v for k, v in per.items() if k != "open_loop_op_ac")
    print(f"{'run':<18} {'ms/design':>10} {'x open loop':>12}")
    for name, ms in per.items():
        print(f"{name:<18} {ms:>10.2f} {ms / per['open_loop_op_ac']:>12.2f}")
    print(f"{'all benches':<18} {total:>10.2f} {total / per['open_loop_op_ac']:>12.2f}   ({problems} bench problems)")
    path = write_result(args.out, "signoff_cost", {
        "command": " ".join(["bench/bench_signoff.py", *sys.argv[1:]]), "designs": n, "ms_per_design": per,
        "all_benches_ms": total, "bench_problems": problems, "icgen": __version__, "ngspice": ngspice_version(),
        "machine": {"platform": platform.platform(), "python": platform.python_version()}, "workers": 1})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
