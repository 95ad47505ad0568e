"""Before / after table of tuned adapters: the same eval methods of several runs on the same targets, paired.

    python bench/tuned_table.py --run sft=bench/results/eval-fix --run dpo=bench/results/eval-fix-dpo \
        --run rft=bench/results/eval-fix-rft --methods model-greedy --out bench/results/tuned

For each method and run (an `icgen eval` folder's outcomes.jsonl, held-out targets or --kind file): the met share, the median
shortfall (an answer never simulated counts as infinite), the valid-answer rate (valid proposals / proposals), and,
against the first run on the targets both have, McNemar's exact p on met and the paired bootstrap 95 % interval of the
median shortfall's difference (icgen.eval.paired). Writes OUT.md and OUT.json.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icgen.eval.folder import EvalRun  # noqa: E402
from icgen.eval.paired import bootstrap_difference, compare_paired  # noqa: E402


def outcomes(folder: Path, kind: str) -> dict[str, dict[str, dict]]:
    """method -> target -> outcome record (as a dict), for one eval folder's targets of `kind`."""
    out: dict[str, dict[str, dict]] = {}
    for (method, target), outcome in EvalRun(folder).done().items():
        if outcome.kind == kind:
            out.setdefault(method, {})[target] = asdict(outcome)
    return out


def shortfall(record: dict) -> float:
    return 0.0 if record["met"] else (math.inf if record["shortfall"] is None else float(record["shortfall"]))


def table(runs: list[tuple[str, Path]], methods: list[str], kind: str = "heldout", against: str | None = None) -> list[dict]:
    loaded = [(name, outcomes(folder, kind)) for name, folder in runs]
    reference = next((data[against] for _, data in loaded if against in data), None) if against else None
    rows = []
    for method in methods:
        present = [(name, data[method]) for name, data in loaded if method in data]
        if not present:
            continue
        base_name, base = present[0]
        for name, mine in present:
            shared = [t for t in mine if t in base]
            records = list(mine.values())
            row = {"method": method, "run": name, "targets": len(records),
                   "met %": 100 * sum(r["met"] for r in records) / len(records),
                   "median shortfall": statistics.median(shortfall(r) for r in records),
                   "p75 shortfall": float(np.quantile([shortfall(r) for r in records], 0.75, method="nearest")),
                   "valid %": 100 * sum(r["valid"] for r in records) / max(sum(r["proposals"] for r in records), 1),
                   "median sims": statistics.median(r["simulations"] for r in records)}
            if name != base_name and shared:
                paired = compare_paired([mine[t]["met"] for t in shared], [base[t]["met"] for t in shared])
                ours, theirs = [shortfall(mine[t]) for t in shared], [shortfall(base[t]) for t in shared]
                diff, low, high = bootstrap_difference(ours, theirs)
                diff75, low75, high75 = bootstrap_difference(ours, theirs, quantile=0.75)
                row.update({"vs": base_name, "only this": paired.only_a, "only vs": paired.only_b,
                            "McNemar p": paired.p_value, "median shortfall diff": diff,
                            "diff 95 % CI": [low, high], "p75 shortfall diff": diff75, "p75 diff 95 % CI": [low75, high75]})
            if reference is not None and method != against:
                common = [t for t in mine if t in reference]
                vs = compare_paired([mine[t]["met"] for t in common], [reference[t]["met"] for t in common])
                row.update({f"vs {against}": f"{vs.only_a} / {vs.only_b}", f"p vs {against}": vs.p_value,
                            f"{against} met %": 100 * vs.met_b})
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| method | run | targets | met % | median shortfall | p75 shortfall | valid % | median sims | vs | "
            "only this / only vs | McNemar p | median shortfall diff (95 % CI) | p75 diff (95 % CI) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    def ci(r: dict, key: str) -> str:
        low, high = r.get(f"{key} 95 % CI", [0, 0])
        name = "median shortfall diff" if key == "diff" else "p75 shortfall diff"
        return f"{r[name]:+.4f} ({low:+.4f} .. {high:+.4f})" if "vs" in r else ""

    against = next((k[3:] for r in rows for k in r if k.startswith("vs ") and k != "vs"), None)
    if against:
        head = head + f" vs {against} (only this / only {against}, McNemar p) |"
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        tail = (f" {r[f'vs {against}']}, p = {r[f'p vs {against}']:.3g} |" if f"vs {against}" in r else " |") \
            if against else ""
        lines.append(f"| {r['method']} | {r['run']} | {r['targets']} | {r['met %']:.1f} | {r['median shortfall']:.4f} | "
                     f"{r['p75 shortfall']:.4f} | {r['valid %']:.1f} | {r['median sims']:g} | {r.get('vs', '')} | "
                     f"{str(r['only this']) + ' / ' + str(r['only vs']) if 'vs' in r else ''} | "
                     f"{format(r['McNemar p'], '.3g') if 'vs' in r else ''} | {ci(r, 'diff')} | {ci(r, 'p75 diff')} |" + tail)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=EVAL_FOLDER",
                        help="An eval folder and its name; the first is the baseline the others are paired with.")
    parser.add_argument("--methods", default="model-greedy,model-loop")
    parser.add_argument("--against", default=None, metavar="METHOD",
                        help="Also pair every row with this method of the first run that has it (e.g. retrieval).")
    parser.add_argument("--kind", default="heldout", help="Targets of this kind: heldout, or file (--targets FILE).")
    parser.add_argument("--out", default="bench/results/tuned")
    args = parser.parse_args()
    runs = []
    for item in args.run:
        name, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / "outcomes.jsonl").is_file():
            parser.error(f"--run {item!r}: use NAME=FOLDER with FOLDER/outcomes.jsonl (an icgen eval --out folder)")
        runs.append((name, Path(folder)))
    rows = table(runs, args.methods.split(","), args.kind, args.against)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"runs": {n: str(f) for n, f in runs}, "rows": rows},
                                                   indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
