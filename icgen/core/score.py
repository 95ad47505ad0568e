"""Specs a designer asks for, and how far a simulated design is from meeting them.

Every spec is a `SpecKind` in `SPEC_KINDS`: its bound (a lower bound, an upper bound, or a band around the target),
its unit and range, one unit of shortfall, the figure it is read from and the sign-off benches that measure it.
The open-loop six (gain, UGB, PM, GM, BW3dB, power) come from the AC sweep; the designer's specs (GBW, settling,
slew, CMRR, PSRR, offset, swing, noise, area, tail current) from `icgen.core.signoff`'s benches and estimates, which
the simulator runs only when a spec or a report asks for them (`Specs.benches()`).

`score(result, specs)` is a normalised shortfall: 0 when every spec holds, growing with how much is missing (6 dB of
gain, GM, CMRR or PSRR, 10 degrees of PM, 100 mV of swing, a decade of frequency, power, time, slew, offset, noise,
area or tail current each count 1). Only an `ok` result with a healthy operating point can meet specs.

Two inputs are not specs but fix the design: `vin_v` pins the input common mode VIN, and `settle_to` (1 % or
0.1 %) says which settling time `settling_s` bounds. `--itail` is met within ITAIL_TOLERANCE of the target.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from .design import Metrics
from .errors import SPEC_OPTIONS, IcgenError
from .status import Status
from .units import MAX_NUMBER_CHARS, NUMBER_PATTERN, UNIT_PREFIX_EXPONENT, UnitError, parse_quantity, shown

ITAIL_TOLERANCE = 0.10
"""`--itail` is met when the tail current is within 10 % of the target (a band, not a bound)."""
SETTLE_TO = {0.01: "settling_1pct_s", 0.001: "settling_01pct_s"}
"""The settling accuracies the small-step bench measures, and the figure each reads."""
NOISE_AT = {1e3: "noise_1khz_v_rthz", 1e6: "noise_1mhz_v_rthz"}
"""The spot frequencies the noise bench reports, and the figure each reads."""
UNHEALTHY_PENALTY = 1.0
NOT_WORKING_PENALTY = 10.0


class SpecError(IcgenError):
    """A spec that is malformed, impossible or contradictory ({gain_db} etc. name the specs; see core.errors)."""


Getter = Callable[[str], object]
"""A figure by name: a float (NaN when absent) for one design, a numpy array for a table."""


@dataclass(frozen=True)
class SpecKind:
    """One spec: bound, unit, valid range, shortfall unit, where its achieved value comes from, what measures it."""

    key: str
    label: str
    what: str
    """What a valid target is, for messages: "a phase margin"."""
    unit: str
    """The unit it is printed in (format_si) and, for parse_spec, the unit a value must carry."""
    bound: str
    """min (a lower bound), max (an upper bound) or band (within ITAIL_TOLERANCE of the target)."""
    log: bool
    """Margins in decades (frequencies, power, times, currents); otherwise in the unit itself."""
    scale: float
    """One unit of shortfall: 6 dB, 10 degrees, 0.1 V, or 1 decade."""
    low: float
    high: float
    """The open range a target must lie in."""
    example: str
    figure: Callable[[Getter, "Specs"], object]
    """The achieved value from named figures (metrics, sign-off figures, `itail_a`, `VIN`)."""
    benches: tuple[str, ...] = ()
    """Sign-off benches (icgen.core.signoff.BENCHES) that measure it; the estimates are always computed with them."""
    estimates: bool = False
    """Needs the operating-point estimates (offset, area, GBW) even without a bench."""

    @property
    def bound_sign(self) -> str:
        return {"min": "≥", "max": "≤", "band": "≈"}[self.bound]


def _plain(name: str) -> Callable[[Getter, "Specs"], object]:
    return lambda get, specs: get(name)


def _gain_margin(get: Getter, specs: "Specs"):
    """A missing GM on an amplifier with a UGB: the phase never reaches -180 degrees, an infinite gain margin."""
    import numpy as np

    gm, ugb = np.asarray(get("gm_db"), dtype=float), np.asarray(get("ugb_hz"), dtype=float)
    return np.where(np.isnan(gm) & ~np.isnan(ugb), np.inf, gm)


def _gbw(get: Getter, specs: "Specs"):
    """A0 x f3dB from the open-loop sweep: the gain-bandwidth product a zero shelf cannot inflate."""
    import numpy as np

    return 10 ** (np.asarray(get("gain_db"), dtype=float) / 20) * np.asarray(get("bw3db_hz"), dtype=float)


def _both(a: str, b: str):
    """The worse of two figures (NaN when either is missing): slew rise/fall, PSRR+/PSRR-."""
    def worse(get: Getter, specs: "Specs"):
        import numpy as np

        return np.minimum(np.asarray(get(a), dtype=float), np.asarray(get(b), dtype=float))

    return worse


def _swing(get: Getter, specs: "Specs"):
    import numpy as np

    return np.asarray(get("swing_high_v"), dtype=float) - np.asarray(get("swing_low_v"), dtype=float)


def _offset(get: Getter, specs: "Specs"):
    import numpy as np

    return np.abs(np.asarray(get("offset_v"), dtype=float))


SPEC_KINDS: dict[str, SpecKind] = {k.key: k for k in (
    SpecKind("gain_db", "DC gain", "a reachable DC gain", "dB", "min", False, 6.0, -20, 200, "38dB",
             _plain("gain_db")),
    SpecKind("ugb_hz", "Unity-gain bandwidth", "a unity-gain bandwidth", "Hz", "min", True, 1.0, 0, 1e12, "10MHz",
             _plain("ugb_hz")),
    SpecKind("pm_deg", "Phase margin", "a phase margin", "deg", "min", False, 10.0, 0, 180, "52deg",
             _plain("pm_deg")),
    SpecKind("gm_db", "Gain margin", "a gain margin", "dB", "min", False, 6.0, 0, 200, "10dB", _gain_margin),
    SpecKind("bw3db_hz", "3 dB bandwidth", "a 3 dB bandwidth", "Hz", "min", True, 1.0, 0, 1e12, "100kHz",
             _plain("bw3db_hz")),
    SpecKind("power_w", "Power", "a power budget", "W", "max", True, 1.0, 0, 10, "50uW", _plain("power_w")),
    SpecKind("gbw_hz", "GBW (A0 x f3dB)", "a gain-bandwidth product", "Hz", "min", True, 1.0, 0, 1e12, "20MHz",
             _gbw),
    SpecKind("settling_s", "Settling time", "a settling time", "s", "max", True, 1.0, 0, 1, "50ns",
             lambda get, specs: get(SETTLE_TO[specs.settle_to]), ("buffer_ac", "small_step")),
    SpecKind("slew_v_per_s", "Slew rate", "a slew rate", "V/s", "min", True, 1.0, 0, 1e13, "10V/us",
             _both("slew_rise_v_per_s", "slew_fall_v_per_s"), ("buffer_ac", "large_step")),
    SpecKind("cmrr_db", "CMRR", "a CMRR", "dB", "min", False, 6.0, -50, 300, "60dB", _plain("cmrr_db"), ("cmrr",)),
    SpecKind("psrr_db", "PSRR (worse of +/-)", "a PSRR", "dB", "min", False, 6.0, -50, 300, "50dB",
             _both("psrr_plus_db", "psrr_minus_db"), ("psrr_plus", "psrr_minus")),
    SpecKind("offset_v", "Offset |VIN-VOUT|", "an offset bound", "V", "max", True, 1.0, 0, 1, "1mV", _offset,
             estimates=True),
    SpecKind("swing_v", "Output swing", "an output swing", "V", "min", False, 0.1, 0, 10, "0.8V", _swing,
             ("swing",)),
    SpecKind("noise_v_rthz", "Input noise", "an input noise density", "V/rtHz", "max", True, 1.0, 0, 1e-3,
             "30nV/rtHz@1MHz", lambda get, specs: get(NOISE_AT[specs.noise_at_hz]), ("noise",)),
    SpecKind("area_m2", "Area", "an area budget", "m2", "max", True, 1.0, 0, 1e-3, "500um2", _plain("area_m2"),
             estimates=True),
    SpecKind("itail_a", "Tail current", "a tail current", "A", "band", True, 1.0, 0, 1, "20uA", _plain("itail_a"),
             estimates=True),
)}
"""Spec key -> SpecKind, in the order specs are reported."""
SPEC_KEYS: tuple[str, ...] = ("gain_db", "ugb_hz", "pm_deg", "gm_db", "bw3db_hz", "power_w")
"""The six open-loop metrics in spec order: the surrogate's outputs, eval's error columns and the model's prompt."""
UGB_BENCHES = ("buffer_ac",)
"""Sign-off benches every candidate gets when a UGB is asked for (icgen.core.signoff's shelf rule): the loop, the
eval and the fix-pair draw simulate alike."""
SHORTFALL_SCALE = {k: kind.scale for k, kind in SPEC_KINDS.items() if not kind.log}
LOG_METRICS = ("ugb_hz", "bw3db_hz", "power_w")
"""Metrics measured in decades (the others in dB or degrees, divided by SHORTFALL_SCALE)."""


