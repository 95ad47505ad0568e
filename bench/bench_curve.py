"""Learning curve: the model's met share against the pairs it has seen, from a run's saved resume points.

    .venv/bin/python bench/bench_curve.py --run icgen/models/smollm2-135m-edit [--n 200] [--steps 100,300,611]
        [--methods retrieval,model-greedy] [--targets FILE.jsonl] [--out bench/results/curve-edit]

A training run keeps every resume point's adapter in RUN/curve/step-N/ (icgen.llm.train). For each chosen step
this assembles a run folder (the run's config.yaml, that adapter, the base tokenizer), runs `icgen eval` with the
given methods on the same targets (held-out test targets, or --targets with --n 0), and collects the met share
of each method per step. Writes OUT/curve.json (pairs seen, met %, the eval folders, the command) and
OUT/curve.png. Each eval folder resumes, so an interrupted curve continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result  # noqa: E402
from icgen.core.tech import load_technology  # noqa: E402
from icgen.data.dataset import Dataset  # noqa: E402
from icgen.eval.config import EvalConfig  # noqa: E402
from icgen.eval.folder import EvalRun  # noqa: E402
from icgen.eval.run import evaluate  # noqa: E402
from icgen.llm.model import base_folder  # noqa: E402


def _config(run: Path) -> dict:
    """The run's resolved config.yaml (the run may still be training: no adapter/ yet)."""
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def assemble(run: Path, step_dir: Path, into: Path) -> Path:
    """A loadable run folder for one resume point: config.yaml, adapter/ with its weights and the base tokenizer."""
    adapter = into / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "config.yaml", into / "config.yaml")
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copyfile(step_dir / name, adapter / name)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(base_folder(_config(run)["base"])).save_pretrained(adapter)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--steps", default=None, help="comma list of saved steps (default: every one)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--methods", default="retrieval,model-greedy")
    parser.add_argument("--targets", default=None)
    parser.add_argument("--data", default="data/ptm65-v2")
    parser.add_argument("--out", default="bench/results/curve-edit")
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    saved = sorted((int(p.name.split("-")[1]), p) for p in (run / "curve").glob("step-*"))
    wanted = {int(s) for s in args.steps.split(",")} if args.steps else {s for s, _ in saved}
    config_pairs = _config(run)
    per_step = config_pairs.get("batch_size", 8) * config_pairs.get("gradient_accumulation", 1)
    points = []
    for step, folder in saved:
        if step not in wanted:
            continue
        model_dir = assemble(run, folder, out / "models" / f"step-{step}")
        config = EvalConfig(n=args.n, budget=args.budget, methods=tuple(args.methods.split(",")), hand=False,
                            targets=args.targets)
        done = evaluate(config, EvalRun(out / f"eval-step-{step}"), Dataset(args.data), load_technology("ptm65"),
                        model_dir, log=lambda m: print(m, file=sys.stderr))
        met: dict[str, list[bool]] = {}
        for o in done["outcomes"]:
            met.setdefault(o.method, []).append(o.met)
        point = {"step": step, "pairs_seen": step * per_step, "eval": str(out / f"eval-step-{step}"),
                 "met_pct": {m: 100 * sum(v) / len(v) for m, v in met.items()}, "targets": len(next(iter(met.values())))}
        points.append(point)
        print(json.dumps(point))
        shutil.rmtree(out / "models" / f"step-{step}")  # 20 MB each; the adapter stays in RUN/curve
    result = {"command": " ".join(["bench/bench_curve.py", *sys.argv[1:]]), "run": str(run), "points": points}
    write_result(out, "curve", result)
    plot(points, out / "curve.png")
    print(f"wrote {out / 'curve.json'} and {out / 'curve.png'}")


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    methods = sorted({m for p in points for m in p["met_pct"]})
    for method in methods:
        xs = [p["pairs_seen"] for p in points if method in p["met_pct"]]
        ys = [p["met_pct"][method] for p in points if method in p["met_pct"]]
        ax.plot(xs, ys, marker="o", label=method)
    ax.set_xlabel("training pairs seen")
    ax.set_ylabel("targets met (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("icgen learning curve (one simulation per answer)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
