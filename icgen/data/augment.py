"""Grow a dataset from simulation sweeps: around given designs, or aimed at sparse regions of the metric space.

    icgen data augment --around model_answers.jsonl --source model --n 64
    icgen data augment --fill-gaps

Any simulated design is a correct pair for its own metrics, so swept rows join the table with provenance
(`source`: sweep | model | user). Each augmentation is a run under DATA/augment/RUN/ with its candidate list
written first and its results in atomic parts: killed, it resumes; repeated, it adds nothing twice.

Coverage of the metric space is counted on a fixed grid of cells: gain in 10 dB steps (0..100 dB), UGB in
half decades (100 Hz..10 GHz) and phase margin in 15 degree steps (0..180 degrees); a cell is covered when at
least one working design lands in it, and sparse when it holds fewer than SPARSE_BELOW of them.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.design import DESIGN_KEYS, Design
from ..core.io import write_json_atomic, write_parquet_atomic
from ..core.parse import parse_answer, parse_compact, parse_design_json
from ..core.sampling import Radius, local_sweep
from ..core.tech import Technology
from ..sim.engines import open_pool
from ..sim.simulate import SimConfig
from .dataset import Dataset, dataset_technology, design_of, part_files, with_augments
from .generate import base_table, simulate_chunk

INDEX_BASE = 1_000_000_000  # augmented rows are numbered apart from the sampled ones
INDEX_PER_RUN = 1_000_000
SPARSE_BELOW = 3
GAIN_EDGES_DB = np.arange(0, 101, 10)
UGB_EDGES_LOG10 = np.arange(2, 10.01, 0.5)
PM_EDGES_DEG = np.arange(0, 181, 15)


def coverage_cells(table: pd.DataFrame) -> pd.Series:
    """Working designs per covered cell of the (gain, log10 UGB, PM) grid."""
    work = table[table["working"]]
    g = np.digitize(work["gain_db"], GAIN_EDGES_DB)
    u = np.digitize(np.log10(work["ugb_hz"]), UGB_EDGES_LOG10)
    p = np.digitize(work["pm_deg"], PM_EDGES_DEG)
    return pd.Series(list(zip(g, u, p))).value_counts()


def coverage(table: pd.DataFrame) -> dict[str, int]:
    """Covered cells and sparse cells (fewer than SPARSE_BELOW working designs) of the metric grid."""
    cells = coverage_cells(table)
    return {"covered_cells": int(len(cells)), "sparse_cells": int((cells < SPARSE_BELOW).sum()),
            "grid_cells": int((len(GAIN_EDGES_DB) + 1) * (len(UGB_EDGES_LOG10) + 1) * (len(PM_EDGES_DEG) + 1)),
            "working": int(table["working"].sum())}


def sparse_centers(table: pd.DataFrame, max_centers: int, seed: int) -> list[Design]:
    """Working designs that sit in sparse cells: the starting points of gap-filling sweeps."""
    work = table[table["working"]].reset_index(drop=True)
    keys = list(zip(np.digitize(work["gain_db"], GAIN_EDGES_DB),
                    np.digitize(np.log10(work["ugb_hz"]), UGB_EDGES_LOG10),
                    np.digitize(work["pm_deg"], PM_EDGES_DEG)))
    cells = pd.Series(keys).value_counts()
    sparse = [i for i, k in enumerate(keys) if cells[k] < SPARSE_BELOW]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.permutation(sparse)[:max_centers].tolist())
    return [design_of(work.loc[i]) for i in chosen]


MAX_CENTERS_BYTES = 64 * 1024 * 1024
"""The largest --around file read."""


def _center(item, where: str, tech: Technology | None) -> Design:
    """One design to sweep around, through the same parse and range checks as every answer."""
    if isinstance(item, dict) and "completion" in item:  # a model's pair or generation
        text = item["completion"]
        if not isinstance(text, str):
            raise ValueError(f"{where}: \"completion\" must be the model's text, not {type(text).__name__}")
        parsed = parse_answer(text) if "M1" in text else parse_compact(text)
    else:
        parsed = parse_design_json(item)
    if parsed.design is None or parsed.problems:
        raise ValueError(f"{where}: not a valid design: {'; '.join(map(str, parsed.problems[:2])) or 'incomplete'}")
    outside = tech.out_of_bounds(parsed.design) if tech is not None else []
    if outside:
        raise ValueError(f"{where}: {outside[0]}")
    return parsed.design


def read_centers(path: str | Path, tech: Technology | None = None) -> list[Design]:
    """Designs to sweep around: JSON (a design, {"design": ...}, or a list), JSONL, or an answer-format text.
    Every one must parse without a problem and (given `tech`) lie inside the technology's bounds."""
    path = Path(path)
    if path.stat().st_size > MAX_CENTERS_BYTES:
        raise ValueError(f"{path}: larger than {MAX_CENTERS_BYTES // 2**20} MiB; split it")
    text = path.read_text(errors="replace")
    stripped = text.strip()
    items: list = []
    try:
        if stripped.startswith("["):
            items = json.loads(stripped)
            if not isinstance(items, list):
                raise ValueError(f"{path}: expected a JSON list of designs")
        elif stripped.startswith("{"):
            try:
                items = [json.loads(stripped)]
            except json.JSONDecodeError:
                items = [json.loads(line) for line in stripped.splitlines() if line.strip()]
    except (ValueError, RecursionError) as err:  # bad JSON, or an integer past Python's digit limit
        raise ValueError(f"{path}: not valid JSON or JSONL ({type(err).__name__})") from None
    designs = [_center(item, f"{path}: design {i + 1}", tech) for i, item in enumerate(items)]
    if not items:
        designs.append(_center({"completion": text}, str(path), tech))  # an answer, or a compact completion
    return designs


