"""Atomic writes and provenance: a file is either the old one or the complete new one, never half written."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any


def write_json_atomic(data: Any, path: str | Path) -> Path:
    """Write JSON (indented, `default=str`) through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def write_parquet_atomic(frame, path: str | Path) -> Path:
    """Write a DataFrame as Parquet, fsynced, through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def git_sha() -> str | None:
    """The checkout's commit, or None for an installed wheel."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def read_jsonl_records(path: str | Path) -> list[dict]:
    """The records of a resumable JSONL cache (one JSON object a line, appended and fsync'd as work is done); a torn
    last line, left by an interruption, is dropped and the file rewritten without it, so appends stay aligned."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    if len(records) < len(lines):
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def append_drawn(path: str | Path, todo, draw, chunk: int, progress=None) -> list[dict]:
    """Work through the rows of `todo` (a table) `chunk` at a time with `draw(rows) -> records`, appending each
    chunk's records to the JSONL cache at `path` and fsyncing before the next, so an interruption loses at most the
    chunk in hand (`read_jsonl_records` drops its torn line); `progress(done, total)` after each chunk. The records
    drawn."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    drawn: list[dict] = []
    with open(path, "a") as fh:
        for begin in range(0, len(todo), chunk):
            records = draw(todo.iloc[begin:begin + chunk])
            for record in records:
                fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            drawn += records
            if progress:
                progress(min(begin + chunk, len(todo)), len(todo))
    return drawn
