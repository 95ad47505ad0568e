"""What every benchmark shares: writing its result JSON under bench/results/."""
from __future__ import annotations

import json
from pathlib import Path


def write_result(out_dir: str | Path, name: str, summary: dict) -> Path:
    """Write `summary` as OUT_DIR/NAME.json (folder created) and return the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path
