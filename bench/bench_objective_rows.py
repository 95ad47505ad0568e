"""Issue 14's three rows: `icgen size` with the default min-power objective, each design re-simulated.

    .venv/bin/python bench/bench_objective_rows.py [--out bench/results]

For each spec set: the design `icgen size --model none` returns (through the API, as the CLI runs it), its power,
the best training design meeting the same specs with the margin, and a fresh simulation of the returned design
checking every bound (with and without the margin) and its health. Writes bench/results/objective_rows.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result  # noqa: E402
from icgen.core.score import check_specs, specs_from_options  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.sim.simulate import simulate  # noqa: E402
from icgen.sizing.loop import SizeConfig, size  # noqa: E402
from icgen.sizing.resources import SizingResources  # noqa: E402
from icgen.sizing.tradeoffs import summary  # noqa: E402

ROWS = ({"gain": "38dB", "pm": "52", "ugb": "1MHz"}, {"gain": "60dB", "pm": "60", "ugb": "1MHz"},
        {"gain": "38dB", "pm": "52"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    tech = load_technology("ptm65")
    resources = SizingResources.load(model_dir=None)
    config = SizeConfig()
    rows = []
    for options in ROWS:
        specs = specs_from_options(options)
        result = size(specs, tech, config, resources=resources)
        info = summary(result, resources.table)
        again = simulate(result.best.result.design, tech)
        row = {"specs": options, "met": result.met, "simulations": result.simulations, "source": result.best.source,
               "power_w": result.best.result.metrics.power_w, "x_best_training": info["x_best_training"],
               "best_training_power_w": 10 ** info["best_training"] if info["best_training"] is not None else None,
               "warnings": info["warnings"],
               "resimulated": {"power_w": again.metrics.power_w, "healthy": again.health.healthy,
                               "meets_specs": all(c.met for c in check_specs(again, specs)),
                               "meets_with_margin": all(c.met for c in check_specs(again, config.margin.tighten(specs)))}}
        rows.append(row)
        print(f"{' '.join(f'--{k} {v}' for k, v in options.items()):<34} {row['power_w']:.4g} W, "
              f"{row['x_best_training']:.3g}x the best training design ({row['best_training_power_w']:.4g} W); "
              f"re-simulated: meets {row['resimulated']['meets_specs']}, with margin "
              f"{row['resimulated']['meets_with_margin']}, healthy {row['resimulated']['healthy']}; "
              f"{result.simulations} simulations; warnings: {len(row['warnings'])}")
    print(f"wrote {write_result(args.out, 'objective_rows', {'command': 'bench/bench_objective_rows.py', 'rows': rows})}")


if __name__ == "__main__":
    main()
