"""Where the shipped files live: inside the installed package (a wheel) or in the checkout (an editable install).

Every shipped location is named here once: technology descriptors, datasets, training configs, models, the cache.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
"""The `icgen` package folder."""


def _shipped(installed: str, checkout: str) -> Path:
    """The folder as package data of an installed wheel, else the checkout's own folder beside the package."""
    inside = PACKAGE_DIR / installed
    return inside if inside.is_dir() else PACKAGE_DIR.parent / checkout


SPICE_DIR = _shipped("spice", "spice")
"""Built-in technology descriptors and model files (`spice/` in the checkout)."""
DATASETS_DIR = _shipped("datasets", "data")
"""Shipped datasets (`data/` in the checkout)."""
CONFIG_DIR = PACKAGE_DIR / "configs"
"""Shipped training configs."""
MODELS_DIR = PACKAGE_DIR / "models"
"""Shipped trained models."""
DEFAULT_DATA_DIR = DATASETS_DIR / "ptm65-v2"
"""The dataset `icgen size` and `icgen eval` search by default."""
DEFAULT_MODEL_DIR = MODELS_DIR / "smollm2-135m-fix-fine"
"""The embedded default model (a LoRA adapter and its run files)."""


def cache_dir() -> Path:
    """Where derived files (the dequantised base model) are kept: $ICGEN_CACHE or ~/.cache/icgen."""
    return Path(os.environ.get("ICGEN_CACHE", Path.home() / ".cache" / "icgen"))
