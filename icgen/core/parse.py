"""Read a design out of text: the original answer format (as a model or a person writes it) or JSON.

`parse_answer(text)` -> ParsedAnswer with the design (when complete) and every problem found, each saying
where it is and what would be right. Only numbers leave this module: the text itself never reaches ngspice.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .deck import DEVICE_BY_NAME, PASSIVES, TEMPLATE
from .design import DESIGN_KEYS, VARIABLE_BY_KEY, Design, DesignError
from .units import UnitError, parse_quantity

_QTY = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:[ \t]*[A-Za-zµΩ]+(?!\w))?"
_NAME = r"[A-Za-z_][\w]*"
_DEVICE = re.compile(
    rf"(?<![\w.])(M\d+)\s+({_NAME})\s+({_NAME})\s+({_NAME})\s+({_NAME})\s+({_NAME})"
    rf"\s+(L\d+)\s*=\s*({_QTY})\s*,?\s+(W\d+)\s*=\s*({_QTY})", re.IGNORECASE)
_PASSIVE = re.compile(rf"(?<![\w.])([CR]\d+)\s+({_NAME})\s+({_NAME})\s+([CR]\d+)_value\s*=\s*({_QTY})", re.IGNORECASE)
_VIN = re.compile(rf"(?<![\w])VIN\s*=\s*({_QTY})", re.IGNORECASE)
_VB1 = re.compile(rf"(?<![\w])VB1\s*=\s*({_QTY})", re.IGNORECASE)
# SPICE directives and control words that have no place in an answer (ngspice's .control can run `shell`).
_DIRECTIVE = re.compile(r"(?im)^\s*(\.[a-z]+)\b|\b(shell|\.control|\.include|\.lib|\.endc)\b")
_UNITS = {"R0": "Ohm", "C0": "F", "VIN": "V", "VB1": "V"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an answer: where (line N, M3, R0, ...) and what would be right."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ParsedAnswer:
    """What was read from an answer: the values found, the design if complete, and the problems."""

    values: dict[str, float] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    design: Design | None = None

    @property
    def ok(self) -> bool:
        return self.design is not None and not self.problems


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _quantity(raw: str, unit: str, where: str, problems: list[Problem]) -> float | None:
    try:
        value = parse_quantity(raw.strip(), unit)
    except UnitError as err:
        problems.append(Problem(where, str(err)))
        return None
    if not math.isfinite(value):
        problems.append(Problem(where, f"{raw.strip()!r} is not a finite number"))
        return None
    return value


def parse_answer(text: str) -> ParsedAnswer:
    """Parse the original answer format tolerantly: any line breaks and spacing, prose around it allowed."""
    out = ParsedAnswer()
    problems = out.problems
    for match in _DIRECTIVE.finditer(text):
        word = match.group(1) or match.group(2)
        problems.append(Problem(f"line {_line_of(text, match.start())}",
                                f"{word!r} is not allowed in an answer: only the op-amp's sizes and biases are read"))
    seen: dict[str, int] = {}
    for match in _DEVICE.finditer(text):
        name, model, drain, gate, source, bulk, lkey, lval, wkey, wval = match.groups()
        name = name.upper()
        line = _line_of(text, match.start())
        where = f"line {line}, {name}"
        if name in seen:
            problems.append(Problem(where, f"{name} appears again (first on line {seen[name]}); keep one line per device"))
            continue
        seen[name] = line
        device = DEVICE_BY_NAME.get(name)
        if device is None:
            problems.append(Problem(where, f"unexpected device {name}; the template has only "
                                           f"{', '.join(d.name for d in TEMPLATE)}"))
            continue
        if model.lower() != device.model:
            problems.append(Problem(where, f"{name} is {model}, the template has {device.model}"))
        nodes = (drain, gate, source, bulk)
        expected = (device.drain, device.gate, device.source, device.bulk)
        if tuple(n.upper() for n in nodes) != tuple(n.upper() for n in expected):
            problems.append(Problem(where, f"terminals (drain gate source bulk) are {' '.join(nodes)}; "
                                           f"the template has {' '.join(expected)}"))
        for key_written, raw, key_expected, unit_name in ((lkey, lval, device.length_key, "length"),
                                                          (wkey, wval, device.width_key, "width")):
            if key_written.upper() != key_expected:
                problems.append(Problem(where, f"{name}'s {unit_name} is written {key_written}; "
                                               f"the template sizes {name} with {key_expected}"))
                continue
            value = _quantity(raw, "m", f"{where}, {key_expected}", problems)
            if value is None:
                continue
            if key_expected in out.values and out.values[key_expected] != value:
                twin = next(d.name for d in TEMPLATE if key_expected in (d.length_key, d.width_key))
                problems.append(Problem(where, f"{key_expected}={raw.strip()} differs from {twin}'s "
                                               f"{key_expected}; {twin} and {name} must be sized alike"))
                continue
            out.values[key_expected] = value
    for d in TEMPLATE:
        if d.name not in seen:
            problems.append(Problem(d.name, f"missing: expected a line like '{d.name} {d.model} {d.drain} {d.gate} "
                                            f"{d.source} {d.bulk} {d.length_key}=... {d.width_key}=...'"))
    passives_seen = set()
    for match in _PASSIVE.finditer(text):
        name, a, b, value_key, raw = match.groups()
        name = name.upper()
        where = f"line {_line_of(text, match.start())}, {name}"
        if name not in PASSIVES:
            problems.append(Problem(where, f"unexpected element {name}; the template has only C0 and R0"))
            continue
        if name in passives_seen:
            problems.append(Problem(where, f"{name} appears twice; keep one"))
            continue
        passives_seen.add(name)
        expected = PASSIVES[name]
        if (a.upper(), b.upper()) != tuple(n.upper() for n in expected):
            problems.append(Problem(where, f"{name} connects {a} {b}; the template puts it between "
                                           f"{expected[0]} and {expected[1]}"))
        if value_key.upper() != name:
            problems.append(Problem(where, f"{name}'s value is written {value_key}_value; use {name}_value"))
        value = _quantity(raw, _UNITS[name], f"{where}_value", problems)
        if value is not None:
            out.values[name] = value
    for name in PASSIVES:
        if name not in passives_seen:
            a, b = PASSIVES[name]
            problems.append(Problem(name, f"missing: expected '{name} {a} {b} {name}_value=...'"))
    for key, pattern, example in (("VIN", _VIN, "VINP=VINN=VIN= 605.0mV"), ("VB1", _VB1, "VB1=932.0mV")):
        matches = list(pattern.finditer(text))
        if not matches:
            problems.append(Problem(key, f"missing: expected '{example}'"))
            continue
        values = {m.group(1).strip() for m in matches}
        if len(values) > 1:
            problems.append(Problem(key, f"given more than once with different values ({', '.join(sorted(values))})"))
            continue
        value = _quantity(matches[0].group(1), _UNITS[key], f"line {_line_of(text, matches[0].start())}, {key}",
                          problems)
        if value is not None:
            out.values[key] = value
    if all(k in out.values for k in DESIGN_KEYS):
        out.design = Design.from_dict(out.values)
    return out


def parse_design_json(data: object) -> ParsedAnswer:
    """A design from JSON: {"R0": 3000, ...} in SI, or {"design": {...}} as `icgen simulate --json` prints."""
    out = ParsedAnswer()
    if isinstance(data, dict) and isinstance(data.get("design"), dict):
        data = data["design"]
    if not isinstance(data, dict):
        out.problems.append(Problem("JSON", "expected an object with keys " + " ".join(DESIGN_KEYS)))
        return out
    for key in data:
        if key not in DESIGN_KEYS:
            out.problems.append(Problem(str(key), f"unknown key; a design has {' '.join(DESIGN_KEYS)}"))
    for key in DESIGN_KEYS:
        if key not in data:
            out.problems.append(Problem(key, "missing"))
            continue
        raw = data[key]
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            out.problems.append(Problem(key, f"{raw!r} is not a number"))
            continue
        unit = _UNITS.get(key, "m")
        value = _quantity(str(raw), unit, key, out.problems) if isinstance(raw, str) else float(raw)
        if value is not None and not math.isfinite(value):
            out.problems.append(Problem(key, f"{raw!r} is not a finite number"))
        elif value is not None:
            out.values[key] = value
    if not out.problems:
        try:
            out.design = Design.from_dict(out.values)
        except DesignError as err:
            out.problems.append(Problem("design", str(err)))
    return out


def read_design_file(path: str | Path) -> ParsedAnswer:
    """Parse a file: JSON if it is JSON, otherwise the original answer format."""
    text = Path(path).read_text(errors="replace")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return parse_design_json(json.loads(text))
        except json.JSONDecodeError as err:
            return ParsedAnswer(problems=[Problem(f"line {err.lineno}", f"not valid JSON: {err.msg}")])
    return parse_answer(text)


_COMPACT_ITEM = re.compile(r"([A-Za-z]+\d*)\s*=\s*([^\s,;]+)")


def parse_compact(text: str) -> ParsedAnswer:
    """Read `R0=3k C0=1p L1=622n ...` back: every variable once, SPICE suffixes."""
    out = ParsedAnswer()
    for key, raw in _COMPACT_ITEM.findall(text):
        if key not in DESIGN_KEYS:
            out.problems.append(Problem(key, f"unknown variable; use {' '.join(DESIGN_KEYS)}"))
            continue
        if key in out.values:
            out.problems.append(Problem(key, "given twice"))
            continue
        try:
            value = parse_quantity(raw, VARIABLE_BY_KEY[key].answer_unit)
        except UnitError as err:
            out.problems.append(Problem(key, str(err)))
            continue
        if not math.isfinite(value):
            out.problems.append(Problem(key, f"{raw!r} is not finite"))
            continue
        out.values[key] = value
    missing = [k for k in DESIGN_KEYS if k not in out.values]
    for key in missing:
        out.problems.append(Problem(key, "missing"))
    if not missing:
        out.design = Design.from_dict(out.values)
    return out
