r"""Read a design out of text: the original answer format, the compact form a model emits, or JSON.

`parse_answer(text)` -> ParsedAnswer with the design (when every value was read) and every problem found, each
saying where it is and what would be right; `ok` means a design and no problem. Only numbers leave this module:
the text itself never reaches ngspice. The grammar is exact; whatever it does not name is a problem.

Limits, checked first (a larger input is one problem and is read no further): MAX_ANSWER_BYTES (64 KiB of UTF-8)
and MAX_ANSWER_LINES (1000) for answers, compact text and design files; units.MAX_NUMBER_CHARS (50) per value.
Parsing is linear in the input.

Spacing, everywhere: line breaks are \n, \r\n or \r; one leading byte-order mark is dropped; every other
whitespace character (str.isspace: tab, no-break space, U+2028, ...) is an ASCII space. Runs of spaces count as one,
may start or end a line, and may surround `=` and `,`. A value is one token: `15.0um`, never `15.0 um`.

The answer format: blank lines anywhere, and these lines, each at most once:
- optional, before every other line: the words `To achieve the given performance metrics, the design parameters are:`
- the nine element lines of deck.TEMPLATE, in any order, each exactly these tokens:
  `M1 pch net3 VINP net2 VDD L1=<length> W1=<width>` (M1 M2 M5 M3 M4 M6 M7 with their model and nodes),
  `C0 net3 net4 C0_value=<capacitance>` and `R0 net4 VOUT R0_value=<resistance>`;
- after them: `VINP=VINN=VIN=<voltage>, VB1=<voltage>`, optionally after the words `And with biasing voltages of`
  and optionally with one full stop right after the last value.
Names (elements, models, nodes, keys, VINP ...) and the words of the two sentences are ASCII, in any case.
A value is a number with an optional scale and unit straight after it, as units.parse_quantity reads it:
622.0nm = 622nm = 622n = 0.622um = 622e-9 (a lone m is milli); 1.0pF = 1p; 3.0KOhm = 3kOhm = 3k = 3kΩ = 3000;
605.0mV = 605m = 0.605V. M1/M2 and M3/M4 share L1/W1 and L3/W3: equal values. Anything else (another line or
element, SPICE directives, prose, an extra token such as m=2, a repeated line, trailing characters in a value,
VINP or VINN written apart from VIN) is a problem with its line number.

The compact form (`parse_compact`): whitespace-separated `KEY=VALUE` tokens, line breaks included, one for each of
the 14 keys of design.DESIGN_KEYS, each once, in any order, keys in any case; nothing else (over 140 tokens: one
problem, read no further).
JSON (`parse_design_json`, `read_design_file`): an object of the 14 keys in SI (numbers, or quantity text), or
{"design": {...}}; each key once; numbers at most MAX_NUMBER_CHARS characters.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .deck import DEVICE_BY_NAME, PASSIVES, TEMPLATE
from .design import DESIGN_KEYS, VARIABLE_BY_KEY, Design, DesignError
from .units import MAX_NUMBER_CHARS, UnitError, parse_quantity, shown

MAX_ANSWER_BYTES = 64 * 1024
"""The largest answer, compact text or design file read, in bytes of UTF-8."""
MAX_ANSWER_LINES = 1000
"""The most lines an answer or compact text may have."""
HEADER = "To achieve the given performance metrics, the design parameters are:"
BIAS_PREFIX = "And with biasing voltages of"
_BIAS_NAMES = (("VINP", "VINN", "VIN"), ("VB1",))
_BIAS_FORM = "VINP=VINN=VIN= <voltage>, VB1=<voltage>"
# Every str.isspace() character but the line breaks, read as an ASCII space.
_SPACES = str.maketrans({c: " " for c in "\t\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
                                       "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"})
_FORBIDDEN = re.compile(r"(?<![a-z0-9_])(shell|\.control|\.include|\.lib|\.endc)(?![a-z0-9_])")
_ELEMENT = re.compile(r"[A-Za-z_]+[0-9][A-Za-z0-9_]*|[A-Za-z]")
_UNITS = {"R0": "Ohm", "C0": "F", "VIN": "V", "VB1": "V"}
_ELEMENTS = ", ".join(d.name for d in TEMPLATE) + ", C0 and R0"
_MAX_LISTED = 10


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


def _quantity(raw: str, unit: str, where: str, problems: list[Problem]) -> float | None:
    try:
        value = parse_quantity(raw, unit)
    except UnitError as err:
        problems.append(Problem(where, str(err)))
        return None
    if not math.isfinite(value):  # pragma: no cover - parse_quantity refuses these
        problems.append(Problem(where, f"{shown(raw)} is not a finite number"))
        return None
    return value


def _size_problem(text: object) -> Problem | None:
    """A problem when `text` is not text or is over MAX_ANSWER_BYTES; O(1) for far larger text."""
    if not isinstance(text, str):
        return Problem("answer", f"expected text, not {type(text).__name__}")
    if len(text) > MAX_ANSWER_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_ANSWER_BYTES:
        return Problem("answer", f"longer than {MAX_ANSWER_BYTES} bytes (64 KiB): an answer is under 1 KiB; "
                                 f"nothing was read")
    return None


def _lines(text: str, problems: list[Problem]) -> list[str] | None:
    """The lines of `text`, spaces normalised; None (and a problem) when too large."""
    size = _size_problem(text)
    if size is not None:
        problems.append(size)
        return None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_ANSWER_LINES:
        problems.append(Problem("answer", f"{len(lines)} lines; an answer has at most {MAX_ANSWER_LINES}: "
                                          f"nothing was read"))
        return None
    return [line if line.isascii() and line.isprintable() else line.translate(_SPACES) for line in lines]


def _tokens(line: str) -> list[str]:
    """Space-separated tokens, with `=` and `,` gluing their neighbours: `L1 = 622n` -> `L1=622n`."""
    groups: list[list[str]] = []
    glue = False
    for word in line.split(" "):
        if not word:
            continue
        if groups and (glue or word[0] in "=,"):
            groups[-1].append(word)
        else:
            groups.append([word])
        glue = word[-1] in "=,"
    return ["".join(g) for g in groups]


_HEADER_WORDS = _tokens(HEADER.lower())
_PREFIX_WORDS = _tokens(BIAS_PREFIX.lower())


def _same(written: str, name: str) -> bool:
    """ASCII names, compared without case (so no Unicode case folding: 'ı'.upper() == 'I')."""
    return written.isascii() and written.upper() == name.upper()


def _clip(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _forbidden(tokens: list[str]) -> str | None:
    """A SPICE directive or control word among the tokens (ngspice's .control can run `shell`)."""
    if tokens[0].startswith("."):
        return tokens[0]
    for token in tokens:
        found = _FORBIDDEN.search(token.lower())
        if found:
            return found.group(1)
    return None


def _key_value(token: str, key: str, where: str, problems: list[Problem]) -> str | None:
    written, sep, raw = token.partition("=")
    if not sep:
        problems.append(Problem(where, f"expected {key}=<value>, found {shown(token)}"))
        return None
    if not _same(written, key):
        return None
    return raw


class _Answer:
    """The state of one parse_answer: what was seen where, and the values read."""

    def __init__(self, out: ParsedAnswer) -> None:
        self.out = out
        self.problems = out.problems
        self.seen: dict[str, int] = {}
        self.set_by: dict[str, str] = {}
        self.header: int | None = None
        self.bias: int | None = None
        self.first_element: int | None = None

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def value(self, key: str, raw: str, unit: str, where: str, owner: str) -> None:
        value = _quantity(raw, unit, where, self.problems)
        if value is None:
            return
        if key in self.out.values and self.out.values[key] != value:
            twin = self.set_by[key]
            self.add(where.rsplit(", ", 1)[0], f"{key}={_clip(raw)} differs from {twin}'s {key}; {twin} and {owner} "
                                               f"must be sized alike")
            return
        self.out.values[key] = value
        self.set_by.setdefault(key, owner)

    def element(self, name: str, line: int) -> bool:
        """Record an element line; False when it repeats one or follows the biases (a problem each)."""
        where = f"line {line}, {name}"
        if name in self.seen:
            self.add(where, f"{name} appears again (first on line {self.seen[name]}); keep one line per element")
            return False
        self.seen[name] = line
        if self.first_element is None:
            self.first_element = line
        if self.bias is not None:
            self.add(where, f"{name} comes after the biases (line {self.bias}); the biases line ends the answer")
        return True

    def device(self, tokens: list[str], line: int) -> None:
        device = DEVICE_BY_NAME[tokens[0].upper()]
        name = device.name
        where = f"line {line}, {name}"
        if not self.element(name, line):
            return
        form = (f"{name} {device.model} {device.drain} {device.gate} {device.source} {device.bulk} "
                f"{device.length_key}=<length> {device.width_key}=<width>")
        if len(tokens) < 8:
            self.add(where, f"too short: expected '{form}'")
            return
        if len(tokens) > 8:  # a malformed line gives no value
            self.add(where, f"unexpected {shown(tokens[8])} after {_clip(tokens[7])}: a device line is exactly "
                            f"'{form}' (no m=, nf= or other parameters)")
            return
        model, nodes = tokens[1], tokens[2:6]
        if not _same(model, device.model):
            self.add(where, f"{name} is {_clip(model)}, the template has {device.model}")
        expected = (device.drain, device.gate, device.source, device.bulk)
        if not all(_same(n, e) for n, e in zip(nodes, expected)):
            self.add(where, f"terminals (drain gate source bulk) are {' '.join(_clip(n) for n in nodes)}; "
                            f"the template has {' '.join(expected)}")
        for token, key, what in ((tokens[6], device.length_key, "length"), (tokens[7], device.width_key, "width")):
            raw = _key_value(token, key, where, self.problems)
            if raw is None:
                if "=" in token:
                    self.add(where, f"{name}'s {what} is written {_clip(token.partition('=')[0])}; "
                                    f"the template sizes {name} with {key}")
                continue
            self.value(key, raw, "m", f"{where}, {key}", name)

    def passive(self, tokens: list[str], line: int) -> None:
        name = tokens[0].upper()
        where = f"line {line}, {name}"
        if not self.element(name, line):
            return
        a, b = PASSIVES[name]
        if len(tokens) != 4:  # a malformed line gives no value
            extra = f"unexpected {shown(tokens[4])}; " if len(tokens) > 4 else ""
            self.add(where, f"{extra}expected exactly '{name} {a} {b} {name}_value=<value>'")
            return
        if not (_same(tokens[1], a) and _same(tokens[2], b)):
            self.add(where, f"{name} connects {_clip(tokens[1])} {_clip(tokens[2])}; the template puts it between "
                            f"{a} and {b}")
        key = f"{name}_value"
        raw = _key_value(tokens[3], key, where, self.problems)
        if raw is None:
            if "=" in tokens[3]:
                self.add(where, f"{name}'s value is written {_clip(tokens[3].partition('=')[0])}; use {key}")
            return
        self.value(name, raw, _UNITS[name], f"{where}_value", name)

    def biases(self, tokens: list[str], line: int) -> None:
        where = f"line {line}"
        if self.bias is not None:
            self.add(where, f"the biases appear again (first on line {self.bias}); give them once")
            return
        self.bias = line
        if tokens and tokens[-1].endswith(".") and len(tokens[-1]) > 1:
            tokens = tokens[:-1] + [tokens[-1][:-1]]
        if not tokens:
            self.add(where, f"expected the biases '{_BIAS_FORM}' after {BIAS_PREFIX!r}")
            return
        if len(tokens) > 1:
            self.add(where, f"unexpected {shown(tokens[1])} after the biases; the line is '{_BIAS_FORM}'")
            return
        groups = [group.split("=", 4) for group in tokens[0].split(",", len(_BIAS_NAMES))]
        names = [group[:-1] for group in groups]
        if len(names) != len(_BIAS_NAMES) or not all(
                len(ns) == len(expected) and all(_same(n, e) for n, e in zip(ns, expected))
                for ns, expected in zip(names, _BIAS_NAMES)):
            self.add(where, f"the biases are written {shown(tokens[0])}; write '{_BIAS_FORM}': VINP, VINN and VIN "
                            f"are one voltage, given once")
            return
        for (key, *_), group in zip((("VIN",), ("VB1",)), groups):
            self.value(key, group[-1], "V", f"{where}, {key}", key)

    def line(self, text: str, number: int) -> None:
        tokens = _tokens(text)
        if not tokens:
            return
        where = f"line {number}"
        word = _forbidden(tokens)
        if word is not None:
            self.add(where, f"{_clip(word)!r} is not allowed in an answer: only the op-amp's sizes and biases are read")
            return
        lowered = [t.lower() for t in tokens[:len(_HEADER_WORDS) + 1]]
        if lowered == _HEADER_WORDS:
            if self.header is not None:
                self.add(where, f"the sentence {HEADER!r} appears again (first on line {self.header})")
            elif self.first_element is not None or self.bias is not None:
                self.add(where, f"the sentence {HEADER!r} must come before the netlist")
            self.header = self.header or number
            return
        if lowered[:len(_PREFIX_WORDS)] == _PREFIX_WORDS:
            self.biases(tokens[len(_PREFIX_WORDS):], number)
            return
        head = tokens[0]
        if any(_same(tokens[0].partition("=")[0], n) for names in _BIAS_NAMES for n in names):
            self.biases(tokens, number)
        elif head.isascii() and head.upper() in DEVICE_BY_NAME:
            self.device(tokens, number)
        elif head.isascii() and head.upper() in PASSIVES:
            self.passive(tokens, number)
        elif _ELEMENT.fullmatch(head):
            self.add(where, f"unexpected element {_clip(head)}; the template has only {_ELEMENTS}")
        else:
            self.add(where, f"{shown(text.strip())} is not a line of the answer format: only the template's element "
                            f"lines, the biases '{_BIAS_FORM}' and blank lines")

    def finish(self) -> None:
        for d in TEMPLATE:
            if d.name not in self.seen:
                self.add(d.name, f"missing: expected a line like '{d.name} {d.model} {d.drain} {d.gate} "
                                 f"{d.source} {d.bulk} {d.length_key}=... {d.width_key}=...'")
        for name, (a, b) in PASSIVES.items():
            if name not in self.seen:
                self.add(name, f"missing: expected '{name} {a} {b} {name}_value=...'")
        if self.bias is None:
            self.add("VIN", "missing: expected 'VINP=VINN=VIN= 605.0mV'")
            self.add("VB1", "missing: expected 'VB1=932.0mV'")
        if all(k in self.out.values for k in DESIGN_KEYS):
            self.out.design = Design.from_dict(self.out.values)


def parse_answer(text: str) -> ParsedAnswer:
    """Parse the original answer format exactly as the module docstring describes; every deviation is a problem.

    `design` is set whenever all 14 values were read, even with problems; only `ok` means the answer is clean.
    """
    out = ParsedAnswer()
    lines = _lines(text, out.problems)
    if lines is None:
        return out
    state = _Answer(out)
    for number, line in enumerate(lines, 1):
        state.line(line, number)
    state.finish()
    return out


def parse_design_json(data: object) -> ParsedAnswer:
    """A design from JSON: {"R0": 3000, ...} in SI, or {"design": {...}} as `icgen simulate --json` prints."""
    out = ParsedAnswer()
    if isinstance(data, dict) and isinstance(data.get("design"), dict):
        data = data["design"]
    if not isinstance(data, dict):
        out.problems.append(Problem("JSON", "expected an object with keys " + " ".join(DESIGN_KEYS)))
        return out
    unknown = [key for key in data if key not in DESIGN_KEYS]
    for key in unknown[:_MAX_LISTED]:
        out.problems.append(Problem(_clip(key) if isinstance(key, str) else shown(key),
                                    f"unknown key; a design has {' '.join(DESIGN_KEYS)}"))
    if len(unknown) > _MAX_LISTED:
        out.problems.append(Problem("JSON", f"{len(unknown) - _MAX_LISTED} more unknown keys"))
    for key in DESIGN_KEYS:
        if key not in data:
            out.problems.append(Problem(key, "missing"))
            continue
        raw = data[key]
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            shown_raw = shown(raw) if raw is None or isinstance(raw, bool) else f"a {type(raw).__name__}"
            out.problems.append(Problem(key, f"{shown_raw} is not a number"))
            continue
        value = _quantity(raw, _UNITS.get(key, "m"), key, out.problems)
        if value is not None:
            out.values[key] = value
    if not out.problems:
        try:
            out.design = Design.from_dict(out.values)
        except DesignError as err:  # pragma: no cover - every value is a finite float here
            out.problems.append(Problem("design", str(err)))
    return out


class _JSONRefused(ValueError):
    """A JSON text read no further: a repeated key or an over-long number."""


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _JSONRefused(f"key {shown(key)} appears twice; give each once")
        out[key] = value
    return out


def _json_number(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _JSONRefused(f"a number of {len(text)} characters; at most {MAX_NUMBER_CHARS}")
    return float(text)


def parse_design_text(text: str) -> ParsedAnswer:
    """JSON if the text starts with `{`, otherwise the original answer format."""
    size = _size_problem(text)
    if size is not None:
        return ParsedAnswer(problems=[size])
    text = text.removeprefix("\ufeff")
    if not text.lstrip().startswith("{"):
        return parse_answer(text)
    try:
        data = json.loads(text, object_pairs_hook=_unique_object, parse_int=_json_number, parse_float=_json_number)
    except json.JSONDecodeError as err:
        return ParsedAnswer(problems=[Problem(f"line {err.lineno}", f"not valid JSON: {err.msg}")])
    except _JSONRefused as err:
        return ParsedAnswer(problems=[Problem("JSON", str(err))])
    except RecursionError:
        return ParsedAnswer(problems=[Problem("JSON", "nested too deeply; a design is one flat object")])
    except ValueError as err:  # pragma: no cover - the hooks refuse what json would
        return ParsedAnswer(problems=[Problem("JSON", f"not valid JSON: {shown(str(err), 80)}")])
    return parse_design_json(data)


def read_design_file(path: str | Path) -> ParsedAnswer:
    """Parse a file (at most MAX_ANSWER_BYTES): JSON if it is JSON, otherwise the original answer format."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_ANSWER_BYTES + 1)
    if len(raw) > MAX_ANSWER_BYTES:
        return ParsedAnswer(problems=[Problem("answer", f"the file is larger than {MAX_ANSWER_BYTES} bytes (64 KiB); "
                                                        f"nothing was read")])
    return parse_design_text(raw.decode("utf-8", errors="replace"))


def parse_compact(text: str) -> ParsedAnswer:
    """Read `R0=3k C0=1p L1=622n ...` back: each of the 14 variables once, nothing else (see the module docstring)."""
    out = ParsedAnswer()
    lines = _lines(text, out.problems)
    if lines is None:
        return out
    tokens = _tokens(" ".join(lines))
    if len(tokens) > _MAX_LISTED * len(DESIGN_KEYS):
        out.problems.append(Problem("compact", f"{len(tokens)} tokens; the compact form is the {len(DESIGN_KEYS)} "
                                               f"KEY=VALUE tokens, nothing was read"))
        return out
    for number, token in enumerate(tokens, 1):
        written, sep, raw = token.partition("=")
        key = written.upper() if written.isascii() else written
        if not sep:
            out.problems.append(Problem(f"token {number}", f"{shown(token)} is not KEY=VALUE; use "
                                                           f"{' '.join(k + '=...' for k in DESIGN_KEYS[:2])} ..."))
            continue
        if key not in DESIGN_KEYS:
            out.problems.append(Problem(_clip(written), f"unknown variable; use {' '.join(DESIGN_KEYS)}"))
            continue
        if key in out.values:
            out.problems.append(Problem(key, "given twice"))
            continue
        value = _quantity(raw, VARIABLE_BY_KEY[key].answer_unit, key, out.problems)
        if value is not None:
            out.values[key] = value
    missing = [k for k in DESIGN_KEYS if k not in out.values]
    for key in missing:
        if not any(p.where == key for p in out.problems):
            out.problems.append(Problem(key, "missing"))
    if not missing:
        out.design = Design.from_dict(out.values)
    return out


FIX_KEEP = "keep"
"""The fix form's answer for a start that already meets the specs."""
FIX_MAX_FACTOR = 100.0
"""The largest scale a fix may apply to a size (and 1/this the smallest)."""
FIX_MAX_VOLTS = 0.5
"""The largest step a fix may apply to a bias voltage, in volts."""
_FIX_SCALE = re.compile(r"([A-Za-z0-9]+)\*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_FIX_SHIFT = re.compile(r"([A-Za-z0-9]+)([+-])([0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_fix(text: str, start: Design | None) -> ParsedAnswer:
    """Read a fix of `start`: `keep`, or moves such as `C0*1.4 L1*0.7 VB1+0.05` (see `format_fix`).

    Sizes (R0 C0 L1..W5) are scaled: `KEY*FACTOR` with FACTOR in [1/FIX_MAX_FACTOR, FIX_MAX_FACTOR]; the biases
    VIN and VB1 are shifted: `KEY+VOLTS` or `KEY-VOLTS`, at most FIX_MAX_VOLTS. Each key at most once, keys in any
    case, nothing else; the design is `start` with the moves applied."""
    out = ParsedAnswer()
    if start is None:
        out.problems.append(Problem("fix", "a fix needs the starting design it changes"))
        return out
    lines = _lines(text, out.problems)
    if lines is None:
        return out
    tokens = _tokens(" ".join(lines))
    if not tokens:
        out.problems.append(Problem("fix", f"empty; answer {FIX_KEEP} or moves such as C0*1.4 VB1+0.05"))
        return out
    if len(tokens) > len(DESIGN_KEYS):
        out.problems.append(Problem("fix", f"{len(tokens)} tokens; a fix has at most {len(DESIGN_KEYS)} moves, "
                                           f"nothing was read"))
        return out
    values = start.to_dict()
    if len(tokens) == 1 and _same(tokens[0], FIX_KEEP):
        out.values, out.design = values, start
        return out
    moved: set[str] = set()
    for number, token in enumerate(tokens, 1):
        where = f"token {number}"
        scale, shift = _FIX_SCALE.fullmatch(token), _FIX_SHIFT.fullmatch(token)
        match = scale or shift
        if match is None:
            out.problems.append(Problem(where, f"{shown(token)} is not a move; use KEY*FACTOR for sizes (C0*1.4) "
                                               f"and KEY+VOLTS or KEY-VOLTS for VIN and VB1 (VB1+0.05), or {FIX_KEEP}"))
            continue
        written = match.group(1)
        key = written.upper() if written.isascii() else written
        if key not in DESIGN_KEYS:
            out.problems.append(Problem(_clip(written), f"unknown variable; use {' '.join(DESIGN_KEYS)}"))
            continue
        if key in moved:
            out.problems.append(Problem(key, "moved twice"))
            continue
        moved.add(key)
        log_scale = VARIABLE_BY_KEY[key].log_scale
        amount = float(match.group(3) if shift else match.group(2))
        if log_scale and not scale:
            out.problems.append(Problem(key, f"a size is scaled, not shifted: write {key}*FACTOR"))
        elif not log_scale and not shift:
            out.problems.append(Problem(key, f"a bias is shifted in volts, not scaled: write {key}+VOLTS"))
        elif scale and not 1 / FIX_MAX_FACTOR <= amount <= FIX_MAX_FACTOR:
            out.problems.append(Problem(key, f"factor {amount:g} is outside [{1 / FIX_MAX_FACTOR:g}, "
                                             f"{FIX_MAX_FACTOR:g}]"))
        elif shift and amount > FIX_MAX_VOLTS:
            out.problems.append(Problem(key, f"a step of {amount:g} V is over {FIX_MAX_VOLTS:g} V"))
        elif scale:
            values[key] *= amount
        else:
            values[key] += amount if match.group(2) == "+" else -amount
    out.values = values
    if not out.problems:
        out.design = Design.from_dict(values)
    return out


def format_fix(start: Design, design: Design, digits: int = 2) -> str:
    """The fix that turns `start` into `design`, as `parse_fix` reads it: `keep`, or one move per changed variable
    in DESIGN_KEYS order (factors and volts with `digits` significant digits)."""
    a, b = start.to_dict(), design.to_dict()
    moves = []
    for key in DESIGN_KEYS:
        if VARIABLE_BY_KEY[key].log_scale:
            factor = b[key] / a[key]
            if not math.isclose(factor, 1.0, rel_tol=1e-6):
                moves.append(f"{key}*{factor:.{digits}g}")
        elif not math.isclose(a[key], b[key], abs_tol=1e-9):
            step = b[key] - a[key]
            moves.append(f"{key}{'+' if step > 0 else '-'}{abs(step):.{digits}g}")
    return " ".join(moves) if moves else FIX_KEEP