@dataclass(frozen=True)
class Specs:
    """Targets (see SPEC_KINDS for each bound) and two inputs: a fixed VIN and the settling accuracy."""

    gain_db: float | None = None
    ugb_hz: float | None = None
    pm_deg: float | None = None
    gm_db: float | None = None
    bw3db_hz: float | None = None
    power_w: float | None = None
    gbw_hz: float | None = None
    settling_s: float | None = None
    slew_v_per_s: float | None = None
    cmrr_db: float | None = None
    psrr_db: float | None = None
    offset_v: float | None = None
    swing_v: float | None = None
    noise_v_rthz: float | None = None
    area_m2: float | None = None
    itail_a: float | None = None
    vin_v: float | None = None
    """Input: fix VIN (the input common mode) to this value; every candidate is simulated with it."""
    settle_to: float = 0.01
    """Input: the accuracy `settling_s` is measured to, 0.01 (1 %) or 0.001 (0.1 %)."""
    noise_at_hz: float = 1e6
    """Input: the spot frequency `noise_v_rthz` is read at, 1e3 or 1e6."""

    def __post_init__(self) -> None:
        if all(getattr(self, key) is None for key in SPEC_KINDS):
            raise SpecError("give at least one spec, e.g. {gain_db} 38dB {pm_deg} 52")
        for key, kind in SPEC_KINDS.items():
            self._check_number(key, kind.low, kind.high, kind.what, kind.unit, kind.example)
        self._check_number("vin_v", 0, 10, "an input common mode", "V", "0.6V")
        if self.settle_to not in SETTLE_TO:
            raise SpecError(f"{{settle_to}} {shown(self.settle_to)} is not a settling accuracy the small-step bench "
                            f"measures; use 1% or 0.1%")
        if self.noise_at_hz not in NOISE_AT:
            raise SpecError(f"{{noise_v_rthz}}: noise is reported at 1kHz and 1MHz, not at {shown(self.noise_at_hz)} "
                            f"Hz; use e.g. 30nV/rtHz@1MHz")
        if self.ugb_hz is not None and self.bw3db_hz is not None and self.bw3db_hz >= self.ugb_hz:
            raise SpecError(f"{{bw3db_hz}} {self.bw3db_hz:g} Hz is not below {{ugb_hz}} {self.ugb_hz:g} Hz: an "
                            f"amplifier's 3 dB bandwidth lies below its unity-gain bandwidth")
        if (self.gain_db is not None and self.ugb_hz is not None and self.bw3db_hz is not None
                and self.ugb_hz < self.bw3db_hz * 10 ** ((self.gain_db - 3) / 20) / 100):
            raise SpecError("{gain_db}, {bw3db_hz} and {ugb_hz} contradict each other: gain x bandwidth is far above "
                            "the UGB")

    def _check_number(self, key: str, low: float, high: float, label: str, unit: str, example: str) -> None:
        value = getattr(self, key)
        if value is None:
            return
        field = "{" + key + "}: "
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise SpecError(field + f"{shown(value)} is not a number")
        try:
            number = float(value)
        except OverflowError:
            raise SpecError(field + f"{shown(value)} is too large") from None
        inclusive = key == "gm_db"  # a gain margin of 0 dB is a (useless) valid bound
        if not (math.isfinite(number) and (low <= number if inclusive else low < number) and number < high):
            floor = "0 or more" if inclusive else f"more than {low:g}"
            ceiling = f"{high:g}".replace("e+", "e")
            unit = {"deg": "degrees"}.get(unit, unit)
            raise SpecError(field + f"{number:.12g} {unit} is not {label}; use {floor} and less than {ceiling} {unit}, "
                                    f"e.g. {example}")

    def to_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def given(self) -> dict[str, float]:
        """The specs given (targets only, in SPEC_KINDS order; not the inputs vin_v, settle_to, noise_at_hz)."""
        return {k: getattr(self, k) for k in SPEC_KINDS if getattr(self, k) is not None}

    def core(self) -> dict[str, float]:
        """The given open-loop specs (SPEC_KEYS): what the surrogate predicts and the model's prompt carries."""
        return {k: v for k, v in self.given().items() if k in SPEC_KEYS}

    def core_specs(self) -> "Specs | None":
        """These specs with only the open-loop six kept (None when none of them is given)."""
        core = self.core()
        return Specs(**core) if core else None

    def benches(self) -> tuple[str, ...]:
        """The sign-off benches these specs need (a UGB is checked against the buffer: the shelf rule)."""
        wanted = {b for k in self.given() for b in SPEC_KINDS[k].benches}
        if self.ugb_hz is not None:
            wanted.add("buffer_ac")
        from .signoff import BENCHES

        return tuple(b for b in BENCHES if b in wanted)

    def needs_estimates(self) -> bool:
        return any(SPEC_KINDS[k].estimates for k in self.given())

    @classmethod
    def from_dict(cls, data: Mapping) -> "Specs":
        """From `to_dict()` output (unknown keys refused; None values left out)."""
        names = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in names]
        if unknown:
            raise SpecError(f"unknown spec key {shown(unknown[0])}; use {', '.join(sorted(names))}")
        return cls(**{k: v for k, v in data.items() if v is not None})


