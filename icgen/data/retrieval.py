"""Retrieval: the training designs whose recorded metrics best meet the specs, best first. A table operation of
the data stage, so that the sizing loop (its first step), the eval and the fix-pair draw (icgen.llm.fixes) rank
alike.

    rank_rows(training_rows, Specs(gain_db=38, pm_deg=52)).head(2)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.objective import Objective
from ..core.score import Specs, table_rank

VIN_WINDOW_V = 0.05
"""With `--vin`, retrieval searches the training designs whose VIN lies within 50 mV of it."""


def rank_rows(table: pd.DataFrame, specs: Specs, goal: Objective | None = None) -> pd.DataFrame:
    """Working rows ordered by how well their recorded metrics meet the specs (best first); with an objective that
    improves, the rows meeting every spec come first ordered by the objective (lowest power first for min-power)."""
    work = table[table["working"]]
    if specs.vin_v is not None:  # a fixed VIN: designs biased near it first (each is simulated at the fixed VIN)
        near = work[(work["VIN"] - specs.vin_v).abs() <= VIN_WINDOW_V]
        work = near if len(near) else work.iloc[np.argsort((work["VIN"] - specs.vin_v).abs().to_numpy())[:100]]
    short, worst, power = table_rank(work, specs)
    regions = [c for c in work.columns if c.endswith("_region")]
    weak = (work[regions] != "saturation").any(axis=1).to_numpy() if regions else np.zeros(len(work), dtype=bool)
    if goal is not None and goal.improves:
        names = list(work.columns)
        feasible = np.flatnonzero(short == 0.0)  # the objective orders only the rows that meet every spec
        value = np.zeros(len(work))
        value[feasible] = [goal.value({k: (None if pd.isna(v) else v) for k, v in zip(names, row)})
                           for row in work.iloc[feasible].itertuples(index=False)]
        value = np.nan_to_num(value, nan=np.inf)
        return work.iloc[np.lexsort((power, worst, weak, value, short))]
    return work.iloc[np.lexsort((power, worst, weak, short))]  # among equals, strong inversion first
