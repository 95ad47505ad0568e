"""Latency of `icgen size` with the embedded model on this CPU, over 20 targets, as a user runs it.

    .venv/bin/python bench/bench_size.py [--n-heldout 12] [--model icgen/models/smollm2-135m-cpu]

Targets: the 8 hand-written specs of `icgen eval` plus held-out test designs turned into relaxed bounds (all six
metrics). Each target is one fresh `icgen size ... --json` process, so the wall time includes Python start, imports,
the dataset read, the model load when the loop needs it, and every simulation. Also reports the loop's own seconds
(what `--json` calls "seconds": from the start of the command to the verified answer). Writes
bench/results/size.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from icgen.data.dataset import Dataset  # noqa: E402
from icgen.eval.targets import HAND_TARGETS, EvalConfig, heldout_targets  # noqa: E402

OPTIONS = {"gain_db": "--gain", "ugb_hz": "--ugb", "pm_deg": "--pm", "gm_db": "--gm", "bw3db_hz": "--bw",
           "power_w": "--power"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-heldout", type=int, default=12)
    parser.add_argument("--model", default=str(ROOT / "icgen" / "models" / "smollm2-135m-cpu"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    data = ROOT / "data" / "ptm65"
    targets = [(name, specs) for name, specs in HAND_TARGETS]
    targets += [(t.name, t.specs) for t in heldout_targets(Dataset(data), EvalConfig(n=args.n_heldout, seed=1))]
    icgen = str(Path(sys.executable).with_name("icgen"))
    rows = []
    for name, specs in targets:
        cmd = [icgen, "size", "--json", "--model", args.model]
        for key, value in specs.given().items():
            cmd += [OPTIONS[key], repr(value)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        if proc.returncode not in (0, 1):  # 1: ran, specs not met
            raise SystemExit(f"{name}: icgen size failed: {proc.stderr.strip() or proc.stdout.strip()}")
        result = json.loads(proc.stdout)
        rows.append({"target": name, "met": result["met"], "simulations": result["simulations"],
                     "seconds": result["seconds"], "wall_s": wall, "source": result["source"]})
        print(f"{name:<24} met={result['met']!s:<5} sims={result['simulations']:>2} "
              f"seconds={result['seconds']:6.2f} wall={wall:6.2f} source={result['source']}", flush=True)
    frame = pd.DataFrame(rows)
    summary = {
        "targets": len(frame), "met": int(frame["met"].sum()),
        "median_seconds": float(frame["seconds"].median()), "p90_seconds": float(frame["seconds"].quantile(0.9)),
        "median_wall_s": float(frame["wall_s"].median()), "p90_wall_s": float(frame["wall_s"].quantile(0.9)),
        "median_simulations": float(frame["simulations"].median()),
        "sources": frame["source"].value_counts().to_dict(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs", "rows": rows,
        "command": "bench/bench_size.py " + " ".join(sys.argv[1:]),
    }
    written = write_result(args.out, "size", summary)
    print(f"\n{summary['met']}/{summary['targets']} met; median {summary['median_seconds']:.2f} s in the command "
          f"(p90 {summary['p90_seconds']:.2f}), median wall {summary['median_wall_s']:.2f} s per process "
          f"(p90 {summary['p90_wall_s']:.2f}), median {np.median(frame['simulations']):.0f} simulations")
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