def format_spec(key: str, value: float | None) -> str:
    """A spec's value for people: 38.0 dB, 12.5 MHz, 10 V/µs, 500 µm², 30 nV/√Hz; None prints as '—'."""
    from .units import format_si

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    unit = SPEC_KINDS[key].unit
    if unit == "V/s":
        return f"{value / 1e6:.4g} V/µs"
    if unit == "m2":
        return f"{value * 1e12:.4g} µm²"
    return format_si(value, "V/√Hz" if unit == "V/rtHz" else unit)


def format_margin(key: str, margin: float | None) -> str:
    """A spec's margin for people: decades for the log specs, else dB, degrees or volts ('—' when unmeasured)."""
    if margin is None:
        return "—"
    kind = SPEC_KINDS[key]
    return f"{margin:+.2f} dec" if kind.log else f"{margin:+.{2 if kind.unit == 'V' else 1}f}"


SPEC_HELP = {
    "gain_db": "DC gain lower bound: 38dB or 38.",
    "ugb_hz": "Unity-gain bandwidth lower bound: 10MHz or 10e6 (holds only if the buffer's bandwidth agrees).",
    "pm_deg": "Phase margin lower bound: 52deg or 52.",
    "gm_db": "Gain margin lower bound: 10dB or 10.",
    "bw3db_hz": "3 dB bandwidth lower bound: 100kHz or 1e5.",
    "power_w": "Power upper bound: 50uW or 50e-6.",
    "gbw_hz": "Gain-bandwidth lower bound, A0 x f3dB of the open-loop sweep: 20MHz.",
    "settling_s": "Buffer small-step (10 mV) settling time upper bound, to --settle-to: 50ns.",
    "slew_v_per_s": "Buffer slew-rate lower bound, the worse of rise and fall: 10V/us.",
    "cmrr_db": "Low-frequency CMRR lower bound: 60dB.",
    "psrr_db": "Low-frequency PSRR lower bound, the worse of PSRR+ and PSRR-: 50dB.",
    "offset_v": "Systematic input offset |VIN - VOUT| upper bound, closed DC loop: 1mV.",
    "swing_v": "Output swing lower bound (every device keeps its saturation margin): 0.8V.",
    "noise_v_rthz": "Input-referred noise upper bound at 1kHz or 1MHz: 30nV/rtHz@1MHz.",
    "area_m2": "Area upper bound, sum of W*L plus C0 and R0 at the technology's densities: 500um2.",
    "itail_a": "Tail current (M5), met within 10 %: 20uA.",
    "vin_v": "Fix the input common mode VIN (not a search variable then): 0.6V.",
    "settle_to": "Accuracy --settling is measured to: 1% (default) or 0.1%.",
}
"""One line of help per spec option (CLI and web form)."""
if set(SPEC_HELP) != set(SPEC_OPTIONS):  # pragma: no cover - a spec added in one place only
    raise ImportError("core.score.SPEC_HELP and core.errors.SPEC_OPTIONS name different specs")


