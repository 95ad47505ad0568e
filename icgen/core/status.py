"""The outcome of simulating one design: an Enum, so every stage compares against one spelling."""
from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """ok: a working amplifier measurement; not_amplifier: simulated, but not an amplifier (reason given);
    failed: the simulator gave no usable result (crash, timeout, no convergence)."""

    OK = "ok"
    NOT_AMPLIFIER = "not_amplifier"
    FAILED = "failed"
