"""Retrieval: the training designs whose recorded metrics best meet the specs, best first.

    rank_rows(training_rows, Specs(gain_db=38, pm_deg=52)).head(2)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.score import Specs, table_rank


def rank_rows(table: pd.DataFrame, specs: Specs) -> pd.DataFrame:
    """Working rows ordered by how well their recorded metrics meet the specs (best first)."""
    work = table[table["working"]]
    short, worst, power = table_rank(work, specs)
    regions = [c for c in work.columns if c.endswith("_region")]
    weak = (work[regions] != "saturation").any(axis=1).to_numpy() if regions else np.zeros(len(work), dtype=bool)
    return work.iloc[np.lexsort((power, worst, weak, short))]  # among equals, strong inversion first