def sampled_rows(data: Dataset) -> pd.DataFrame:
    """The dataset's sampled rows (not augmented): from its parts when they are there, else from the table (a
    dataset shipped without its parts)."""
    n_working = data.meta.get("n_working")
    if n_working is not None and part_files(data.parts_dir):
        return base_table(data, int(n_working))
    return data.table[data.table["index"] < INDEX_BASE].reset_index(drop=True)


def augment(out: str | Path | Dataset, centers: list[Design], center_source: str, n_per_center: int, radius: Radius,
            seed: int, kind: str, workers: int | None = None, chunk: int = 256,
            progress: Callable[[int, int], None] | None = None, scheduler: str | None = None) -> dict:
    """Sweep around `centers`, simulate what is new, append to the dataset; returns counts and coverage."""
    data = out if isinstance(out, Dataset) else Dataset(out)
    meta = data.meta
    tech = dataset_technology(data)
    base = sampled_rows(data)
    before_table = data.table
    before = coverage(before_table)
    args = {"kind": kind, "source": center_source, "n_per_center": n_per_center, "radius": asdict(radius),
            "seed": seed, "centers": [c.to_dict() for c in centers]}
    run_id = f"{kind}-{hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:10]}"
    runs = data.augment_runs()
    run_dir = data.augment_run_dir(run_id)
    if run_id not in [r["id"] for r in runs]:
        # the candidate list is fixed once, before any simulation: resuming re-reads it
        existing = {tuple(row) for row in before_table[list(DESIGN_KEYS)].itertuples(index=False)}
        candidates: list[tuple[Design, str]] = []
        seen = set(existing)
        for i, center in enumerate(centers):
            batch = [(center, center_source)] if center_source in ("model", "user") else []
            batch += [(d, "sweep") for d in local_sweep(center, tech, n_per_center, seed + i, radius)]
            for design, source in batch:
                key = tuple(design.to_dict().values())
                if key not in seen:
                    seen.add(key)
                    candidates.append((design, source))
        run_dir.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame([{**d.to_dict(), "source": s} for d, s in candidates],
                             columns=list(DESIGN_KEYS) + ["source"])
        write_parquet_atomic(frame, run_dir / "candidates.parquet")
        runs.append({"id": run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **args,
                     "centers": len(centers)})
        data.write_augment_runs(runs)
    ordinal = [r["id"] for r in runs].index(run_id)
    candidates_frame = pd.read_parquet(run_dir / "candidates.parquet")
    parts = part_files(run_dir / Dataset.PARTS)
    done = parts[-1][1] if parts else 0
    total = len(candidates_frame)
    sim_config = SimConfig(tech=tech, testbench=meta.get("testbench", "feedback"))
    if done < total:
        with open_pool(workers, scheduler) as pool:
            while done < total:
                block = candidates_frame.iloc[done:done + chunk]
                designs = [design_of(r) for _, r in block.iterrows()]
                index_offset = INDEX_BASE + ordinal * INDEX_PER_RUN
                on_row = (lambda row, offset=index_offset: progress(row["index"] - offset + 1, total)) \
                    if progress else None
                simulate_chunk(pool, designs, done, sim_config, block["source"].tolist(), run_dir / Dataset.PARTS,
                               on_row, index_offset=index_offset)
                done += len(designs)
    table = with_augments(base, data)
    data.write_table(table)
    _extend_splits(data, table)
    after = coverage(table)
    added = table[table["index"] >= INDEX_BASE + ordinal * INDEX_PER_RUN]
    added = added[added["index"] < INDEX_BASE + (ordinal + 1) * INDEX_PER_RUN]
    result = {"run": run_id, "candidates": total, "added_rows": int(len(added)),
              "added_working": int(added["working"].sum()), "coverage_before": before, "coverage_after": after}
    write_json_atomic(result, run_dir / "result.json")
    return result


def _extend_splits(data: Dataset, table: pd.DataFrame) -> None:
    """Augmented working rows join the training split of both split kinds; existing rows never change."""
    if not data.has_splits:
        return
    splits = data.splits
    new = table[~table["index"].isin(splits["index"])]
    if new.empty:
        return
    label = np.where(new["working"].to_numpy(), "train", "")
    extra = pd.DataFrame({"index": new["index"].to_numpy(), "random": label, "heldout": label, "cluster": -1})
    data.write_splits(pd.concat([splits, extra], ignore_index=True))
