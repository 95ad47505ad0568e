"""Specs a designer asks for, and how far a simulated design is from meeting them.

Gain, UGB, PM, GM and BW3dB are lower bounds; power is an upper bound. `score(result, specs)` is a normalised
shortfall: 0 when every spec holds, growing with how much is missing (6 dB of gain or GM, 10 degrees of PM, a
decade of frequency or power each count 1). Only an `ok` result with a healthy operating point can meet specs.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, fields

from .design import Metrics
from .errors import SPEC_OPTIONS, IcgenError
from .status import Status
from .units import MAX_NUMBER_CHARS, NUMBER_PATTERN, UnitError, parse_quantity, shown

# What one unit of shortfall is, per spec: a designer's sense of "equally far off".
SHORTFALL_SCALE = {"gain_db": 6.0, "pm_deg": 10.0, "gm_db": 6.0}
LOG_METRICS = ("ugb_hz", "bw3db_hz", "power_w")
"""Metrics measured in decades (the others in dB or degrees, divided by SHORTFALL_SCALE)."""
UNHEALTHY_PENALTY = 1.0
NOT_WORKING_PENALTY = 10.0


class SpecError(IcgenError):
    """A spec that is malformed, impossible or contradictory ({gain_db} etc. name the specs; see core.errors)."""


@dataclass(frozen=True)
class Specs:
    """Targets: lower bounds on gain_db, ugb_hz, pm_deg, gm_db, bw3db_hz; an upper bound on power_w."""

    gain_db: float | None = None
    ugb_hz: float | None = None
    pm_deg: float | None = None
    gm_db: float | None = None
    bw3db_hz: float | None = None
    power_w: float | None = None

    def __post_init__(self) -> None:
        if all(getattr(self, f.name) is None for f in fields(self)):
            raise SpecError("give at least one spec, e.g. {gain_db} 38dB {pm_deg} 52")
        checks = [
            ("gain_db", lambda v: -20 < v < 200, "{v:.12g} dB is not a reachable DC gain; use more than -20 and less than "
                                                 "200 dB"),
            ("pm_deg", lambda v: 0 < v < 180, "{v:.12g} degrees is not a phase margin; use more than 0 and less than 180"),
            ("gm_db", lambda v: 0 <= v < 200, "{v:.12g} dB is not a gain margin; use 0 or more and less than 200 dB"),
            ("ugb_hz", lambda v: 0 < v < 1e12, "{v:.12g} Hz is not a unity-gain bandwidth; use more than 0 and less than "
                                               "1e12 Hz, e.g. 10MHz"),
            ("bw3db_hz", lambda v: 0 < v < 1e12, "{v:.12g} Hz is not a 3 dB bandwidth; use more than 0 and less than "
                                                 "1e12 Hz, e.g. 100kHz"),
            ("power_w", lambda v: 0 < v < 10, "{v:.12g} W is not a power budget; use more than 0 and less than 10 W, "
                                              "e.g. 50uW"),
        ]
        for key, ok, message in checks:
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise SpecError("{" + key + "}: " + f"{shown(value)} is not a number")
            try:
                number = float(value)
            except OverflowError:
                raise SpecError("{" + key + "}: " + f"{shown(value)} is too large") from None
            if not (math.isfinite(number) and ok(number)):
                raise SpecError("{" + key + "}: " + message.format(v=number))
        if self.ugb_hz is not None and self.bw3db_hz is not None and self.bw3db_hz >= self.ugb_hz:
            raise SpecError(f"{{bw3db_hz}} {self.bw3db_hz:g} Hz is not below {{ugb_hz}} {self.ugb_hz:g} Hz: an "
                            f"amplifier's 3 dB bandwidth lies below its unity-gain bandwidth")
        if (self.gain_db is not None and self.ugb_hz is not None and self.bw3db_hz is not None
                and self.ugb_hz < self.bw3db_hz * 10 ** ((self.gain_db - 3) / 20) / 100):
            raise SpecError("{gain_db}, {bw3db_hz} and {ugb_hz} contradict each other: gain x bandwidth is far above "
                            "the UGB")

    def to_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def given(self) -> dict[str, float]:
        return {k: v for k, v in self.to_dict().items() if v is not None}


SPEC_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Specs))
"""The six metrics in spec order: the order of surrogate outputs and of eval's error columns."""

_DB = re.compile(rf"({NUMBER_PATTERN})\s*(dB|db|DB)?")
_DEG = re.compile(rf"({NUMBER_PATTERN})\s*(deg|degree|degrees|°)?")


SPEC_KEY_BY_NAME = {name: key for key, name in SPEC_OPTIONS.items()}
"""gain -> gain_db, ugb -> ugb_hz, ...: the short names people type."""


