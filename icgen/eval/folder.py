"""The folder of one eval run, owned by `EvalRun`: run.json (the options it was started with), sessions.json (one
entry per invocation, written before the work), outcomes.jsonl (appended as outcomes finish, so a run resumes), and
the report files.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from ..core.errors import IcgenError
from ..core.io import write_json_atomic
from .outcome import Outcome


class EvalRunError(IcgenError):
    """An eval folder that holds a run with other options."""


class EvalRun:
    """The folder of one eval run and the only code that spells its file names."""

    STAMP = "run.json"
    SESSIONS = "sessions.json"
    OUTCOMES = "outcomes.jsonl"
    REPORT = "report.md"
    META = "meta.json"
    SUMMARY = "summary.csv"
    OUTCOMES_CSV = "outcomes.csv"
    FIGURE = "eval.png"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        """One of this folder's files, by its constant (EvalRun.REPORT, ...)."""
        return self.folder / name

    @property
    def outcomes_path(self) -> Path:
        return self.folder / self.OUTCOMES

    def claim(self, stamp: dict) -> None:
        """Start or resume the run with these options; refuse a folder holding a run with other options."""
        path = self.folder / self.STAMP
        if path.is_file() and json.loads(path.read_text()) != stamp:
            raise EvalRunError(f"{{out}} {self.folder} holds a run with other options; pick another {{out}} or "
                               f"delete it")
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(stamp, path)

    def count(self) -> int:
        return len(self.outcomes_path.read_text().splitlines()) if self.outcomes_path.is_file() else 0

    def sessions(self) -> list[dict]:
        path = self.folder / self.SESSIONS
        return json.loads(path.read_text()) if path.is_file() else []

    def begin_session(self) -> list[dict]:
        """Record this invocation before the work, so a killed run still leaves its trace (wall_s null)."""
        sessions = self.sessions()
        sessions.append({"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "wall_s": None,
                         "outcomes_before": self.count(), "outcomes_after": None})
        write_json_atomic(sessions, self.folder / self.SESSIONS)
        return sessions

    def end_session(self, sessions: list[dict], wall_s: float) -> list[dict]:
        sessions[-1].update(wall_s=round(wall_s, 1), outcomes_after=self.count())
        write_json_atomic(sessions, self.folder / self.SESSIONS)
        return sessions

    def done(self) -> dict[tuple[str, str], Outcome]:
        """Outcomes already recorded, by (method, target)."""
        done = {}
        if self.outcomes_path.is_file():
            for line in self.outcomes_path.read_text().splitlines():
                if line.strip():
                    data = json.loads(line)
                    done[(data["method"], data["target"])] = Outcome(**data)
        return done

    def append(self, outcomes: list[Outcome]) -> None:
        with self.outcomes_path.open("a") as f:
            for outcome in outcomes:
                f.write(json.dumps(asdict(outcome)) + "\n")
            f.flush()
