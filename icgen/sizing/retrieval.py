"""Retrieval, the loop's first step: `rank_rows` lives in the data stage (icgen.data.retrieval), shared with the
eval and the fix-pair draw; this module keeps the loop's import path.

    rank_rows(training_rows, Specs(gain_db=38, pm_deg=52)).head(2)
"""
from __future__ import annotations

from ..data.retrieval import VIN_WINDOW_V, rank_rows

__all__ = ["VIN_WINDOW_V", "rank_rows"]
