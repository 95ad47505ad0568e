"""Fresh in-distribution targets: working designs from a new Sobol seed, not in the dataset, relaxed as the eval
relaxes its held-out targets; written as an `icgen eval --targets` file.

    .venv/bin/python bench/fresh_targets.py [--n 200] [--seed 7] [--data data/ptm65-v2]
        [--out bench/results/fresh-targets.jsonl]

The dataset was drawn from Sobol seed 0; these come from another seed, are simulated with the v2 health rule
(and the buffer check, so no design on a UGB shelf), and any design that is also in the dataset is dropped.
The random split's test set overlaps the held-out training split, so it is no fair test for a model trained on
it; these targets are. Each line: {"name": "fresh-S-I", SI spec keys...}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from icgen.core.design import DESIGN_KEYS  # noqa: E402
from icgen.core.sampling import sample_designs  # noqa: E402
from icgen.core.score import SpecError, healthy_result, relaxed_specs  # noqa: E402
from icgen.core.status import Status  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.data.dataset import Dataset  # noqa: E402
from icgen.sim.simulate import SimConfig, SimulatorPool  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", default="data/ptm65-v2")
    parser.add_argument("--out", default="bench/results/fresh-targets.jsonl")
    args = parser.parse_args()
    tech = load_technology("ptm65")
    table = Dataset(args.data).table
    known = {tuple(float(v) for v in row) for row in table[list(DESIGN_KEYS)].itertuples(index=False)}
    config = SimConfig(tech=tech, benches=("buffer_ac",))
    lines, simulated, start = [], 0, 0
    with SimulatorPool() as pool:
        while len(lines) < args.n:
            designs = sample_designs(tech, args.seed, start, 512)
            start += 512
            for _, result in pool.map(designs, config):
                simulated += 1
                if result.status != Status.OK or not healthy_result(result):
                    continue
                if tuple(result.design.to_dict().values()) in known:
                    continue
                try:
                    specs = relaxed_specs(result.metrics)
                except SpecError:
                    continue
                index = len(lines)
                lines.append({"name": f"fresh-{args.seed}-{index}", **specs.given()})
                if len(lines) >= args.n:
                    break
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"wrote {len(lines)} targets from {simulated} simulated designs (Sobol seed {args.seed}) to {out}")


if __name__ == "__main__":
    main()
