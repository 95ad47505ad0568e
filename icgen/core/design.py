"""The design variables and metrics of the two-stage Miller op-amp, in SI units, with their JSON form.

A `Design` holds the 14 sizing and bias variables (ohm, farad, metre, volt); `Metrics` the six measured figures.
JSON uses exactly the keys of `DESIGN_KEYS` and `METRIC_KEYS`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import IcgenError


@dataclass(frozen=True)
class Variable:
    """One design variable: its key, SI unit, the unit the original answers print it in, and its meaning."""

    key: str
    unit: str
    answer_unit: str
    meaning: str
    log_scale: bool


VARIABLES: tuple[Variable, ...] = (
    Variable("R0", "ohm", "Ohm", "Miller zero-nulling resistor, net4 to VOUT", True),
    Variable("C0", "F", "F", "Miller compensation capacitor, net3 to net4", True),
    Variable("L1", "m", "m", "channel length of the PMOS input pair M1/M2", True),
    Variable("W1", "m", "m", "channel width of the PMOS input pair M1/M2", True),
    Variable("L2", "m", "m", "channel length of the PMOS tail source M5", True),
    Variable("W2", "m", "m", "channel width of the PMOS tail source M5", True),
    Variable("L3", "m", "m", "channel length of the NMOS mirror load M3/M4", True),
    Variable("W3", "m", "m", "channel width of the NMOS mirror load M3/M4", True),
    Variable("L4", "m", "m", "channel length of the NMOS second-stage driver M6", True),
    Variable("W4", "m", "m", "channel width of the NMOS second-stage driver M6", True),
    Variable("L5", "m", "m", "channel length of the PMOS second-stage load M7", True),
    Variable("W5", "m", "m", "channel width of the PMOS second-stage load M7", True),
    Variable("VIN", "V", "V", "input common-mode voltage (VINP = VINN = VIN)", False),
    Variable("VB1", "V", "V", "gate bias of the PMOS current sources M5 and M7", False),
)
DESIGN_KEYS: tuple[str, ...] = tuple(v.key for v in VARIABLES)
VARIABLE_BY_KEY = {v.key: v for v in VARIABLES}

METRIC_KEYS: tuple[str, ...] = ("gain_db", "bw3db_hz", "ugb_hz", "pm_deg", "gm_db", "power_w")
METRIC_UNITS = {"gain_db": "dB", "bw3db_hz": "Hz", "ugb_hz": "Hz", "pm_deg": "deg", "gm_db": "dB", "power_w": "W"}
METRIC_LABELS = {"gain_db": "DC gain", "bw3db_hz": "3 dB bandwidth", "ugb_hz": "Unity-gain bandwidth",
                 "pm_deg": "Phase margin", "gm_db": "Gain margin", "power_w": "Power"}


class DesignError(IcgenError):
    """A design that is incomplete or not made of finite numbers."""


@dataclass(frozen=True)
class Design:
    """A sizing of the two-stage Miller op-amp in SI units (ohm, farad, metre, volt)."""

    R0: float
    C0: float
    L1: float
    W1: float
    L2: float
    W2: float
    L3: float
    W3: float
    L4: float
    W4: float
    L5: float
    W5: float
    VIN: float
    VB1: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DesignError(f"{f.name}: {value!r} is not a number")
            if not math.isfinite(value):
                raise DesignError(f"{f.name}: {value!r} is not a finite number")
            object.__setattr__(self, f.name, float(value))

    def to_dict(self) -> dict[str, float]:
        """The design as JSON-ready {key: SI value} in DESIGN_KEYS order."""
        return {k: getattr(self, k) for k in DESIGN_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Design":
        """Build a design from {key: SI number}; missing or unknown keys are errors."""
        missing = [k for k in DESIGN_KEYS if k not in data]
        unknown = [k for k in data if k not in DESIGN_KEYS]
        if missing:
            raise DesignError(f"missing design variable(s) {', '.join(missing)}; a design needs {' '.join(DESIGN_KEYS)}")
        if unknown:
            raise DesignError(f"unknown design key(s) {', '.join(map(str, unknown))}; use {' '.join(DESIGN_KEYS)}")
        return cls(**{k: data[k] for k in DESIGN_KEYS})

    def replace(self, **changes: float) -> "Design":
        """A copy with some variables changed."""
        return Design(**{**self.to_dict(), **changes})


@dataclass(frozen=True)
class Metrics:
    """The six figures a designer reads off an open-loop AC sweep and the operating point.

    gm_db and bw3db_hz are None when the sweep never reaches -180 degrees or never drops 3 dB.
    """

    gain_db: float | None
    bw3db_hz: float | None
    ugb_hz: float | None
    pm_deg: float | None
    gm_db: float | None
    power_w: float | None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Metrics":
        return cls(**{k: (None if data.get(k) is None else float(data[k])) for k in METRIC_KEYS})


# The example answer of the original work (its TSMC 65 nm point), used as the embedded default design.
EXAMPLE_DESIGN = Design(R0=3e3, C0=1e-12, L1=622e-9, W1=15e-6, L2=117e-9, W2=24e-6, L3=410e-9, W3=22e-6,
                        L4=491e-9, W4=64e-6, L5=220e-9, W5=24e-6, VIN=0.605, VB1=0.932)
