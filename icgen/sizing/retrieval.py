"""Retrieval: the training designs whose recorded metrics best meet the specs, best first.

    rank_rows(training_rows, Specs(gain_db=38, pm_deg=52)).head(2)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.score import Specs, table_rank

VIN_WINDOW_V = 0.05
"""With `--vin`, retrieval searches the training designs whose VIN lies within 50 mV of it."""


def rank_rows(table: pd.DataFrame, specs: Specs) -> pd.DataFrame:
    """Working rows ordered by how well their recorded metrics meet the specs (best first)."""
    work = table[table["working"]]
    if specs.vin_v is not None:  # a fixed VIN: designs biased near it first (each is simulated at the fixed VIN)
        near = work[(work["VIN"] - specs.vin_v).abs() <= VIN_WINDOW_V]
        work = near if len(near) else work.iloc[np.argsort((work["VIN"] - specs.vin_v).abs().to_numpy())[:100]]
    short, worst, power = table_rank(work, specs)
    regions = [c for c in work.columns if c.endswith("_region")]
    weak = (work[regions] != "saturation").any(axis=1).to_numpy() if regions else np.zeros(len(work), dtype=bool)
    return work.iloc[np.lexsort((power, worst, weak, short))]  # among equals, strong inversion first
