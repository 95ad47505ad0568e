"""The corner-aware loop on the eval's held-out targets, against the nominal loop followed by sign-off at the same
corners, and what one sign-off costs (every corner of the set; Monte Carlo).

    .venv/bin/python bench/bench_corners.py [--n 100] [--tech ptm65] [--corners all] [--data DIR] [--workers N]
    .venv/bin/python bench/bench_corners.py --tech sky130 --corners pvt15 --data data/sky130
    .venv/bin/python bench/bench_corners.py --tech sky130 --corners all --data data/sky130 --cost-only

Targets (`--targets`): `worst` (the default) takes the eval's N held-out test designs (seed 0), simulates each at
every corner of the set and relaxes its worst-corner metrics as the eval relaxes nominal ones, so every target is met
at every corner by the design it came from; `nominal` takes the eval's own nominal targets, which on ptm65 `all` not
one of 100 source designs meets at every corner (measured: `--targets nominal`, 39/100 met by the corner loop).

Per target: the eval's `loop` method with `--corners` (icgen size
--corners, no model, budget 20 x the corners) and without (budget 20); every design either claims to meet is
re-simulated at every corner with the eval's rule (the UGB buffer check, the health rule). Then, on up to --cost
designs, the sign-off at every corner (the corners in turn, as `icgen signoff`) and `--mc` Monte Carlo samples (in
parallel on the pool) are timed. Prints a table and one markdown line; writes bench/results/corners-TECH-SET.json.
`--cost-only` times the sign-off alone, on the dataset's first --cost test designs (corners-TECH-SET-cost.json).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from icgen import __version__  # noqa: E402
from icgen.core.design import Design  # noqa: E402
from icgen.core.io import git_sha  # noqa: E402
from icgen.core.paths import DEFAULT_DATA_DIR  # noqa: E402
from icgen.core.score import Specs, result_shortfall  # noqa: E402
from icgen.core.tech import DEFAULT_TECH, load_technology  # noqa: E402
from icgen.data.dataset import Dataset, design_of  # noqa: E402
from icgen.eval.config import EvalConfig  # noqa: E402
from icgen.eval.methods import Context, loop  # noqa: E402
from icgen.eval.targets import heldout_targets, worst_corner_targets  # noqa: E402
from icgen.sim.backends import ngspice_version  # noqa: E402
from icgen.sim.corners import signoff_corners  # noqa: E402
from icgen.sim.montecarlo import MonteCarloConfig, monte_carlo  # noqa: E402
from icgen.sim.simulate import SimConfig, SimulatorPool  # noqa: E402
from icgen.sizing.config import CornerSizeConfig  # noqa: E402
from icgen.sizing.corner_table import corner_table  # noqa: E402
from icgen.sizing.loop import UGB_BENCHES  # noqa: E402
from icgen.sizing.surrogate import surrogate_loader  # noqa: E402


def failing_corners(design: Design, specs: Specs, corners, tech, pool) -> list[str]:
    """The corners where `design` does not meet `specs` as the eval judges it, all corners simulated in one batch."""
    benches = tuple(dict.fromkeys(UGB_BENCHES + specs.benches()))
    configs = [SimConfig(tech=tech, benches=benches, estimates=specs.needs_estimates(), corner=c,
                         bias=CornerSizeConfig().bias) for c in corners]
    failed = []
    for index, result in pool.map([design] * len(corners), configs):
        if result_shortfall(result, specs) > 0:
            failed.append(corners[index].name)
    return sorted(failed, key=[c.name for c in corners].index)


def _median(values) -> float | None:
    values = list(values)
    return float(statistics.median(values)) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="Held-out test targets (the eval's, seed 0).")
    parser.add_argument("--tech", default=DEFAULT_TECH)
    parser.add_argument("--corners", default="all")
    parser.add_argument("--data", default=None, help=f"Dataset (default {DEFAULT_DATA_DIR.name} for ptm65, else "
                                                     "data/TECH).")
    parser.add_argument("--targets", choices=("worst", "nominal"), default="worst",
                        help="Targets from the held-out designs' worst-corner metrics (feasible at every corner), "
                             "or the eval's nominal ones.")
    parser.add_argument("--retrieval", choices=("corners", "nominal"), default="corners",
                        help="The corner loop retrieves from the training designs' worst-corner table "
                             "(icgen.sizing.corner_table, built once and cached) or from their nominal rows.")
    parser.add_argument("--budget", type=int, default=None, help="Simulations per target with corners (default: "
                                                                 "20 x the corners, as icgen size --corners).")
    parser.add_argument("--cost", type=int, default=5, help="Designs whose sign-off is timed.")
    parser.add_argument("--mc", type=int, default=200, help="Monte Carlo samples per timed design.")
    parser.add_argument("--workers", type=int, default=None, help="Simulator workers (default: one per core).")
    parser.add_argument("--cost-only", action="store_true", help="Only time the sign-off (no targets, no loops).")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    started = time.perf_counter()
    tech = load_technology(args.tech)
    corners = tech.corner_set(args.corners)
    data_dir = Path(args.data) if args.data else DEFAULT_DATA_DIR if args.tech == DEFAULT_TECH else ROOT / "data" / args.tech
    data = Dataset(data_dir).require()
    eval_config = EvalConfig(n=args.n, methods=("loop",), hand=False)
    train = data.training_rows(eval_config.split_kind)
    loader = surrogate_loader(data, eval_config.split_kind, log=lambda m: print(m, file=sys.stderr))
    surrogate = loader() if loader else None
    rows = []
    dropped: list[str] = []
    with SimulatorPool(workers=args.workers) as pool:
        start = time.perf_counter()
        if args.cost_only:
            targets = []
        elif args.targets == "worst":
            targets, dropped = worst_corner_targets(data, eval_config, tech, corners, pool,
                                                    bias=CornerSizeConfig().bias)
        else:
            targets = heldout_targets(data, eval_config)
        targets_s = time.perf_counter() - start
        print(f"{len(targets)} {args.targets} targets ({len(dropped)} held-out designs not healthy at every corner "
              f"dropped), {targets_s:.1f} s", file=sys.stderr, flush=True)
        start = time.perf_counter()
        table = corner_table(data, eval_config.split_kind, tech, corners, pool, CornerSizeConfig().bias,
                             log=lambda m: print(m, file=sys.stderr)) \
            if args.retrieval == "corners" and not args.cost_only else None
        table_s = time.perf_counter() - start
        at_corners = Context(tech, pool, train, EvalConfig(methods=("loop",), corners=args.corners,
                                                           budget=args.budget), surrogate=surrogate,
                             corner_table=table)
        nominal = Context(tech, pool, train, EvalConfig(methods=("loop",)), surrogate=surrogate)
        for i, target in enumerate(targets):
            seed = eval_config.seed * 100003 + i  # as icgen eval seeds its i-th target
            row = {"target": target.name}
            for arm, ctx in (("corners", at_corners), ("nominal", nominal)):
                start = time.perf_counter()
                outcome = loop(target, ctx, seed)
                wall = time.perf_counter() - start
                failed = failing_corners(Design(**outcome.design), target.specs, corners, tech, pool) \
                    if outcome.met else None
                row[arm] = {"met": outcome.met, "simulations": outcome.simulations, "seconds": outcome.seconds,
                            "wall_s": wall, "source": outcome.source, "design": outcome.design,
                            "failing_corners_resimulated": failed,
                            "met_every_corner_resimulated": failed == [] if failed is not None else False}
            rows.append(row)
            c, n = row["corners"], row["nominal"]
            print(f"{target.name:<12} corners: met={c['met']!s:<5} again={c['met_every_corner_resimulated']!s:<5} "
                  f"sims={c['simulations']:>4} {c['wall_s']:6.2f} s | nominal: met={n['met']!s:<5} "
                  f"fails at {len(n['failing_corners_resimulated'] or [])} corners, sims={n['simulations']:>3}",
                  flush=True)
        designs = [r[arm]["design"] for arm in ("corners", "nominal") for r in rows if r[arm]["met"]]
        designs = list({tuple(d.values()): d for d in designs}.values())[:args.cost] or \
            [design_of(r).to_dict() for _, r in data.rows("test", eval_config.split_kind).head(args.cost).iterrows()]
        cost = {"designs": len(designs), "signoff_s": [], "mc_s": []}
        for d in designs:
            design = Design(**d)
            start = time.perf_counter()
            signoff_corners(design, tech, corners, pool=pool)
            cost["signoff_s"].append(time.perf_counter() - start)
            start = time.perf_counter()
            monte_carlo(design, tech, config=MonteCarloConfig(samples=args.mc), pool=pool)
            cost["mc_s"].append(time.perf_counter() - start)
        workers = pool.n_workers
    n = len(rows)
    arm_c = [r["corners"] for r in rows]
    arm_n = [r["nominal"] for r in rows]
    nominal_met = [a for a in arm_n if a["met"]]
    summary = {
        "command": "bench/bench_corners.py " + " ".join(sys.argv[1:]), "tech": tech.name, "corners": args.corners,
        "corner_names": [c.name for c in corners], "targets": n,
        "data": str(data_dir.resolve().relative_to(ROOT)) if data_dir.resolve().is_relative_to(ROOT) else str(data_dir),
        "target_kind": args.targets, "dropped_designs": dropped, "targets_s": targets_s,
        "retrieval": args.retrieval, "corner_table_s": table_s,
        "corner_table_working": int(table["working"].sum()) if table is not None else None,
        "budget_with_corners": at_corners.config.budget, "budget_nominal": nominal.config.budget,
        "corner_loop": {
            "met": sum(a["met"] for a in arm_c), "met_every_corner_resimulated":
                sum(a["met_every_corner_resimulated"] for a in arm_c),
            "median_simulations": _median(a["simulations"] for a in arm_c),
            "median_simulations_met": _median(a["simulations"] for a in arm_c if a["met"]),
            "median_wall_s": _median(a["wall_s"] for a in arm_c), "total_wall_s": sum(a["wall_s"] for a in arm_c)},
        "nominal_loop_then_signoff": {
            "met_nominal": len(nominal_met),
            "pass_every_corner": sum(a["met_every_corner_resimulated"] for a in nominal_met),
            "fail_a_corner": sum(not a["met_every_corner_resimulated"] for a in nominal_met),
            "median_simulations": _median(a["simulations"] for a in arm_n),
            "median_wall_s": _median(a["wall_s"] for a in arm_n), "total_wall_s": sum(a["wall_s"] for a in arm_n)},
        "signoff_cost": {"designs": cost["designs"], "corners": {"simulations": len(corners),
                                                                   "median_s": _median(cost["signoff_s"])},
                         "monte_carlo": {"simulations": args.mc, "median_s": _median(cost["mc_s"])}},
        "workers": workers, "wall_s": time.perf_counter() - started, "icgen": __version__, "git": git_sha(),
        "ngspice": ngspice_version(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "rows": rows,
    }
    if args.cost_only:
        cost_s = summary["signoff_cost"]
        print(f"sign-off {args.corners}: {len(corners)} sims, {cost_s['corners']['median_s']:.2f} s a design; MC "
              f"{args.mc}: {cost_s['monte_carlo']['median_s']:.2f} s ({cost['designs']} designs)")
        path = write_result(args.out, f"corners-{tech.name}-{args.corners.replace(',', '+')}-cost", summary)
        print(f"wrote {path} ({workers} workers, {summary['wall_s']:.0f} s)")
        return
    loop_c, then = summary["corner_loop"], summary["nominal_loop_then_signoff"]
    share = (lambda k, total: f"{k}/{total} ({100 * k / total:.0f} %)" if total else f"{k}/{total}")
    print(f"\n| tech | corners | targets ({args.targets}) | corner loop: met at every corner (re-simulated) | median sims "
          f"| median s | nominal loop: met nominally | of those failing a corner | sign-off {args.corners} | MC {args.mc} |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {tech.name} | {args.corners} ({len(corners)}) | {n} | "
          f"{share(loop_c['met_every_corner_resimulated'], n)} | {loop_c['median_simulations']:.0f} | "
          f"{loop_c['median_wall_s']:.2f} | {share(then['met_nominal'], n)} | "
          f"{share(then['fail_a_corner'], then['met_nominal'])} | "
          f"{len(corners)} sims, {summary['signoff_cost']['corners']['median_s']:.2f} s | "
          f"{args.mc} sims, {summary['signoff_cost']['monte_carlo']['median_s']:.2f} s |")
    suffix = ("" if args.targets == "worst" else "-nominal-targets") + \
        ("" if args.retrieval == "corners" else "-nominal-retrieval")
    path = write_result(args.out, f"corners-{tech.name}-{args.corners.replace(',', '+')}{suffix}", summary)
    print(f"wrote {path} ({workers} workers, {summary['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
