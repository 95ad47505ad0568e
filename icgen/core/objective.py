"""What a sizing run optimises once the specs are met, and the margin a reported design keeps on every bound.

    OBJECTIVES["min-power"].value(figures)      # log10 of power: lower is better, in decades
    Margin().tighten(specs)                     # the specs a candidate must clear to count as feasible

An objective maps a design's figures to one number to minimise, in decades for powers, frequencies and areas, so
that 1 uW against 10 uW counts as much as 10 uW against 100 uW. `max-margin` is the loop's behaviour before
objectives existed: stop at the first feasible design, preferring the largest worst margin.

Ranking (`objective_key`): any feasible design (every tightened spec met on a healthy working amplifier) before any
infeasible one; feasible designs by objective; infeasible ones by shortfall.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from .errors import ConfigError

FOM_CL_F = 1e-12
"""The load the figure of merit UGB*CL/power is computed with when a technology states none (1 pF)."""


@dataclass(frozen=True)
class Objective:
    """One objective: its name, what it says, and its value from named figures (lower is better; NaN: unknown)."""

    name: str
    what: str
    value: Callable[[Mapping], float]
    improves: bool = True
    """False for max-margin: it satisfies (stops at the first feasible design) rather than optimises."""
    needs_estimates: bool = False
    """Needs the operating-point estimates (area)."""


def _log(figures: Mapping, key: str, sign: float = 1.0) -> float:
    value = figures.get(key)
    if value is None or not value > 0:
        return math.nan
    return sign * math.log10(float(value))


def _fom(figures: Mapping) -> float:
    ugb, power = figures.get("ugb_hz"), figures.get("power_w")
    if not ugb or not power or ugb <= 0 or power <= 0:
        return math.nan
    return -math.log10(ugb * float(figures.get("cl_f") or FOM_CL_F) / power)


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("min-power", "the least power (decades)", lambda f: _log(f, "power_w")),
    Objective("max-ugb", "the highest unity-gain bandwidth (decades)", lambda f: _log(f, "ugb_hz", -1.0)),
    Objective("max-fom", "the highest UGB x CL / power (decades)", _fom),
    Objective("min-area", "the least area, sum of W*L plus C0 and R0 (decades)", lambda f: _log(f, "area_m2"),
              needs_estimates=True),
    Objective("max-margin", "the largest worst margin; stop at the first design meeting the specs", lambda f: 0.0,
              improves=False),
)}
OBJECTIVE_NAMES = tuple(OBJECTIVES)
DEFAULT_OBJECTIVE = "min-power"


def objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ConfigError(f"{{objective}} {name!r} is not an objective; use one of {', '.join(OBJECTIVES)}") from None


@dataclass(frozen=True)
class Margin:
    """How far inside every bound a reported design stays: dB, degrees, and a relative factor for the rest."""

    db: float = 0.5
    """On gain, GM, CMRR and PSRR lower bounds."""
    deg: float = 1.0
    """On the PM lower bound."""
    relative: float = 0.02
    """On every other bound: lower bounds x (1 + relative), upper bounds / (1 + relative); swing in volts x too."""

    def __post_init__(self) -> None:
        if not (0 <= self.db < 20 and 0 <= self.deg < 30 and 0 <= self.relative < 1):
            raise ConfigError("{margin}: use dB in [0, 20), degrees in [0, 30) and a relative part in [0, 1), e.g. "
                              "0.5dB,1deg,2%")

    def text(self) -> str:
        """As `parse_margin` reads it: 0.5dB,1deg,2%."""
        return f"{self.db:g}dB,{self.deg:g}deg,{100 * self.relative:g}%"

    def tighten(self, specs):
        """The specs a feasible design must clear (the user's specs moved inward by this margin)."""
        from .score import SPEC_KINDS

        moved = {}
        for key, target in specs.given().items():
            kind = SPEC_KINDS[key]
            if kind.bound == "band":
                continue  # a band (the tail current) keeps its own tolerance
            if kind.unit == "dB":
                moved[key] = target + self.db
            elif kind.unit == "deg":
                moved[key] = min(target + self.deg, 179.9)
            elif kind.bound == "min":
                moved[key] = target * (1 + self.relative)
            else:
                moved[key] = target / (1 + self.relative)
        return replace(specs, **moved)


NO_MARGIN = Margin(0.0, 0.0, 0.0)


def parse_margin(text: str) -> Margin:
    """`0.5dB,1deg,2%` (any order, any subset; the rest from Margin's defaults) or `0` for none."""
    import re

    from .units import NUMBER_PATTERN

    text = text.strip()
    if text in ("0", "none"):
        return NO_MARGIN
    values = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = re.fullmatch(rf"({NUMBER_PATTERN})\s*(dB|deg|%)", part)
        if not match:
            raise ConfigError(f"{{margin}}: {part!r} is not a margin; use e.g. 0.5dB,1deg,2% (or 0)")
        number, unit = float(match.group(1)), match.group(2)
        values[{"dB": "db", "deg": "deg", "%": "relative"}[unit]] = number / 100 if unit == "%" else number
    return Margin(**values)


def objective_key(feasible: bool, shortfall: float, value: float, worst_margin: float) -> tuple:
    """Sort key, best first: feasible designs first, by objective value (NaN last); then infeasible by shortfall;
    the worst normalised margin breaks ties (larger first)."""
    if feasible:
        return (0, value if not math.isnan(value) else math.inf, -worst_margin)
    return (1, shortfall, -worst_margin)


DEGENERATE_UGB_HZ = 10e3
DEGENERATE_POWER_W = 100e-9


def degenerate_warnings(figures: Mapping, given: Mapping) -> list[str]:
    """What a designer would call useless in a design that meets the specs: a UGB below 10 kHz or a power below
    100 nW (leakage-level bias) when the user gave no bound on it."""
    warnings = []
    ugb, power = figures.get("ugb_hz"), figures.get("power_w")
    if "ugb_hz" not in given and "gbw_hz" not in given and ugb is not None and ugb < DEGENERATE_UGB_HZ:
        warnings.append(f"the UGB is {ugb:.3g} Hz: no UGB was asked for and the objective traded it away; add --ugb")
    if "power_w" not in given and power is not None and power < DEGENERATE_POWER_W:
        warnings.append(f"the power is {power:.3g} W, a leakage-level bias; check it with icgen signoff or add --ugb")
    return warnings
