"""SPICE suffixes and the value forms of the original answers, parsed and printed exactly.

    parse_quantity("622.0nm", "m") == 622e-9;  format_answer(622e-9, "m") == "622.0nm"
    parse_quantity("3k", "Ohm") == 3000.0;      format_spice(3000.0) == "3k"

Two conventions, chosen by whether a unit is written after the number:
- bare SPICE numbers are case-insensitive and `m`/`M` is milli, `meg` is mega (`1M` == 1e-3);
- a number followed by its unit reads like engineering text, so `M` is mega and `m` milli
  (`10MHz` == 1e7, `605mV` == 0.605), and `K`/`k` is kilo (`3.0KOhm`).
Decimal arithmetic keeps parse(format(x)) == x for every finite float.

What `parse_quantity` reads: optional whitespace (any Unicode space), an ASCII number (sign, digits, point,
exponent: `622`, `-.5`, `6.22e-7`), optional whitespace, then an optional suffix of ASCII letters, `µ`/`μ` (micro)
and `Ω`/`Ω` (ohm); nothing after it. At most MAX_NUMBER_CHARS characters once stripped. A value beyond a float
(magnitude above about 1.8e308, or a non-zero one that would round to 0) is a UnitError, never an overflow.
"""
from __future__ import annotations

import math
import numbers
import re
from decimal import Context, Decimal

# Exponents of ten for the SPICE scale factors (lower case: SPICE is case-insensitive).
SPICE_PREFIX_EXPONENT = {"t": 12, "g": 9, "meg": 6, "k": 3, "m": -3, "u": -6, "µ": -6, "n": -9, "p": -12, "f": -15}
# With a unit written after it, M is mega (10MHz) and m is milli (605mV).
UNIT_PREFIX_EXPONENT = {"T": 12, "G": 9, "M": 6, "meg": 6, "Meg": 6, "MEG": 6, "k": 3, "K": 3, "m": -3, "u": -6,
                        "µ": -6, "n": -9, "p": -12, "f": -15}
# Prefix printed for each exponent, in SPICE decks and in the original answers.
_SPICE_PRINT = {12: "T", 9: "G", 6: "Meg", 3: "k", 0: "", -3: "m", -6: "u", -9: "n", -12: "p", -15: "f"}
_ANSWER_PRINT = {12: "T", 9: "G", 6: "M", 3: "K", 0: "", -3: "m", -6: "u", -9: "n", -12: "p", -15: "f"}
_PEOPLE_PRINT = {**_ANSWER_PRINT, 3: "k", -6: "µ"}
# The unit each kind of value is written with in the original answers, and the prefix it uses.
ANSWER_UNIT_EXPONENT = {"m": None, "F": -12, "Ohm": None, "V": -3}

MAX_NUMBER_CHARS = 50
"""The longest quantity text (number and unit, surrounding whitespace stripped) that is read."""
NUMBER_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
"""An ASCII decimal number; unambiguous, so matching is linear."""
_QUANTITY = re.compile(rf"({NUMBER_PATTERN})\s*([A-Za-zµΩ]*)")
_SIGNS = str.maketrans({"\u03bc": "µ", "\u2126": "Ω"})  # Greek mu -> micro sign, ohm sign -> Greek omega
_EXACT = Context(prec=MAX_NUMBER_CHARS + 10, Emax=9999, Emin=-9999)
_UNIT_ALIASES = {"ohm": "Ohm", "ohms": "Ohm", "Ω": "Ohm", "v": "V", "f": "F", "m": "m", "hz": "Hz", "w": "W",
                 "s": "s", "a": "A", "db": "dB", "deg": "deg"}


class UnitError(ValueError):
    """A text that is not a quantity of the expected unit."""


def shown(text: object, limit: int = 40) -> str:
    """`text` quoted for a one-line message, cut to `limit` characters; never raises."""
    try:
        raw = text if isinstance(text, str) else repr(text)
    except (ValueError, RecursionError):  # a 5000-digit int, a deeply nested list
        raw = f"<an int of {text.bit_length()} bits>" if isinstance(text, int) else f"<a {type(text).__name__}>"
    return repr(raw[:limit] + "…") if len(raw) > limit else repr(raw)


def _exact(number_text: str, exponent: int) -> float:
    """The float nearest to number_text × 10**exponent, computed exactly in decimal."""
    mantissa, _, power = number_text.lower().partition("e")
    digits = Decimal(mantissa)
    if not digits:
        return float(digits)
    scale = int(power or "0") + exponent
    magnitude = digits.adjusted() + scale
    value = float(digits.scaleb(scale, _EXACT)) if -330 < magnitude < 330 else (math.inf if magnitude > 0 else 0.0)
    if math.isinf(value):
        raise UnitError(f"{shown(number_text)} is too large for a number (above 1.8e308)")
    if value == 0:
        raise UnitError(f"{shown(number_text)} is too small to tell from 0 (below 5e-324)")
    return value