@dataclass(frozen=True)
class Relax:
    """How far a design's metrics are relaxed to make specs it meets by construction: dB, degrees, a factor."""

    gain_db: float = 1.0
    """Gain bound = gain - this."""
    pm_deg: float = 2.0
    """Phase-margin bound = PM - this."""
    gm_db: float = 1.0
    """Gain-margin bound = GM - this (when positive)."""
    relative: float = 0.10
    """UGB and BW bounds at (1 - relative) x, the power bound at (1 + relative) x the design's values."""


def relaxed_specs(metrics: Metrics, tol: Relax = Relax()) -> Specs:
    """Bounds a design meets by construction, relaxed by `tol`; GM only when the design has a positive one."""
    gm = metrics.gm_db - tol.gm_db if metrics.gm_db is not None and metrics.gm_db - tol.gm_db > 0 else None
    return Specs(gain_db=metrics.gain_db - tol.gain_db, ugb_hz=metrics.ugb_hz * (1 - tol.relative),
                 pm_deg=max(metrics.pm_deg - tol.pm_deg, 0.1), gm_db=gm,
                 bw3db_hz=metrics.bw3db_hz * (1 - tol.relative), power_w=metrics.power_w * (1 + tol.relative))


SPEC_KEY_BY_NAME = {name: key for key, name in SPEC_OPTIONS.items()}
"""gain -> gain_db, ugb -> ugb_hz, settle-to -> settle_to, ...: the short names people type."""

