"""The README's recipe for your own technology, run end to end and timed: descriptor -> data generate (splits
included) -> train (the fix format from scratch: its pairs are drawn by simulation first) -> size (the surrogate is
fitted on first use) -> signoff at the descriptor's corners with Monte Carlo -> size again, at every corner.

    .venv/bin/python bench/bench_own_tech.py [--n-working 400] [--fix-targets 200] [--steps 10] [--work DIR]

"Your own technology" here is a copy of ptm65's descriptor under another name (`mytech`) whose model_file is an
absolute path, as a user's foundry descriptor would be: nothing of it is in the repository, every step reads it by
path (`--tech FILE.yaml`). Each step is the `icgen` command a user types, run as a subprocess and timed; a small
dataset and a short training run keep the whole recipe to minutes (scale the dataset's time by its size: generation
is linear in the designs simulated). Prints a table and writes bench/results/own-tech.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from icgen import __version__  # noqa: E402
from icgen.core.io import git_sha  # noqa: E402

ICGEN = str(Path(sys.executable).with_name("icgen"))
SPECS = ["--gain", "40dB", "--pm", "50"]


def descriptor(work: Path) -> Path:
    """A copy of ptm65's descriptor named `mytech`, its model file given by absolute path."""
    text = (ROOT / "spice" / "ptm65.yaml").read_text()
    text = text.replace("name: ptm65", "name: mytech", 1)
    text = text.replace("model_file: ptm65.lib", f"model_file: {ROOT / 'spice' / 'ptm65.lib'}", 1)
    path = work / "mytech.yaml"
    path.write_text(text)
    return path


def step(name: str, args: list[str], ok_codes=(0,)) -> dict:
    started = time.perf_counter()
    run = subprocess.run([ICGEN, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
    print(f"{name:<10} {seconds:8.1f} s  exit {run.returncode}  {tail[-1] if tail else ''}", flush=True)
    if run.returncode not in ok_codes:
        raise SystemExit(f"{name} failed (exit {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return {"step": name, "command": "icgen " + " ".join(args), "seconds": seconds, "exit": run.returncode,
            "stdout": run.stdout, "tail": tail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-working", type=int, default=400)
    parser.add_argument("--steps", type=int, default=10, help="Training steps (batch 8).")
    parser.add_argument("--fix-targets", type=int, default=200,
                        help="Training targets whose fix pairs are drawn by simulation before training.")
    parser.add_argument("--corners", default="all")
    parser.add_argument("--work", default="/tmp/icgen-own-tech")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    tech = descriptor(work)
    data, run = work / "data", work / "run"
    steps = [
        step("generate", ["data", "generate", "--tech", str(tech), "--n-working", str(args.n_working), "--chunk", "256",
                          "--out", str(data)]),
        step("train", ["train", "--config", str(ROOT / "icgen" / "configs" / "smollm2-135m-fix.yaml"),
                       "--set", "name=mytech", "--set", f"data={data}", "--set", f"output_dir={run}",
                       "--set", f"fix_targets={args.fix_targets}", "--set", f"max_steps={args.steps}",
                       "--set", "validation_subset=16", "--set", f"eval_steps={args.steps}"]),
        step("size", ["size", "--tech", str(tech), "--data", str(data), "--model", str(run), *SPECS, "--json"]),
    ]
    (work / "sized.json").write_text(steps[-1]["stdout"])  # signoff reads size's --json output as it is
    steps.append(step("signoff", ["signoff", str(work / "sized.json"), "--tech", str(tech), "--corners", args.corners,
                                  *SPECS, "--mc", "200"], ok_codes=(0, 1)))
    steps.append(step("size-corners", ["size", "--tech", str(tech), "--data", str(data), "--model", str(run), *SPECS,
                                       "--corners", args.corners, "--json"], ok_codes=(0, 1)))
    sized = json.loads(steps[2]["stdout"])
    at_corners = json.loads(steps[4]["stdout"])
    summary = {"command": "bench/bench_own_tech.py " + " ".join(sys.argv[1:]), "n_working": args.n_working,
               "train_steps": args.steps, "fix_targets": args.fix_targets, "corners": args.corners,
               "steps": [{k: v for k, v in s.items() if k != "stdout"} for s in steps],
               "size_met": sized.get("met"), "size_simulations": sized.get("simulations"),
               "signoff_passed": steps[3]["exit"] == 0, "size_corners_met": at_corners.get("met"),
               "size_corners_simulations": at_corners.get("simulations"), "wall_s": time.perf_counter() - started,
               "icgen": __version__, "git": git_sha(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    print("\n| step | command | seconds |\n|---|---|---|")
    for s in summary["steps"]:
        print(f"| {s['step']} | `{s['command'].replace(str(work), 'W')}` | {s['seconds']:.1f} |")
    path = write_result(args.out, "own-tech", summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