def parse_spec(name: str, text: str) -> float:
    """A spec value with optional, checked units: gain 38dB | 38; pm 52deg | 52; ugb 10MHz | 10e6; power 50uW.

    `name` is a spec key (`gain_db`) or its short name (`gain`).
    """
    key = SPEC_KEY_BY_NAME.get(name.lstrip("-"), name)
    if key not in SPEC_KEYS:
        raise SpecError(f"unknown spec {shown(name)}; use one of {', '.join(SPEC_KEY_BY_NAME)}")
    field = "{" + key + "}"
    if not isinstance(text, str):
        raise SpecError(f"{field}: {shown(text)} is not text such as 38dB")
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_CHARS:
        raise SpecError(f"{field}: {shown(stripped)} is longer than {MAX_NUMBER_CHARS} characters; use e.g. 38dB, "
                        f"10MHz, 50uW")
    if key in ("gain_db", "gm_db", "pm_deg"):
        pattern, what, example = (_DEG, "a phase in degrees", "52deg or 52") if key == "pm_deg" else \
            (_DB, "a gain in dB", "38dB or 38")
        match = pattern.fullmatch(stripped)
        if not match:
            raise SpecError(f"{field}: {shown(text)} is not {what}; use {example}")
        try:
            return parse_quantity(match.group(1))
        except UnitError as err:
            raise SpecError(f"{field}: {err}; use {example}") from err
    unit = {"ugb_hz": "Hz", "bw3db_hz": "Hz", "power_w": "W"}[key]
    try:
        return parse_quantity(stripped, unit)
    except UnitError as err:
        example = "10MHz or 10e6" if unit == "Hz" else "50uW or 50e-6"
        raise SpecError(f"{field}: {shown(text)} is not a {'frequency' if unit == 'Hz' else 'power'} ({err}); "
                        f"use {example}") from err


@dataclass(frozen=True)
class SpecCheck:
    """One spec against what was achieved: margin > 0 means met (dB, degrees, or decades for Hz and W)."""

    key: str
    target: float
    achieved: float | None
    margin: float | None
    met: bool


def spec_margin(key: str, achieved, target: float):
    """How far `achieved` clears `target`: dB or degrees, decades for UGB, BW (above) and power (below).
    Works on numbers and on numpy arrays alike."""
    import numpy as np

    if key in ("ugb_hz", "bw3db_hz"):
        return np.log10(achieved / target)
    if key == "power_w":
        return np.log10(target / achieved)
    return achieved - target


def check_specs(metrics: Metrics | None, specs: Specs) -> list[SpecCheck]:
    """Per-spec margins. A missing GM means the phase never reaches -180 degrees: an infinite gain margin."""
    checks = []
    for key, target in specs.given().items():
        achieved = getattr(metrics, key) if metrics else None
        if key == "gm_db" and metrics is not None and achieved is None and metrics.ugb_hz is not None:
            checks.append(SpecCheck(key, target, None, math.inf, True))
            continue
        if achieved is None:
            checks.append(SpecCheck(key, target, None, None, False))
            continue
        margin = float(spec_margin(key, achieved, target))
        checks.append(SpecCheck(key, target, achieved, margin, margin >= 0))
    return checks


def healthy_result(result) -> bool:
    """Whether a simulation result has a healthy operating point (no railed output, every device saturated)."""
    return bool(result.health and result.health.healthy)


def shortfall(metrics: Metrics | None, specs: Specs, status: str = Status.OK, healthy: bool = True) -> float:
    """0 when every spec holds on a healthy working amplifier; otherwise the summed normalised shortfall."""
    total = 0.0
    for check in check_specs(metrics, specs):
        if check.met:
            continue
        if check.margin is None:
            total += 1.0
        else:
            total += -check.margin / SHORTFALL_SCALE.get(check.key, 1.0)
    if status != Status.OK:
        total += NOT_WORKING_PENALTY
    elif not healthy:
        total += UNHEALTHY_PENALTY
    return total


def rank_key(metrics: Metrics | None, specs: Specs, status: str, healthy: bool) -> tuple[float, float, float]:
    """Sort key, best first: shortfall, then the smallest normalised margin (larger is better), then power."""
    short = shortfall(metrics, specs, status, healthy)
    margins = [c.margin / SHORTFALL_SCALE.get(c.key, 1.0) for c in check_specs(metrics, specs) if c.margin is not None]
    worst_margin = min(margins) if margins else -math.inf
    power = metrics.power_w if metrics and metrics.power_w else math.inf
    return short, -worst_margin, power


def metric_units(rows, keys):
    """A table's metric columns in shortfall units: decades for LOG_METRICS, dB/6 and degrees/10 otherwise; NaN
    stays NaN. Nearest-neighbour distances and the surrogate's outputs both live in this space."""
    import numpy as np

    cols = []
    for key in keys:
        values = rows[key].to_numpy(dtype=float)
        cols.append(np.log10(values) if key in LOG_METRICS else values / SHORTFALL_SCALE[key])
    return np.column_stack(cols)


def table_rank(table, specs: Specs):
    """Vectorised `rank_key` over a table of healthy working designs (metric columns, NaN when absent).

    Returns (shortfall, -worst normalised margin, power) arrays; `numpy.lexsort` of them reversed orders best first.
    """
    import numpy as np

    n = len(table)
    short = np.zeros(n)
    worst = np.full(n, np.inf)
    any_margin = np.zeros(n, dtype=bool)
    for key, target in specs.given().items():
        achieved = table[key].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            margin = spec_margin(key, achieved, target)
        if key == "gm_db":  # no GM recorded on an amplifier with a UGB: the phase never reaches -180 degrees
            margin = np.where(np.isnan(achieved) & ~np.isnan(table["ugb_hz"].to_numpy(dtype=float)), np.inf, margin)
        scale = SHORTFALL_SCALE.get(key, 1.0)
        short += np.where(np.isnan(margin), 1.0, np.where(margin >= 0, 0.0, -margin / scale))
        worst = np.fmin(worst, margin / scale)
        any_margin |= ~np.isnan(margin)
    power = table["power_w"].to_numpy(dtype=float)
    return short, -np.where(any_margin, worst, -np.inf), np.where(np.isnan(power), np.inf, power)