_DB = re.compile(rf"({NUMBER_PATTERN})\s*(dB|db|DB)?")
_DEG = re.compile(rf"({NUMBER_PATTERN})\s*(deg|degree|degrees|°)?")
_PREFIX = "|".join(sorted((re.escape(p) for p in UNIT_PREFIX_EXPONENT), key=len, reverse=True))
_SLEW = re.compile(rf"({NUMBER_PATTERN})\s*(?:({_PREFIX})?V\s*/\s*({_PREFIX})?s)?")
_AREA = re.compile(rf"({NUMBER_PATTERN})\s*(?:({_PREFIX})?m(?:2|²|\^2))?")
_NOISE = re.compile(rf"({NUMBER_PATTERN})\s*(?:({_PREFIX})?V\s*/\s*(?:rtHz|√Hz|sqrt\(?Hz\)?))?"
                    rf"(?:\s*@\s*(.+))?")
_PERCENT = re.compile(rf"({NUMBER_PATTERN})\s*%")


def _exponent(prefix: str | None) -> int:
    return UNIT_PREFIX_EXPONENT[prefix] if prefix else 0


def _compound(match: re.Match, field: str, example: str) -> float:
    try:
        return parse_quantity(match.group(1))
    except UnitError as err:
        raise SpecError(f"{field}: {err}; use {example}") from err


