"""Greedy completions of a trained model on validation prompts: parse rate, valid-netlist rate, metric errors.

    .venv/bin/python bench/bench_generate.py [--model icgen/models/smollm2-135m-cpu] [--n 200]

"Valid" means: parses to a complete design, every value inside the technology's bounds, and it simulates as an
amplifier (status ok); "working" adds a healthy operating point. Writes bench/results/generate.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.llm.complete import complete  # noqa: E402
from icgen.llm.model import load_finetuned, run_config  # noqa: E402
from icgen.llm.train import TrainConfig, load_pairs  # noqa: E402
from icgen.sim.simulate import SimConfig, simulate_many  # noqa: E402
from icgen.sim.validate import range_problems  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="icgen/models/smollm2-135m-cpu")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    run = run_config(args.model)
    config = TrainConfig(data=run["data"], format=run["format"], split_kind=run["split_kind"], seed=run["seed"])
    pairs = load_pairs(config, args.split, args.n)
    model, tokenizer = load_finetuned(args.model)
    start = time.time()
    completions = complete(model, tokenizer, [p["prompt"] for p in pairs], fmt=config.format,
                           batch_size=args.batch_size)
    generate_s = time.time() - start
    tech = load_technology("ptm65")
    parsed = [c.parsed for c in completions]
    in_range = [p.design is not None and not p.problems and not range_problems(p.design, tech) for p in parsed]
    designs = [p.design for p, ok in zip(parsed, in_range) if ok]
    results = simulate_many(designs, SimConfig(tech=tech))
    by_design = iter(results)
    rows = []
    for pair, ok in zip(pairs, in_range):
        result = next(by_design) if ok else None
        rows.append((pair, result))
    valid = [r for _, r in rows if r is not None and r.status == "ok"]
    working = [r for r in valid if r.health.healthy]
    errors = {"gain_db": [], "ugb_log10": [], "pm_deg": [], "power_log10": []}
    from icgen.data.dataset import load_dataset

    table = load_dataset(config.data).set_index("index")
    for pair, result in rows:
        if result is None or result.status != "ok":
            continue
        target = table.loc[pair["index"]]
        m = result.metrics
        errors["gain_db"].append(abs(m.gain_db - target["gain_db"]))
        errors["ugb_log10"].append(abs(np.log10(m.ugb_hz / target["ugb_hz"])))
        errors["pm_deg"].append(abs(m.pm_deg - target["pm_deg"]))
        errors["power_log10"].append(abs(np.log10(m.power_w / target["power_w"])))
    n = len(pairs)
    summary = {
        "model": args.model, "split": args.split, "prompts": n, "format": config.format,
        "parsed": sum(p.design is not None and not p.problems for p in parsed) / n,
        "in_range": sum(in_range) / n, "valid": len(valid) / n, "working": len(working) / n,
        "generate_s": generate_s, "median_abs_error": {k: float(np.median(v)) if v else None for k, v in errors.items()},
        "examples": [c.text for c in completions[:3]],
    }
    written = write_result(args.out, "generate", summary)
    print(f"{n} greedy completions in {generate_s:.0f} s: parsed {summary['parsed']:.1%}, in range "
          f"{summary['in_range']:.1%}, valid (simulates as an amplifier) {summary['valid']:.1%}, working "
          f"(and healthy) {summary['working']:.1%}")
    print("median |error| vs the target's metrics:", json.dumps(summary["median_abs_error"]))
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
