"""What the sizing loop draws on besides the specs: a dataset's training rows, its cached surrogate, a trained model.

    resources = SizingResources.load(data_dir=DEFAULT_DATA_DIR, model_dir=DEFAULT_MODEL_DIR)
    result = size(Specs(gain_db=38, pm_deg=52), "ptm65", resources=resources)

Nothing heavy is loaded here: the surrogate and the model are callables the loop calls only when a step needs them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from ..core.paths import DEFAULT_DATA_DIR, DEFAULT_MODEL_DIR
from ..data.dataset import Dataset
from .surrogate import surrogate_loader


@dataclass(frozen=True)
class SizingResources:
    """Training rows for retrieval, and loaders for the surrogate and the model (each None when absent)."""

    table: pd.DataFrame | None = None
    """Training rows (every row of the training split) that retrieval searches."""
    load_surrogate: Callable | None = None
    """Returns the simulator surrogate of those rows; called when the surrogate step runs."""
    load_model: Callable | None = None
    """Returns (model, tokenizer); called when the model step runs."""
    fmt: str = "compact"
    """The model's pair format."""
    load_corner_table: Callable | None = None
    """(tech, corners, pool, bias) -> the training rows' worst-corner table that retrieval searches with corners
    (icgen.sizing.corner_table, cached in the dataset folder)."""

    @classmethod
    def load(cls, data_dir: str | Path | None = DEFAULT_DATA_DIR, model_dir: str | Path | None = DEFAULT_MODEL_DIR,
             kind: str = "heldout", log: Callable[[str], None] | None = None) -> "SizingResources":
        """From a dataset folder (None: no retrieval, no surrogate) and a run folder of `icgen train` (None: no
        model). Raises DatasetError for a folder that is not a dataset, ModelError for one that is not a model."""
        table = load_surrogate = load_model = load_corner_table = None
        fmt = "compact"
        data = Dataset(data_dir).require() if data_dir else None
        if data is not None:
            from .corner_table import corner_table_loader  # the loop imports this module; corner_table imports the loop

            table = data.training_rows(kind)
            load_surrogate = surrogate_loader(data, kind, log)
            load_corner_table = corner_table_loader(data, kind, log=log)
        if model_dir is not None:
            from ..llm.model import load_finetuned, run_config

            fmt = run_config(model_dir)["format"]
            load_model = partial(load_finetuned, model_dir, merge=True)
        return cls(table=table, load_surrogate=load_surrogate, load_model=load_model, fmt=fmt,
                   load_corner_table=load_corner_table)