def parse_spec(name: str, text: str) -> float | tuple[float, float]:
    """A spec value with optional, checked units: gain 38dB | 38; pm 52deg | 52; ugb 10MHz | 10e6; power 50uW;
    settling 50ns; slew 10V/us; cmrr 60dB; offset 1mV; swing 0.8V; area 500um2; itail 20uA; vin 0.6V;
    settle-to 0.1%. `noise` 30nV/rtHz@1MHz gives (value, frequency); without @ the frequency is 1 MHz.

    `name` is a spec key (`gain_db`) or its short name (`gain`).
    """
    key = SPEC_KEY_BY_NAME.get(name.lstrip("-"), name)
    if key not in SPEC_KINDS and key not in ("vin_v", "settle_to"):
        raise SpecError(f"unknown spec {shown(name)}; use one of {', '.join(SPEC_KEY_BY_NAME)}")
    field = "{" + key + "}"
    if not isinstance(text, str):
        raise SpecError(f"{field}: {shown(text)} is not text such as 38dB")
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_CHARS:
        raise SpecError(f"{field}: {shown(stripped)} is longer than {MAX_NUMBER_CHARS} characters; use e.g. 38dB, "
                        f"10MHz, 50uW")
    if key == "settle_to":
        match = _PERCENT.fullmatch(stripped)
        if not match:
            raise SpecError(f"{field}: {shown(text)} is not a percentage; use 1% or 0.1%")
        return _compound(match, field, "1% or 0.1%") / 100
    if key in ("gain_db", "gm_db", "pm_deg", "cmrr_db", "psrr_db"):
        pattern, what, example = (_DEG, "a phase in degrees", "52deg or 52") if key == "pm_deg" else \
            (_DB, "a gain in dB" if key in ("gain_db", "gm_db") else "a ratio in dB",
             f"{SPEC_KINDS[key].example} or {SPEC_KINDS[key].example[:-2]}")
        match = pattern.fullmatch(stripped)
        if not match:
            raise SpecError(f"{field}: {shown(text)} is not {what}; use {example}")
        return _compound(match, field, example)
    if key == "slew_v_per_s":
        match = _SLEW.fullmatch(stripped)
        if not match:
            raise SpecError(f"{field}: {shown(text)} is not a slew rate; use e.g. 10V/us or 1e7 (V/s)")
        return _compound(match, field, "10V/us") * 10.0 ** (_exponent(match.group(2)) - _exponent(match.group(3)))
    if key == "area_m2":
        match = _AREA.fullmatch(stripped)
        if not match:
            raise SpecError(f"{field}: {shown(text)} is not an area; use e.g. 500um2 or 5e-10 (m²)")
        return _compound(match, field, "500um2") * 10.0 ** (2 * _exponent(match.group(2)))
    if key == "noise_v_rthz":
        match = _NOISE.fullmatch(stripped)
        if not match:
            raise SpecError(f"{field}: {shown(text)} is not a noise density; use e.g. 30nV/rtHz@1MHz")
        value = _compound(match, field, "30nV/rtHz@1MHz") * 10.0 ** _exponent(match.group(2))
        at = 1e6
        if match.group(3):
            try:
                at = parse_quantity(match.group(3), "Hz")
            except UnitError as err:
                raise SpecError(f"{field}: {shown(match.group(3))} after @ is not a frequency; use @1kHz or "
                                f"@1MHz") from err
        return value, at
    unit = {"ugb_hz": "Hz", "bw3db_hz": "Hz", "gbw_hz": "Hz", "power_w": "W", "settling_s": "s", "offset_v": "V",
            "swing_v": "V", "vin_v": "V", "itail_a": "A"}[key]
    what = {"Hz": "a frequency", "W": "a power", "s": "a time", "V": "a voltage", "A": "a current"}[unit]
    example = {"Hz": "10MHz or 10e6", "W": "50uW or 50e-6", "s": "50ns or 50e-9", "V": "0.6V or 600mV",
               "A": "20uA or 20e-6"}[unit]
    try:
        return parse_quantity(stripped, unit)
    except UnitError as err:
        raise SpecError(f"{field}: {shown(text)} is not {what} ({err}); use {example}") from err


def specs_from_options(options: Mapping[str, str | None]) -> Specs:
    """Specs from option texts keyed by spec key or short name (`{"gain": "38dB", "noise": "30nV/rtHz@1kHz"}`);
    None values are left out."""
    values: dict = {}
    for name, text in options.items():
        if text is None:
            continue
        key = SPEC_KEY_BY_NAME.get(name.lstrip("-").replace("_", "-"), SPEC_KEY_BY_NAME.get(name, name))
        value = parse_spec(key, text)
        if key == "noise_v_rthz":
            values["noise_v_rthz"], values["noise_at_hz"] = value
        else:
            values[key] = value
    return Specs(**values)


@dataclass(frozen=True)
class SpecCheck:
    """One spec against what was achieved: margin > 0 means met (dB, degrees, volts, or decades)."""

    key: str
    target: float
    achieved: float | None
    margin: float | None
    met: bool


def spec_margin(key: str, achieved, target: float):
    """How far `achieved` clears `target`: in dB, degrees or volts, or in decades for the log specs (above a lower
    bound, below an upper bound, inside the ITAIL_TOLERANCE band). Works on numbers and on numpy arrays alike."""
    import numpy as np

    kind = SPEC_KINDS[key]
    if kind.bound == "band":
        return math.log10(1 + ITAIL_TOLERANCE) - np.abs(np.log10(achieved / target))
    if kind.log:
        return np.log10(target / achieved) if kind.bound == "max" else np.log10(achieved / target)
    return target - achieved if kind.bound == "max" else achieved - target


def _getter(source) -> Getter:
    """Named figures of a result (SimResult-like), a Metrics, a mapping, or a table (DataFrame: arrays)."""
    import numpy as np

    if source is None:
        return lambda name: math.nan
    if hasattr(source, "columns"):  # a table
        n = len(source)
        return lambda name: source[name].to_numpy(dtype=float) if name in source.columns else np.full(n, np.nan)
    figures = figures_of(source) if hasattr(source, "status") else \
        (source.to_dict() if isinstance(source, Metrics) else source)
    return lambda name: math.nan if figures.get(name) is None else float(figures[name])


