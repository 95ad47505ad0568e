"""The results folder: one sub-folder per finished job, `RESULTS/<job id>/result.json`; the only module that spells
a file name inside it. Finished jobs are read back when the server starts, so a restart loses none."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ..core.io import write_json_atomic

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
"""A job id: 32 lowercase hex digits (uuid4().hex); nothing else names a folder here."""
log = logging.getLogger("icgen.web")


class ResultStore:
    """Finished jobs on disk: `save(record)` writes one, `load_all()` reads every one back."""

    RECORD = "result.json"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.folder / job_id / self.RECORD

    def save(self, record: dict) -> Path:
        """Write a finished job's record (its `id` names the folder) atomically."""
        path = self.path(record["id"])
        path.parent.mkdir(exist_ok=True)
        return write_json_atomic(record, path)

    def load_all(self) -> list[dict]:
        """Every readable record; an unreadable one is logged and skipped, never fatal."""
        records = []
        for path in sorted(self.folder.glob(f"*/{self.RECORD}")):
            if not JOB_ID.match(path.parent.name):
                continue
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                log.warning("skipping unreadable result %s: %s", path, err)
                continue
            if isinstance(record, dict) and record.get("id") == path.parent.name:
                records.append(record)
        return records
