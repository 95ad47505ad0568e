"""Tokens per training pair for each export format, with the default model's tokenizer (SmolLM2-135M).

    .venv/bin/python bench/bench_tokens.py [--data data/ptm65] [--split train]

Prints a table and writes bench/results/tokens.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_result  # noqa: E402
from icgen.data.dataset import Dataset  # noqa: E402
from icgen.llm.edits import dataset_pairs  # noqa: E402
from icgen.llm.model import DEFAULT_GGUF_FILE, load_tokenizer  # noqa: E402
from icgen.llm.pairs import FORMATS, pair_token_counts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/ptm65")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    data = Dataset(args.data)
    tokenizer = load_tokenizer()
    results = {"tokenizer": DEFAULT_GGUF_FILE, "data": args.data, "split": args.split, "formats": {}}
    print(f"{'format':<8} {'pairs':>6} {'mean':>7} {'median':>7} {'max':>5} {'total':>9}")
    for fmt in FORMATS:
        counts = np.array(pair_token_counts(dataset_pairs(data, fmt, args.split), tokenizer))
        results["formats"][fmt] = {"pairs": int(len(counts)), "mean": float(counts.mean()),
                                   "median": float(np.median(counts)), "max": int(counts.max()),
                                   "total": int(counts.sum())}
        print(f"{fmt:<8} {len(counts):>6} {counts.mean():>7.1f} {np.median(counts):>7.0f} {counts.max():>5} "
              f"{counts.sum():>9}")
    ratio = results["formats"]["compact"]["mean"] / results["formats"]["seed"]["mean"]
    results["compact_over_seed"] = ratio
    print(f"compact / seed = {ratio:.3f}")
    print(f"wrote {write_result(args.out, 'tokens', results)}")


if __name__ == "__main__":
    main()