def figures_of(result) -> dict[str, float | None]:
    """Every named figure of a simulated result: its metrics, its sign-off figures, the tail current and VIN."""
    out: dict = dict(result.metrics.to_dict()) if result.metrics else {}
    signoff = getattr(result, "signoff", None)
    if signoff is not None:
        out.update({k: v for k, v in signoff.to_dict().items() if isinstance(v, (int, float)) and
                    not isinstance(v, bool)})
    health = getattr(result, "health", None)
    tail = next((d for d in health.devices if d.name == "M5"), None) if health else None
    out["itail_a"] = tail.id_a if tail else None
    out["VIN"] = result.design.VIN if getattr(result, "design", None) is not None else None
    return out


def achieved_value(source, key: str, specs: Specs) -> float | None:
    """The achieved value of one spec, None when it was not measured (inf: a gain margin without a -180° crossing)."""
    value = float(SPEC_KINDS[key].figure(_getter(source), specs))
    return None if math.isnan(value) else value


def check_specs(source, specs: Specs) -> list[SpecCheck]:
    """Per-spec margins of a result (or its Metrics, or a mapping of figures). A missing GM means the phase never
    reaches -180 degrees: an infinite gain margin."""
    checks = []
    for key, target in specs.given().items():
        achieved = achieved_value(source, key, specs) if source is not None else None
        if achieved is None or (achieved <= 0 and SPEC_KINDS[key].log):
            checks.append(SpecCheck(key, target, None, None, False))
            continue
        margin = float(spec_margin(key, achieved, target))
        checks.append(SpecCheck(key, target, None if math.isinf(achieved) else achieved, margin, margin >= 0))
    return checks


def healthy_result(result) -> bool:
    """Whether a simulation result has a healthy operating point (no railed output, every device saturated)."""
    return bool(result.health and result.health.healthy)


def shortfall(source, specs: Specs, status: str = Status.OK, healthy: bool = True) -> float:
    """0 when every spec holds on a healthy working amplifier; otherwise the summed normalised shortfall."""
    total = 0.0
    for check in check_specs(source, specs):
        if check.met:
            continue
        if check.margin is None:
            total += 1.0
        else:
            total += -check.margin / SPEC_KINDS[check.key].scale
    if status != Status.OK:
        total += NOT_WORKING_PENALTY
    elif not healthy:
        total += UNHEALTHY_PENALTY
    return total


def result_shortfall(result, specs: Specs) -> float:
    """`shortfall` of a simulated result with its own status and health."""
    return shortfall(result if result.metrics else None, specs, result.status, healthy_result(result))


def rank_key(source, specs: Specs, status: str, healthy: bool) -> tuple[float, float, float]:
    """Sort key, best first: shortfall, then the smallest normalised margin (larger is better), then power."""
    short = shortfall(source, specs, status, healthy)
    margins = [c.margin / SPEC_KINDS[c.key].scale for c in check_specs(source, specs) if c.margin is not None]
    worst_margin = min(margins) if margins else -math.inf
    power = _getter(source)("power_w") if source is not None else math.nan
    return short, -worst_margin, power if power and not math.isnan(power) else math.inf


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
    """Vectorised `rank_key` over a table of healthy working designs (figure columns, NaN when absent; a spec whose
    figure the table lacks counts as unmeasured: 1 unit short on every row).

    Returns (shortfall, -worst normalised margin, power) arrays; `numpy.lexsort` of them reversed orders best first.
    """
    import numpy as np

    n = len(table)
    get = _getter(table)
    short = np.zeros(n)
    worst = np.full(n, np.inf)
    any_margin = np.zeros(n, dtype=bool)
    for key, target in specs.given().items():
        kind = SPEC_KINDS[key]
        achieved = np.asarray(kind.figure(get, specs), dtype=float)
        if kind.log:
            achieved = np.where(achieved > 0, achieved, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            margin = spec_margin(key, achieved, target)
        short += np.where(np.isnan(margin), 1.0, np.where(margin >= 0, 0.0, -margin / kind.scale))
        worst = np.fmin(worst, margin / kind.scale)
        any_margin |= ~np.isnan(margin)
    power = get("power_w")
    return short, -np.where(any_margin, worst, -np.inf), np.where(np.isnan(power), np.inf, power)
