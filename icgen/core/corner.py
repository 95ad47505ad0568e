"""PVT corners: a process corner, a supply voltage and a temperature, named like `tt_1.08V_-40C`.

Each technology's descriptor defines named sets of them (`corner_sets:`, read by `icgen.core.tech`);
`parse_corner_sets(raw)` reads that section and `Corner.from_name("tt_1.32V_125C")` reads one corner's name.
How the bias follows a moved supply is a `Bias`: VB1 tracks VDD (VDD - VB1 kept) by default, or stays fixed.
"""
from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import IcgenError

TEMP_RANGE_C = (-55.0, 175.0)
"""Temperatures a corner may have (the military range and then some); outside it the models are not meant to hold."""
NOMINAL_TEMP_C = 27.0
"""ngspice's default temperature (and the models' TNOM): a deck without `.temp` runs here."""
TYPICAL = "tt"
"""The process label in a corner's name when the technology has no process corners (its only, typical models)."""
NOMINAL_SET = "nominal"
"""The set every technology has: its typical process at its own VDD and 27 °C, unless the descriptor says otherwise."""


class CornerError(IcgenError):
    """A corner or corner set that is unknown or malformed."""


class Bias(StrEnum):
    """How VB1 (the PMOS gate bias of M5 and M7) follows a supply corner; VIN always stays where the design puts it."""

    TRACK_VDD = "track-vdd"
    """VB1 moves with VDD, keeping VDD - VB1 (the PMOS Vsg), as a bias generated from VDD would."""
    FIXED = "fixed"
    """VB1 stays at its design value from ground, as an external reference would hold it."""


BIASES: tuple[str, ...] = tuple(b.value for b in Bias)
_NAME = re.compile(r"(?P<process>[A-Za-z0-9]+)_(?P<vdd>[0-9]+(?:\.[0-9]+)?)V_(?P<temp>-?[0-9]+(?:\.[0-9]+)?)C")
_PROCESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def corner_name(process: str | None, vdd_v: float, temp_c: float) -> str:
    """`tt_1.08V_-40C`: the process (or `tt` when there is none), the supply and the temperature."""
    return f"{process or TYPICAL}_{vdd_v:g}V_{temp_c:g}C"


@dataclass(frozen=True)
class Corner:
    """One PVT corner: what a deck is simulated at."""

    name: str
    """Its name, e.g. tt_1.08V_-40C (see `corner_name`)."""
    process: str | None
    """The technology's process corner (a library section such as ss), or None for its only models."""
    vdd_v: float
    """Supply voltage."""
    temp_c: float
    """Temperature in °C, written to the deck as `.temp`."""

    def __post_init__(self) -> None:
        if not _PROCESS.fullmatch(str(self.name)):
            raise CornerError(f"corner name {str(self.name)[:40]!r} is not a plain name; use e.g. tt_1.08V_-40C")
        if self.process is not None and not _PROCESS.fullmatch(str(self.process)):
            raise CornerError(f"corner {self.name}: process {str(self.process)[:40]!r} is not a plain name")
        for key in ("vdd_v", "temp_c"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise CornerError(f"corner {self.name}: {key} {value!r} is not a number")
        if not (0.3 <= self.vdd_v <= 10):
            raise CornerError(f"corner {self.name}: VDD {self.vdd_v:g} V is not a supply voltage; use e.g. 1.2")
        low, high = TEMP_RANGE_C
        if not (low <= self.temp_c <= high):
            raise CornerError(f"corner {self.name}: {self.temp_c:g} °C is outside {low:g}..{high:g} °C")

    @classmethod
    def make(cls, process: str | None, vdd_v: float, temp_c: float) -> "Corner":
        """A corner named from its values."""
        return cls(corner_name(process, vdd_v, temp_c), process, float(vdd_v), float(temp_c))

    @classmethod
    def from_name(cls, name: str, processes: tuple[str, ...] = ()) -> "Corner":
        """Read `ss_1.62V_125C`; `processes` are the technology's process corners (none: only `tt`, process None)."""
        match = _NAME.fullmatch(name.strip())
        if match is None:
            raise CornerError(f"{name[:40]!r} is not a corner; write PROCESS_VDDV_TEMPC, e.g. tt_1.08V_-40C")
        process = match["process"]
        if processes and process not in processes:
            raise CornerError(f"corner {name}: no process corner {process!r}; use one of {', '.join(processes)}")
        if not processes and process != TYPICAL:
            raise CornerError(f"corner {name}: this technology has no process corners; write {TYPICAL}_..., e.g. "
                              f"{corner_name(None, float(match['vdd']), float(match['temp']))}")
        return cls.make(process if processes else None, float(match["vdd"]), float(match["temp"]))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "process": self.process, "vdd_v": self.vdd_v, "temp_c": self.temp_c}


def moved_vb1(vb1_v: float, nominal_vdd_v: float, corner_vdd_v: float, bias: Bias | str = Bias.TRACK_VDD) -> float:
    """VB1 at a corner's supply: shifted by the supply's change when it tracks VDD, unchanged when fixed."""
    bias = Bias(bias)
    return round(vb1_v + (corner_vdd_v - nominal_vdd_v), 12) if bias is Bias.TRACK_VDD else vb1_v


def _numbers(value: Any, what: str, where: str) -> list[float]:
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise CornerError(f"{where}: {what} {item!r} is not a number")
        out.append(float(item))
    if not out:
        raise CornerError(f"{where}: {what} is empty; give at least one value")
    return out


def parse_corner_sets(raw: Any, processes: tuple[str, ...], default_process: str | None, vdd_v: float,
                      where: str = "corner_sets") -> dict[str, tuple[Corner, ...]]:
    """A descriptor's `corner_sets:` section, each set `{process: [...], vdd_v: [...], temp_c: [...]}` (their product,
    in that order; process defaults to the technology's own, vdd_v to its VDD, temp_c to 27). `nominal` is added when
    the descriptor does not define it."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise CornerError(f"{where} must map each set name to {{process, vdd_v, temp_c}}")
    sets: dict[str, tuple[Corner, ...]] = {}
    if NOMINAL_SET not in raw:
        sets[NOMINAL_SET] = (Corner.make(default_process, vdd_v, NOMINAL_TEMP_C),)
    for name, spec in raw.items():
        label = f"{where}.{name}"
        if not (isinstance(name, str) and _PROCESS.fullmatch(name)) or _NAME.fullmatch(name):
            raise CornerError(f"{where}: set name {str(name)[:40]!r} must be a plain name that is not a corner name")
        if not isinstance(spec, Mapping) or set(spec) - {"process", "vdd_v", "temp_c"}:
            raise CornerError(f"{label} must be a mapping with process, vdd_v and temp_c lists")
        wanted = spec.get("process", [default_process])
        wanted = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        for process in wanted:
            if process is not None and process not in processes:
                offered = ", ".join(processes) or "none (this technology has no process corners)"
                raise CornerError(f"{label}: unknown process corner {process!r}; process corners: {offered}")
        vdds = _numbers(spec.get("vdd_v", vdd_v), "vdd_v", label)
        temps = _numbers(spec.get("temp_c", NOMINAL_TEMP_C), "temp_c", label)
        corners = tuple(Corner.make(p, v, t) for p, v, t in itertools.product(wanted, vdds, temps))
        if len({c.name for c in corners}) != len(corners):
            raise CornerError(f"{label} repeats a corner")
        sets[str(name)] = corners
    return sets