def parse_quantity(text: str | float | int, unit: str = "") -> float:
    """Parse a SPICE or engineering quantity such as `622n`, `622.0nm`, `3.0KOhm`, `10MHz`, `1e-12` to SI.

    `unit` is the unit the value must have (`m`, `F`, `Ohm`, `V`, `Hz`, `W`); a different unit is an error.
    """
    if isinstance(text, numbers.Real) and not isinstance(text, bool):
        try:
            value = float(text)
        except OverflowError:
            raise UnitError(f"{shown(text)} is too large for a number (above 1.8e308)") from None
        if not math.isfinite(value):
            raise UnitError(f"{text!r} is not a finite number")
        return value
    if not isinstance(text, str):
        raise UnitError(f"{shown(text)} is not a quantity: give text such as 622n or a number")
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_CHARS:
        raise UnitError(f"{shown(stripped)} is longer than {MAX_NUMBER_CHARS} characters: not a quantity")
    match = _QUANTITY.fullmatch(stripped.translate(_SIGNS))
    if not match:
        raise UnitError(f"{shown(stripped)} is not a number with an optional scale and unit (e.g. 622n, 15um, 3.0KOhm)")
    number, suffix = match.groups()
    if not suffix:
        return _exact(number, 0)
    exponent = _split_suffix(suffix, unit, text)
    return _exact(number, exponent)


def _split_suffix(suffix: str, unit: str, text: object) -> int:
    """The exponent of a suffix such as `n`, `nm`, `KOhm`, `Meg`, `MHz` given the expected unit."""
    wanted = unit.lower()
    if unit == "Ohm" and suffix.endswith("Ω"):
        suffix = suffix[:-1] + "Ohm"
    # prefix + written unit, e.g. "nm", "KOhm", "MHz", "mV", or the unit alone, e.g. "V", "Ohm"
    # a lone letter that is also a SPICE scale factor is the scale factor: "1m" is 1e-3, "131f" is 131e-15
    if wanted and suffix.lower().endswith(wanted) and suffix.lower() not in SPICE_PREFIX_EXPONENT:
        head = suffix[: len(suffix) - len(wanted)]
        if head == "":
            return 0
        if head in UNIT_PREFIX_EXPONENT:
            return UNIT_PREFIX_EXPONENT[head]
    if suffix.lower() == "ohm" and unit == "Ohm":
        return 0
    # bare SPICE scale factor: case-insensitive, m is milli, meg is mega
    lowered = suffix.lower()
    if lowered in SPICE_PREFIX_EXPONENT:
        return SPICE_PREFIX_EXPONENT[lowered]
    # SPICE ignores letters after a known scale factor ("1uF" in a deck); accept only our own unit there
    for prefix in ("meg", "t", "g", "k", "m", "u", "µ", "n", "p", "f"):
        rest = lowered[len(prefix):]
        if lowered.startswith(prefix) and rest and _UNIT_ALIASES.get(rest, rest) == _UNIT_ALIASES.get(wanted, wanted):
            return SPICE_PREFIX_EXPONENT[prefix]
    what = f" in {unit}" if unit else ""
    raise UnitError(f"{shown(str(text).strip())}: unknown scale or unit {suffix!r}{what}; "
                    f"use e.g. 622n, 622nm, 15u, 1p, 3k, 605m")


def _decimal(value: float) -> Decimal:
    if not math.isfinite(value):
        raise UnitError(f"{value!r} is not a finite number")
    return Decimal(repr(float(value)))


def _engineering_exponent(value: float) -> int:
    if not math.isfinite(value):
        raise UnitError(f"{value!r} is not a finite number")
    if value == 0:
        return 0
    exponent = 3 * math.floor(math.log10(abs(value)) / 3)
    return max(-15, min(12, exponent))


def _mantissa(value: float, exponent: int, min_decimals: int) -> str:
    text = format(_decimal(value).scaleb(-exponent).normalize(), "f")
    if "." not in text:
        text += "." + "0" * min_decimals if min_decimals else ""
    return text


def format_spice(value: float) -> str:
    """Print a value for a SPICE deck with an exact engineering suffix: 622e-9 -> '622n', 3e3 -> '3k'."""
    exponent = _engineering_exponent(value)
    return _mantissa(value, exponent, 0) + _SPICE_PRINT[exponent]


def format_answer(value: float, unit: str) -> str:
    """Print a value the way the original answers do: '622.0nm', '15.0um', '1.0pF', '3.0KOhm', '605.0mV'."""
    fixed = ANSWER_UNIT_EXPONENT.get(unit)
    exponent = fixed if fixed is not None else _engineering_exponent(value)
    if unit == "m":  # lengths are printed in nm below a micron and in um above, as in the original
        exponent = -9 if abs(value) < 1e-6 else -6
    return _mantissa(value, exponent, 1) + _ANSWER_PRINT[exponent] + unit


def format_si(value: float | None, unit: str, digits: int = 4) -> str:
    """Print a value for people, rounded: 12345678 Hz -> '12.35 MHz'. None prints as '—'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit in ("dB", "deg", "°", ""):
        return f"{value:.{max(digits - 2, 1)}f} {unit}".strip()
    exponent = _engineering_exponent(value)
    mantissa = value / 10.0**exponent
    return f"{mantissa:.{digits}g} {_PEOPLE_PRINT[exponent]}{unit}"
