"""Retrieval at corners: the training designs' worst-corner figures, simulated once per corner set and cached in the
dataset folder, so `icgen size --corners SET` starts from designs known to hold at every corner.

    table = corner_table(data, "heldout", tech, tech.corner_set("all"), pool)   # the columns of training_rows()
    rank_rows(table, specs).head(2)                                               # best at their worst corner first

Each working training design is simulated at every corner of the set with the loop's UGB bench; its row is
`result_row` of `worst_result` over the corners: the lowest gain, UGB, PM, GM, BW and buffer bandwidth, the highest
power, each device's least saturated corner, and `working` only when it is a healthy working amplifier at every
corner. The first batch runs at every corner; after it, a design is simulated first at the `SCREEN` corners where that
batch failed most and at the rest only when it works there, so a design that fails somewhere is not simulated
everywhere (its row, not working, then holds the worst of the corners it ran at; retrieval and the corner surrogate
read working rows only). The working rows are the same as without screening. Figures the loop does not simulate at
corners (CMRR, noise, settling, ...) are absent (NaN), so a spec on them counts as unmeasured in the ranking rather
than read at the nominal corner. The cache (`Dataset.corner_table_path`)
is keyed by the technology's provenance (model files' sha256), the corners, the bias and the training designs, and
is rebuilt when any of them changes; its json records the simulations run. The technology's own nominal corner needs
no table: the dataset was simulated there (at the VDD and CL its meta.json records), so its working rows (with every
figure the dataset measured) are returned as they are. On ptm65 `all` it costs at most 9 simulations per training
design (bench/bench_corners.py: `corner_table_s`).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

import pandas as pd

from ..core.corner import NOMINAL_TEMP_C, Bias, Corner
from ..core.design import DESIGN_KEYS
from ..core.io import write_json_atomic, write_parquet_atomic
from ..core.tech import Technology
from ..data.dataset import Dataset, design_of, result_row
from ..sim.corners import ScreenedCorners, worst_result

BATCH = 256
"""Training designs simulated per batch (each at every corner)."""
SCREEN = 3
"""After the first batch, each design is simulated first at the SCREEN corners where that batch failed most, and
at the others only when it works at those (icgen.sim.corners.ScreenedCorners)."""


def corner_table_key(train: pd.DataFrame, tech: Technology, corners: tuple[Corner, ...], bias: str) -> str:
    """What a cached corner table was built from: the technology (its files' hashes), corners, bias, designs."""
    work = train[train["working"]]
    designs = pd.util.hash_pandas_object(work[["index", *DESIGN_KEYS]], index=False).to_numpy().tobytes()
    recorded = {"tech": tech.provenance(), "corners": [c.name for c in corners], "bias": str(bias)}
    return hashlib.sha256(json.dumps(recorded, sort_keys=True).encode() + designs).hexdigest()


def _simulated_there(data: Dataset, tech: Technology, corners: tuple[Corner, ...]) -> bool:
    """Whether `corners` is the one corner the dataset was simulated at: the technology's own process at 27 °C, at
    the supply and load its meta.json records (so not a user's --vdd or --cl)."""
    if tuple(corners) != (Corner.make(tech.corner, tech.vdd_v, NOMINAL_TEMP_C),):
        return False
    recorded = data.technology
    return recorded.get("vdd_v") == tech.vdd_v and recorded.get("cl_f") == tech.cl_f


def corner_table(data: Dataset, kind: str, tech: Technology, corners: tuple[Corner, ...], pool,
                 bias: str = Bias.TRACK_VDD, progress: Callable | None = None,
                 log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The working training rows of split kind `kind` as simulated at every corner, one worst-corner row each (see
    the module docstring); read from the dataset's cache when it was built from the same inputs."""
    train = data.training_rows(kind)
    if _simulated_there(data, tech, corners):
        return train[train["working"]]
    key = corner_table_key(train, tech, corners, bias)
    path = data.corner_table_path(kind, key[:16])
    if path.is_file():
        return pd.read_parquet(path)
    work = train[train["working"]]
    rows: list[dict] = []
    started = time.perf_counter()
    bar = progress(total=len(work), desc=f"corner table ({len(corners)} corners)", unit="design") if progress else None
    screened = ScreenedCorners(tech, corners, pool, bias, SCREEN)
    for first in range(0, len(work), BATCH):
        chunk = work.iloc[first:first + BATCH]
        simulated = screened.run([design_of(row) for _, row in chunk.iterrows()])
        for pairs, (_, row) in zip(simulated, chunk.iterrows()):
            rows.append(result_row(int(row["index"]), worst_result(pairs), str(row.get("source", ""))))
        if bar:
            bar.update(len(chunk))
    if bar:
        bar.close()
    table = pd.DataFrame(rows)
    seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(table, path)
    write_json_atomic({"key": key, "kind": kind, "corners": [c.name for c in corners], "bias": str(bias),
                       "tech": tech.name, "designs": len(work), "simulations": screened.simulations,
                       "screen": SCREEN, "screen_order": [c.name for c in screened.order or ()],
                       "working_at_every_corner": int(table["working"].sum()) if len(table) else 0,
                       "seconds": seconds}, path.with_suffix(".json"))
    if log:
        log(f"corner table: {len(work)} training designs at {len(corners)} corners, {screened.simulations} "
            f"simulations in {seconds:.0f} s, "
            f"{int(table['working'].sum()) if len(table) else 0} healthy at every corner (cached in {path.parent})")
    return table


def corner_table_loader(data: Dataset, kind: str = "heldout", progress: Callable | None = None,
                        log: Callable[[str], None] | None = None) -> Callable:
    """A callable (tech, corners, pool, bias) -> the corner table, for SizingResources."""
    def load(tech: Technology, corners: tuple[Corner, ...], pool, bias: str = Bias.TRACK_VDD) -> pd.DataFrame:
        return corner_table(data, kind, tech, corners, pool, bias, progress=progress, log=log)
    return load
