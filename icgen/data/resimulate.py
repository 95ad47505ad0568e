"""Dataset v2: the working designs of a dataset simulated again with every sign-off bench and a stricter health
rule, beside the original (which stays as it is, for comparison).

    icgen data resimulate --data data/ptm65 --out data/ptm65-v2

Rows that were not working keep their v1 row (a stricter rule cannot make them work). Working rows are simulated
again with `SimConfig(signoff=True, health=V2_HEALTH)`; some stop being working, and `meta.json` counts them (also
within each held-out split), with the definitions used. The splits are copied unchanged: they are keyed by design
index, and a row that stops working simply drops out of `Dataset.rows`. Work is done in resumable parts.
"""
from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..core.io import git_sha
from ..core.measure import V2_HEALTH, HealthRule
from ..core.signoff import BENCHES
from ..core.tech import portable_path
from ..sim.backends import ngspice_version
from ..sim.engines import open_pool, pool_provenance
from ..sim.simulate import SimConfig
from .config import SPLIT_KINDS, SPLIT_NAMES
from .dataset import Dataset, dataset_technology, design_of, part_files
from .generate import simulate_chunk

CHUNK = 256
"""Designs per resumable part."""


def resimulate(source: Dataset, out: str | Path, rule: HealthRule = V2_HEALTH, workers: int | None = None,
               scheduler: str | None = None, progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Write dataset v2 of `source` into `out` (resumable); returns it."""
    source.require()
    target = Dataset(out)
    target.folder.mkdir(parents=True, exist_ok=True)
    table = source.table
    working = table[table["working"]].reset_index(drop=True)
    tech = dataset_technology(source)
    config = SimConfig(tech=tech, testbench=source.meta.get("testbench", "feedback"), signoff=True, health=rule)
    parts = part_files(target.parts_dir)
    done = parts[-1][1] if parts else 0
    started = time.time()
    engine = None
    if done < len(working):
        with open_pool(workers, scheduler) as pool:
            engine = pool_provenance(pool)
            while done < len(working):
                block = working.iloc[done:done + CHUNK]
                designs = [design_of(r) for _, r in block.iterrows()]
                frame = simulate_chunk(pool, designs, done, config, block["source"].tolist(), target.parts_dir,
                                       (lambda row: progress(row["index"] + 1, len(working))) if progress else None)
                done += len(frame)
    fresh = pd.concat([pd.read_parquet(p) for _, _, p in part_files(target.parts_dir)], ignore_index=True)
    fresh["index"] = working["index"].to_numpy()[fresh["index"].to_numpy()]  # part rows are numbered 0..n-1
    v2 = pd.concat([table[~table["working"]], fresh], ignore_index=True).sort_values("index", kind="stable")
    v2 = v2.reset_index(drop=True)
    target.write_table(v2)
    shutil.copyfile(source.splits_path, target.splits_path)
    target.write_meta(_meta(source, target.reload(), rule, time.time() - started, engine))
    return target.reload()


def _meta(source: Dataset, target: Dataset, rule: HealthRule, wall_s: float, engine: dict | None) -> dict:
    v1, v2 = source.table.set_index("index"), target.table.set_index("index")
    was = v1.index[v1["working"]]
    stopped = was[~v2.loc[was, "working"].to_numpy()]
    by_split = {}
    for kind in SPLIT_KINDS:
        splits = source.splits.set_index("index")[kind]
        by_split[kind] = {name: {"working_v1": int((splits.loc[was] == name).sum()),
                                 "stopped_working": int((splits.loc[stopped] == name).sum())} for name in SPLIT_NAMES}
    reasons = pd.Series([re.sub(r"-?\d+(\.\d+)?", "#", f.split(" (")[0])
                         for flags in v2.loc[stopped, "flags"] for f in str(flags).split("; ") if f])
    return {
        "what": "icgen dataset v2: the working designs of v1 simulated again with every sign-off bench and a "
                "stricter health rule; the other rows as in v1",
        "v1": portable_path(source.folder), "v1_meta": source.meta, "health_rule": asdict(rule),
        "benches": list(BENCHES), "definitions": "icgen/core/signoff.py module docstring; icgen/core/measure.py "
                                                 "HealthRule",
        "counts": {"simulated": int(len(v2)), "working_v1": int(len(was)), "working_v2": int(v2["working"].sum()),
                   "stopped_working": int(len(stopped))},
        "stopped_by_split": by_split,
        "stopped_because": {k: int(v) for k, v in reasons.value_counts().head(12).items()},
        "git_sha": git_sha(), "ngspice_version": ngspice_version(), "wall_s": round(wall_s, 1), "engine": engine,
    }
