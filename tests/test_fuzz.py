"""Property-based fuzzing of the parser boundary: answers, compact text, quantities, JSON designs and specs.

Contract: every input ends in a design equal to what was written, or in problems; never an exception. Mutations of
the template that must be refused are refused; the legal variants of the parse.py docstring are accepted. Each
suite prints one line of counts (see them with `pytest -s` or `-rP`).
"""
from __future__ import annotations

import copy
import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icgen.core.deck import PASSIVES, TEMPLATE, render_answer
from icgen.core.design import DESIGN_KEYS, EXAMPLE_DESIGN, Design
from icgen.core.parse import (
    BIAS_PREFIX,
    HEADER,
    MAX_ANSWER_BYTES,
    parse_answer,
    parse_compact,
    parse_design_json,
    parse_design_text,
)
from icgen.core.sampling import quantize, random_designs
from icgen.core.score import SpecError, Specs, parse_spec
from icgen.core.tech import load_technology
from icgen.core.units import MAX_NUMBER_CHARS, UnitError, format_answer, format_spice, parse_quantity
from icgen.sim.validate import validate_parsed


def _report(line: str) -> None:
    """Print a measured figure, and list it in the run's terminal summary (shown with -q too)."""
    from .conftest import SUMMARY

    print("\n" + line)
    SUMMARY.append(line)


TECH = load_technology("ptm65")
_RANDOM = random_designs(TECH, 24, seed=3)
DESIGNS = [EXAMPLE_DESIGN, *_RANDOM, *(Design(**{k: quantize(k, v) for k, v in d.to_dict().items()}) for d in _RANDOM),
           EXAMPLE_DESIGN.replace(W1=2e-4, VB1=1.5), EXAMPLE_DESIGN.replace(R0=10.0)]  # the last two are out of range
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)

# The documented forms of each unit: (suffix written after the number, its power of ten); "e-9" is an exponent.
LEGAL_FORMS = {
    "m": [("nm", -9), ("um", -6), ("n", -9), ("u", -6), ("N", -9), ("U", -6), ("µm", -6), ("\u03bcm", -6), ("µ", -6),
          ("mm", -3), ("m", -3), ("", 0), ("e-9", -9), ("e-6", -6)],
    "F": [("pF", -12), ("p", -12), ("P", -12), ("fF", -15), ("f", -15), ("nF", -9), ("n", -9), ("", 0), ("e-12", -12)],
    "Ohm": [("KOhm", 3), ("kOhm", 3), ("kohm", 3), ("k", 3), ("K", 3), ("Ohm", 0), ("", 0), ("kΩ", 3), ("Ω", 0),
            ("k\u2126", 3), ("Meg", 6), ("MOhm", 6), ("e3", 3)],
    "V": [("mV", -3), ("m", -3), ("V", 0), ("", 0), ("e-3", -3)],
}
ILLEGAL_UNITS = {
    "m": ["pF", "V", "Ohm", "mV", "Hz", "x", "nmeter", "um2", "mil", "nmm"],  # a bare F is femto: 15F is 15 fm
    "F": ["nm", "um", "V", "Ohm", "KOhm", "H", "x", "pFF", "farad"],
    "Ohm": ["V", "pF", "nm", "KV", "Hz", "x", "KOh", "Ohmm", "kΩΩ"],
    "V": ["Ohm", "nm", "mF", "x", "VV", "mVolt", "Hz", "W"],
}
CANONICAL_EXPONENT = {"nm": -9, "um": -6, "pF": -12, "Ohm": 0, "KOhm": 3, "MOhm": 6, "mV": -3}
SPACES = [" ", "  ", "\t", "\u00a0", " \u3000", "\u2009", "\x0b", "\x0c", "\x85", "\u2028", "\u202f", "\x1f", "\u1680"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\x00", "\u00ad", "\x7f", "\x01", "\u0301", "\u202e"]
GARBAGE = ["3", "/2", "%", "_", "e", "e+", "..", ")", "'", "-", "+1", "#", "x", "/", "\u00b7", ",", ";", "=", "=1", "(",
           "µ"]
HUGE = ["1e1000000", "-1e999999", "1e-99999", "1" + "0" * 60, "NaN", "inf", "Infinity", "0x10", "1_000", "١٢", "１５u",
        "1e", "1e+", ".", "-", "", "1..2", "1.2.3", "9" * 2000, "1e400", "1/2"]
JUNK_LINES = ["R1 VOUT GND 1k", "E1 VOUT 0 VINP 0 1e6", "B1 VOUT 0 V=1", "MM1 pch net3 VINP net2 VDD L1=622.0nm W1=15.0um",
              "M8", "M0 nch a b c d L1=1u W1=1u", "X1 a b opamp", ".control", ".endc", "shell rm -rf /",
              ".include /etc/passwd", ".lib x tt", ".param w=1u", ".end", "* comment", "+ m=2", "Here is the answer:",
              "Sure!", "```", "VDD VDD 0 1.2", "C1 net3 net4 C1_value=1.0pF", "R0", "C0", "M1", "VB1", "L1=622nm",
              "To achieve the given performance metrics", BIAS_PREFIX, "{", "M1 pch net3 VINP net2 VDD", "0", "-",
              HEADER + " x", "VINN=605mV"]
EXTRA_TOKENS = ["m=2", "nf=2", "W1=15.0um", "L1=622.0nm", "1", "x", ".", "$", "tc1=0", "ad=0", "VB1=0.9", "=2", ",x", "!"]
NAMES = ["pch", "nch", "net1", "net2", "net3", "net4", "VDD", "GND", "VOUT", "VINP", "VINN", "VB1", "0", "vss", "M1", "M2",
         "M9", "C0", "R0", "n1", "L1"]
KEYS = ["L1", "W1", "L2", "W2", "L3", "W3", "L4", "W4", "L5", "W5", "L", "W", "L01", "C0_value", "R0_value", "C1_value",
        "value", "C0_val", "m"]
UNIT_OF = {"R0": "Ohm", "C0": "F", "VIN": "V", "VB1": "V"}


@dataclass
class Val:
    """A written value: mantissa and suffix as written, and the power of ten the suffix stands for (the oracle)."""

    key: str
    mantissa: str
    suffix: str
    exponent: int
    tail: str = ""  # garbage after the value
    bad: bool = False  # written so that it must be refused

    def text(self) -> str:
        return self.mantissa + self.suffix + self.tail

    def value(self) -> float:
        return float(Decimal(self.mantissa).scaleb(self.exponent))


def canonical(key: str, value: float) -> Val:
    text = format_answer(value, UNIT_OF.get(key, "m"))
    number = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return Val(key, number, text[len(number):], CANONICAL_EXPONENT[text[len(number):]])


def alternative(val: Val, rnd) -> Val:
    suffix, exponent = rnd.choice(LEGAL_FORMS[UNIT_OF.get(val.key, "m")])
    mantissa = format(Decimal(val.mantissa).scaleb(val.exponent - exponent), "f")
    if rnd.random() < 0.3 and not mantissa.startswith("-"):
        mantissa = ("+" if rnd.random() < 0.5 else "0") + mantissa
    if rnd.random() < 0.3:
        mantissa += "0" if "." in mantissa else ".0"
    return Val(val.key, mantissa, suffix, exponent)


@dataclass
class Name:
    text: str


@dataclass
class KeyVal:
    key: Name
    val: Val


@dataclass
class Line:
    kind: str  # header | element | bias | blank | junk
    parts: list = field(default_factory=list)  # header: Names; element: Names and a KeyVal; bias: Names, then groups
    groups: list = field(default_factory=list)  # bias: (list of Names, Val)
    period: bool = False
    raw: str = ""  # blank and junk lines
    extra: list = field(default_factory=list)  # tokens appended after the line's own


@dataclass
class Answer:
    lines: list[Line]
    bom: bool = False
    illegal: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)

    def vals(self) -> list[Val]:
        out = []
        for line in self.lines:
            out += [p.val for p in line.parts if isinstance(p, KeyVal)] + [v for _, v in line.groups]
        return out

    def elements(self) -> list[int]:
        return [i for i, line in enumerate(self.lines) if line.kind == "element"]

    def index(self, kind: str) -> int | None:
        return next((i for i, line in enumerate(self.lines) if line.kind == kind), None)


def build(design: Design) -> Answer:
    values = design.to_dict()
    lines = []
    for d in TEMPLATE:
        names = [Name(t) for t in (d.name, d.model, d.drain, d.gate, d.source, d.bulk)]
        lines.append(Line("element", names + [KeyVal(Name(d.length_key), canonical(d.length_key, values[d.length_key])),
                                              KeyVal(Name(d.width_key), canonical(d.width_key, values[d.width_key]))]))
    for name, (a, b) in PASSIVES.items():
        lines.append(Line("element", [Name(name), Name(a), Name(b), KeyVal(Name(f"{name}_value"),
                                                                           canonical(name, values[name]))]))
    lines.append(Line("bias", groups=[([Name("VINP"), Name("VINN"), Name("VIN")], canonical("VIN", values["VIN"])),
                                      ([Name("VB1")], canonical("VB1", values["VB1"]))]))
    return Answer(lines)


def names_of(answer: Answer) -> list[Name]:
    out = []
    for line in answer.lines:
        out += [p.key if isinstance(p, KeyVal) else p for p in line.parts]
        for names, _ in line.groups:
            out += names
    return out


def random_case(text: str, rnd) -> str:
    return "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in text)


# --- legal variants: the answer must still read exactly

def m_case(a: Answer, rnd) -> None:
    for name in names_of(a):
        if rnd.random() < 0.5:
            name.text = random_case(name.text, rnd)


def m_reorder(a: Answer, rnd) -> None:
    slots = a.elements()
    moved = [a.lines[i] for i in slots]
    rnd.shuffle(moved)
    for i, line in zip(slots, moved):
        a.lines[i] = line


def m_blank(a: Answer, rnd) -> None:
    for _ in range(rnd.randint(1, 4)):
        a.lines.insert(rnd.randint(0, len(a.lines)), Line("blank", raw="".join(rnd.choice(SPACES + [""]) for _ in
                                                                               range(rnd.randint(0, 3)))))


def m_seed(a: Answer, rnd) -> None:
    if a.index("header") is None and rnd.random() < 0.7:
        a.lines.insert(0, Line("header", [Name(w) for w in HEADER.split()]))
    bias = a.index("bias")
    if bias is not None:
        if rnd.random() < 0.7 and not a.lines[bias].parts:
            a.lines[bias].parts = [Name(w) for w in BIAS_PREFIX.split()]
        a.lines[bias].period = rnd.random() < 0.7


def m_bom(a: Answer, rnd) -> None:
    a.bom = True


def m_form(a: Answer, rnd) -> None:
    for line in a.lines:
        for part in line.parts:
            if isinstance(part, KeyVal) and rnd.random() < 0.5:
                part.val = alternative(part.val, rnd)
        line.groups = [(names, alternative(v, rnd) if rnd.random() < 0.5 else v) for names, v in line.groups]


LEGAL = {"case": m_case, "reorder": m_reorder, "blank": m_blank, "seed": m_seed, "bom": m_bom, "form": m_form}


# --- mutations: each either marks the answer as one to refuse, or changes a value the oracle then expects

def pick_element(a: Answer, rnd, bias: bool = True) -> Line:
    choices = [line for line in a.lines if line.kind == "element" or (bias and line.kind == "bias")]
    return rnd.choice(choices)


def m_insert_line(a: Answer, rnd) -> None:
    if rnd.random() < 0.7:
        raw = rnd.choice(JUNK_LINES)
    else:
        raw = "".join(rnd.choice("abcXYZ019 =.,;*+-_$\t\u00a0\u200bµΩé\u2028") for _ in range(rnd.randint(1, 20)))
    a.lines.insert(rnd.randint(0, len(a.lines)), Line("junk", raw=raw))
    if not all(c.isspace() for c in raw):
        a.illegal.append("insert_line")


def m_append_token(a: Answer, rnd) -> None:
    pick_element(a, rnd).extra.append(Name(rnd.choice(EXTRA_TOKENS)))
    a.illegal.append("append_token")


def good_val(a: Answer, rnd) -> Val | None:
    vals = [v for v in a.vals() if not v.bad and not v.tail]
    return rnd.choice(vals) if vals else None


def m_garbage(a: Answer, rnd) -> None:
    val = good_val(a, rnd)
    if val is None:
        return
    if not val.suffix[-1:].isalpha() or val.suffix.startswith("e"):
        fresh = canonical(val.key, val.value())
        val.mantissa, val.suffix, val.exponent = fresh.mantissa, fresh.suffix, fresh.exponent
    val.tail += rnd.choice(GARBAGE)
    a.illegal.append("garbage")


def m_digit(a: Answer, rnd) -> None:
    val = good_val(a, rnd)
    if val is None:
        return
    positions = [i for i, c in enumerate(val.mantissa) if c.isdigit()]
    i = rnd.choice(positions)
    val.mantissa = val.mantissa[:i] + rnd.choice([d for d in "0123456789" if d != val.mantissa[i]]) + val.mantissa[i + 1:]


def m_negate(a: Answer, rnd) -> None:
    val = good_val(a, rnd)
    if val is None or val.mantissa.startswith("-"):
        return
    val.mantissa = "-" + val.mantissa.lstrip("+")


def m_unit(a: Answer, rnd) -> None:
    val = rnd.choice(a.vals())
    val.suffix = rnd.choice(ILLEGAL_UNITS[UNIT_OF.get(val.key, "m")])
    val.bad = True
    a.illegal.append("unit")


def m_huge(a: Answer, rnd) -> None:
    val = rnd.choice(a.vals())
    val.mantissa, val.suffix, val.bad = rnd.choice(HUGE), "", True
    a.illegal.append("huge")


def _insert(text: str, rnd, chars: list[str], interior: bool, avoid: str = "") -> str | None:
    positions = range(1, len(text)) if interior else range(len(text) + 1)
    positions = [i for i in positions if not (avoid and (text[i - 1:i] in avoid or text[i:i + 1] in avoid))]
    if not positions:
        return None
    i = rnd.choice(positions)
    return text[:i] + rnd.choice(chars) + text[i:]


def m_space_inside(a: Answer, rnd) -> None:
    if rnd.random() < 0.5:
        name = rnd.choice(names_of(a))
        new = _insert(name.text, rnd, [s for s in SPACES if s.strip() == ""], interior=True, avoid=",=")
        if new is not None:
            name.text = new
            a.illegal.append("space_inside")
    else:
        val = rnd.choice(a.vals())
        text = val.mantissa + val.suffix
        new = _insert(text, rnd, SPACES, interior=True)
        if new is not None:
            val.mantissa, val.suffix, val.bad = new, "", True
            a.illegal.append("space_inside")


def m_invisible(a: Answer, rnd) -> None:
    if rnd.random() < 0.5:
        name = rnd.choice(names_of(a))
        name.text = _insert(name.text, rnd, INVISIBLE, interior=False)
    else:
        val = rnd.choice(a.vals())
        val.mantissa, val.suffix, val.bad = _insert(val.mantissa + val.suffix, rnd, INVISIBLE, interior=False), "", True
    a.illegal.append("invisible")


def m_duplicate(a: Answer, rnd) -> None:
    line = rnd.choice([line for line in a.lines if line.kind in ("element", "bias", "header")])
    a.lines.insert(rnd.randint(0, len(a.lines)), copy.deepcopy(line))
    a.illegal.append("duplicate")


def m_drop_line(a: Answer, rnd) -> None:
    a.lines.remove(pick_element(a, rnd))
    a.illegal.append("drop_line")


def m_drop_token(a: Answer, rnd) -> None:
    line = pick_element(a, rnd)
    if line.kind == "bias":
        if line.parts and rnd.random() < 0.5:
            line.parts.pop(rnd.randrange(len(line.parts)))
        else:
            line.groups.pop(rnd.randrange(len(line.groups)))
    else:
        line.parts.pop(rnd.randrange(len(line.parts)))
    a.illegal.append("drop_token")


def _token_text(part) -> str:
    return (part.key.text.upper() + "=" + part.val.text()) if isinstance(part, KeyVal) else part.text.upper()


def m_swap_tokens(a: Answer, rnd) -> None:
    line = pick_element(a, rnd, bias=False)
    i, j = rnd.sample(range(len(line.parts)), 2)
    if _token_text(line.parts[i]) != _token_text(line.parts[j]):
        a.illegal.append("swap_tokens")
    line.parts[i], line.parts[j] = line.parts[j], line.parts[i]


def m_rename(a: Answer, rnd) -> None:
    line = pick_element(a, rnd, bias=False)
    name = rnd.choice([p for p in line.parts if isinstance(p, Name)])
    new = rnd.choice(NAMES)
    if new.upper() != name.text.upper():
        a.illegal.append("rename")
    name.text = new


def m_rekey(a: Answer, rnd) -> None:
    line = pick_element(a, rnd, bias=False)
    part = rnd.choice([p for p in line.parts if isinstance(p, KeyVal)])
    new = rnd.choice(KEYS)
    if new.upper() != part.key.text.upper():
        a.illegal.append("rekey")
    part.key.text = new


def m_vin_split(a: Answer, rnd) -> None:
    bias = a.index("bias")
    if bias is None:
        return
    line = a.lines[bias]
    (_, vin), (_, vb1) = line.groups[0], line.groups[-1]
    other = copy.deepcopy(vin) if rnd.random() < 0.5 else canonical("VIN", 0.7)
    n = Name
    line.groups = rnd.choice([
        [([n("VINP")], other), ([n("VINN"), n("VIN")], vin), ([n("VB1")], vb1)],
        [([n("VIN")], vin), ([n("VB1")], vb1)],
        [([n("VINP"), n("VINN")], vin), ([n("VIN")], other), ([n("VB1")], vb1)],
        [([n("VB1")], vb1), ([n("VINP"), n("VINN"), n("VIN")], vin)],
        [([n("VINP"), n("VINN"), n("VIN"), n("VB1")], vin)],
        [([n("VINP"), n("VIN"), n("VINN")], vin), ([n("VB1")], vb1)],
        [([n("VINP"), n("VINN"), n("VIN")], vin), ([n("VB1")], vb1), ([n("VINP")], other)],
    ])
    a.illegal.append("vin_split")


def m_bias_first(a: Answer, rnd) -> None:
    bias = a.index("bias")
    if bias is None:
        return
    line = a.lines.pop(bias)
    a.lines.insert(rnd.choice(a.elements()), line)
    a.illegal.append("bias_first")


def m_header_late(a: Answer, rnd) -> None:
    header = a.index("header")
    line = a.lines.pop(header) if header is not None else Line("header", [Name(w) for w in HEADER.split()])
    a.lines.insert(rnd.choice(a.elements()) + 1, line)
    a.illegal.append("header_late")


MUTATIONS = {"insert_line": m_insert_line, "append_token": m_append_token, "garbage": m_garbage, "digit": m_digit,
             "negate": m_negate, "unit": m_unit, "huge": m_huge, "space_inside": m_space_inside,
             "invisible": m_invisible, "duplicate": m_duplicate, "drop_line": m_drop_line, "drop_token": m_drop_token,
             "swap_tokens": m_swap_tokens, "rename": m_rename, "rekey": m_rekey, "vin_split": m_vin_split,
             "bias_first": m_bias_first, "header_late": m_header_late}


def render(a: Answer, rnd) -> str:
    def sep():
        return rnd.choice(SPACES[:4]) if rnd.random() < 0.7 else rnd.choice(SPACES)

    def eq():
        return rnd.choice(["=", "=", "= ", " =", " = ", "\t=\u00a0"])

    def part(p) -> str:
        return p.key.text + eq() + p.val.text() if isinstance(p, KeyVal) else p.text

    out = []
    for line in a.lines:
        if line.kind in ("blank", "junk"):
            out.append(line.raw)
            continue
        lead = rnd.choice(["", "", " ", "\t", "\u00a0"])
        if line.kind == "bias":
            groups = (rnd.choice([",", ", ", " , ", " ,", ",\t"])).join(
                eq().join(n.text for n in names) + eq() + val.text() for names, val in line.groups)
            text = sep().join([p.text for p in line.parts] + [groups] + [p.text for p in line.extra])
            text += "." if line.period else ""
        else:
            text = sep().join(part(p) for p in line.parts + line.extra)
        out.append(lead + text + rnd.choice(["", "", " ", "\u3000"]))
    end = rnd.choice(["\n", "\n", "\r\n", "\r"])
    return ("\ufeff" if a.bom else "") + end.join(out) + rnd.choice(["", end])


TEMPLATE_LINES = {d.name: [d.name, d.model, d.drain, d.gate, d.source, d.bulk, (d.length_key,), (d.width_key,)]
                  for d in TEMPLATE}
TEMPLATE_LINES.update({name: [name, a, b, (f"{name}_value",)] for name, (a, b) in PASSIVES.items()})


def same(name: Name, expected: str) -> bool:
    return name.text.isascii() and name.text.upper() == expected.upper()


def element_ok(line: Line) -> str | None:
    """The element's name when the line is exactly its template line (names compared without case)."""
    if line.extra or not line.parts or not isinstance(line.parts[0], Name):
        return None
    expected = next((t for name, t in TEMPLATE_LINES.items() if same(line.parts[0], name)), None)
    if expected is None or len(expected) != len(line.parts):
        return None
    for part, want in zip(line.parts, expected):
        if isinstance(want, tuple) != isinstance(part, KeyVal):
            return None
        if not same(part.key if isinstance(part, KeyVal) else part, want[0] if isinstance(want, tuple) else want):
            return None
    return expected[0]


def expectation(a: Answer) -> tuple[bool, dict[str, float]]:
    """(must it be accepted, the values written), read off the model, not the text, against the documented grammar."""
    legal = True
    seen: list[str] = []
    kinds = []
    for line in a.lines:
        if line.kind == "blank" or (line.kind == "junk" and all(c.isspace() for c in line.raw)):
            continue
        kinds.append(line.kind)
        if line.kind == "junk":
            legal = False
        elif line.kind == "header":
            legal &= len(line.parts) == len(HEADER.split()) and all(
                same(p, w) for p, w in zip(line.parts, HEADER.split())) and not line.extra
        elif line.kind == "bias":
            prefix_ok = not line.parts or (len(line.parts) == len(BIAS_PREFIX.split()) and all(
                same(p, w) for p, w in zip(line.parts, BIAS_PREFIX.split())))
            groups_ok = [len(names) for names, _ in line.groups] == [3, 1] and all(
                same(n, w) for n, w in zip([n for names, _ in line.groups for n in names], ["VINP", "VINN", "VIN", "VB1"]))
            legal &= prefix_ok and groups_ok and not line.extra
        else:
            name = element_ok(line)
            legal &= name is not None
            seen.append(name)
    legal &= sorted(map(str, seen)) == sorted(TEMPLATE_LINES) and kinds.count("bias") == 1 and kinds.count("header") <= 1
    legal &= kinds[-1:] == ["bias"] and ("header" not in kinds or kinds[0] == "header")
    legal &= not any(v.bad or v.tail for v in a.vals())
    written: dict[str, set[float]] = {}
    for val in a.vals():
        if not val.bad and not val.tail:
            written.setdefault(val.key, set()).add(val.value())
    if any(len(values) > 1 for values in written.values()) or set(written) != set(DESIGN_KEYS):
        legal = False
    return legal, {k: next(iter(v)) for k, v in written.items()}


@st.composite
def answers(draw):
    design = draw(st.sampled_from(DESIGNS))
    legal = draw(st.lists(st.sampled_from(sorted(LEGAL)), max_size=5))
    other = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=3))
    rnd = random.Random(draw(st.integers(0, 2**64)))
    answer = build(design)
    for kind in legal:
        LEGAL[kind](answer, rnd)
    for kind in other:
        MUTATIONS[kind](answer, rnd)
    answer.applied = legal + other
    return answer, render(answer, rnd)


def in_range(values: dict[str, float]) -> bool:
    return all(TECH.bounds[k][0] <= v <= TECH.bounds[k][1] for k, v in values.items())


def test_fuzz_answers_through_parse_and_validation():
    counts = dict(answers=0, exceptions=0, wrong=0, false=0, legal=0, refused=0, valid=0)
    failures: list[str] = []

    @fuzz(10_500)
    @given(answers())
    def run(case):
        answer, text = case
        counts["answers"] += 1
        legal, expected = expectation(answer)
        try:
            parsed = parse_answer(text)
            report = validate_parsed(parsed, TECH, run_simulation=False)
        except Exception as err:  # noqa: BLE001 - counting is the point
            counts["exceptions"] += 1
            failures.append(f"exception {err!r} on {answer.applied} {text!r}")
            return
        accepted = parsed.ok
        valid = not report.problems and report.design is not None
        counts["legal"] += legal
        counts["refused"] += not accepted
        counts["valid"] += valid
        if accepted and (not legal or parsed.design.to_dict() != expected):
            counts["wrong"] += 1
            failures.append(f"wrong accepted {answer.applied} {answer.illegal} {text!r}")
        elif valid and not in_range(parsed.design.to_dict()):
            counts["wrong"] += 1
            failures.append(f"out of range validated {text!r}")
        elif legal and not accepted:
            counts["false"] += 1
            failures.append(f"false rejection {answer.applied} {text!r}: {[str(p) for p in parsed.problems][:3]}")
        elif legal and valid != in_range(expected):
            counts["false"] += 1
            failures.append(f"validation disagrees {answer.applied} {text!r}: {[str(p) for p in report.problems][:3]}")

    run()
    _report(f"fuzz: {counts['answers']} answers, {counts['exceptions']} exceptions, {counts['wrong']} wrong accepted, "
          f"{counts['false']} false rejections ({counts['legal']} legal variants, {counts['refused']} refused, "
          f"{counts['valid']} validated)")
    assert not failures, "\n".join(failures[:5])
    assert counts["answers"] >= 10_000 and counts["legal"] >= 2_000 and counts["refused"] >= 5_000


# --- the compact form

COMPACT_JUNK = ["junk", "X1=2", "R0", "=", "gain=38", "R1=3k", "VINP=605m", "M1", ".control", ",", "R0_value=3k", "L1:622n"]


@st.composite
def compacts(draw):
    design = draw(st.sampled_from(DESIGNS))
    rnd = random.Random(draw(st.integers(0, 2**64)))
    kinds = draw(st.lists(st.sampled_from(["case", "order", "form", "digit", "junk", "garbage", "twice", "drop", "comma",
                                           "huge", "unit", "invisible", "space_inside"]), max_size=3))
    values = design.to_dict()
    tokens = []
    for key in DESIGN_KEYS:
        text = format_spice(values[key])
        number = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        exponent = {"": 0, "k": 3, "Meg": 6, "m": -3, "u": -6, "n": -9, "p": -12, "f": -15}[text[len(number):]]
        tokens.append([key, Val(key, number, text[len(number):], exponent)])
    for kind in kinds:
        good = [t for t in tokens if t[1] is not None and not t[1].bad and not t[1].tail]
        if not good:
            break
        token = rnd.choice(good)
        val = token[1]
        if kind == "case":
            token[0] = random_case(token[0], rnd)
        elif kind == "order":
            rnd.shuffle(tokens)
        elif kind == "form":
            token[1] = alternative(val, rnd)
        elif kind == "digit":
            i = rnd.choice([i for i, c in enumerate(val.mantissa) if c.isdigit()])
            val.mantissa = val.mantissa[:i] + rnd.choice([d for d in "0123456789" if d != val.mantissa[i]]) + \
                val.mantissa[i + 1:]
        elif kind == "junk":
            tokens.insert(rnd.randint(0, len(tokens)), [rnd.choice(COMPACT_JUNK), None])
        elif kind == "garbage":
            val.suffix, val.exponent = {"m": ("u", -6), "F": ("p", -12), "Ohm": ("k", 3), "V": ("m", -3)}[
                UNIT_OF.get(val.key, "m")]
            val.mantissa = format(Decimal(str(values[val.key])).scaleb(-val.exponent), "f")
            val.tail = rnd.choice(GARBAGE)
        elif kind == "twice":
            tokens.insert(rnd.randint(0, len(tokens)), copy.deepcopy(token))
        elif kind == "drop":
            tokens.remove(token)
        elif kind in ("huge", "unit", "invisible", "space_inside"):
            if kind == "huge":
                val.mantissa, val.suffix = rnd.choice(HUGE), ""
            elif kind == "unit":
                val.suffix = rnd.choice(ILLEGAL_UNITS[UNIT_OF.get(val.key, "m")])
            else:
                chars, interior = (INVISIBLE, False) if kind == "invisible" else (SPACES, True)
                new = _insert(val.mantissa + val.suffix, rnd, chars, interior)
                if new is None:
                    continue
                val.mantissa, val.suffix = new, ""
            val.bad = True
    separator = (lambda: rnd.choice([",", ", ", ";"])) if "comma" in kinds else \
        (lambda: rnd.choice(SPACES + ["\n", "\r\n", " \n "]))
    text = ""
    for key, val in tokens:
        piece = key if val is None else key + rnd.choice(["=", " = ", "=\t"]) + val.text()
        text += (separator() if text else rnd.choice(["", " ", "\n"])) + piece
    written = [val for _, val in tokens if val is not None]
    illegal = ("comma" in kinds or len(written) < len(tokens) or sorted(v.key for v in written) != sorted(DESIGN_KEYS)
               or any(v.bad or v.tail for v in written))
    return text, illegal, {v.key: v.value() for v in written if not v.bad}


def test_fuzz_compact():
    counts = dict(texts=0, exceptions=0, wrong=0, false=0)
    failures: list[str] = []

    @fuzz(2_000)
    @given(compacts())
    def run(case):
        text, illegal, expected = case
        counts["texts"] += 1
        try:
            parsed = parse_compact(text)
        except Exception as err:  # noqa: BLE001
            counts["exceptions"] += 1
            failures.append(f"exception {err!r} on {text!r}")
            return
        if parsed.ok and (illegal or parsed.design.to_dict() != expected):
            counts["wrong"] += 1
            failures.append(f"wrong accepted {text!r}")
        elif not illegal and not parsed.ok:
            counts["false"] += 1
            failures.append(f"false rejection {text!r}: {parsed.problems[:2]}")

    run()
    _report(f"fuzz compact: {counts['texts']} texts, {counts['exceptions']} exceptions, {counts['wrong']} wrong accepted, "
          f"{counts['false']} false rejections")
    assert not failures, "\n".join(failures[:5])


# --- any text at all

@fuzz(1_500)
@given(st.text(max_size=300) | st.text("M1pchnet3VINPL=W05.um \n\r\t,", max_size=300))
def test_arbitrary_text_never_raises_and_is_never_accepted(text):
    for parse in (parse_answer, parse_compact, parse_design_text):
        parsed = parse(text)
        assert parsed.problems and not parsed.ok


# --- quantities

@fuzz(1_500)
@given(st.text(max_size=80) | st.from_regex(r"\s?[+-]?[0-9.]{0,12}([eE][+-]?[0-9]{1,8})?\s?[A-Za-zµΩ]{0,5}", fullmatch=True),
       st.sampled_from(["m", "F", "Ohm", "V", "Hz", "W", ""]))
def test_parse_quantity_gives_a_finite_float_or_a_unit_error(text, unit):
    try:
        value = parse_quantity(text, unit)
    except UnitError as err:
        assert "\n" not in str(err)
        return
    assert math.isfinite(value)


@fuzz(1_500)
@given(st.floats(min_value=1e-15, max_value=1e12) | st.floats(allow_nan=False, allow_infinity=False),
       st.sampled_from(sorted(LEGAL_FORMS)), st.randoms(use_true_random=False))
def test_quantities_read_back_exactly_in_every_documented_form(value, unit, rnd):
    key = {"m": "L1", "F": "C0", "Ohm": "R0", "V": "VIN"}[unit]
    for text in (format_answer(value, unit), format_spice(value), alternative(Val(key, repr(value), "", 0), rnd).text()):
        if len(text) > MAX_NUMBER_CHARS:  # extreme magnitudes in a fixed scale: refused, never misread
            try:
                parse_quantity(text, unit)
                raise AssertionError(text)
            except UnitError as err:
                assert "longer than" in str(err)
            continue
        assert parse_quantity(text, unit) == value, text


def test_documented_and_refused_unit_forms_agree_with_the_parser():
    for unit, forms in LEGAL_FORMS.items():
        for suffix, exponent in forms:
            assert parse_quantity("1.5" + suffix, unit) == float(Decimal("1.5").scaleb(exponent)), (unit, suffix)
    for unit, suffixes in ILLEGAL_UNITS.items():
        for suffix in suffixes:
            try:
                parse_quantity("1.5" + suffix, unit)
                raise AssertionError((unit, suffix))
            except UnitError:
                pass


# --- JSON designs

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20)
                           | st.integers(min_value=10**300, max_value=10**4000),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=12)


@fuzz(1_000)
@given(st.dictionaries(st.sampled_from(DESIGN_KEYS) | st.text(max_size=4), JSON_VALUES, max_size=16) | JSON_VALUES)
def test_json_objects_never_raise(data):
    for wrapped in (data, {"design": data}):
        parsed = parse_design_json(wrapped)
        assert parsed.ok or parsed.problems


@fuzz(600)
@given(st.fixed_dictionaries({k: st.floats(allow_nan=False, allow_infinity=False) for k in DESIGN_KEYS}),
       st.booleans(), st.booleans())
def test_json_designs_read_back_exactly(values, wrap, as_text):
    data = {"design": values} if wrap else values
    for parsed in (parse_design_json(data), parse_design_text(json.dumps(data))):
        assert parsed.ok and parsed.design.to_dict() == values
    if as_text:
        texts = {k: repr(v) for k, v in values.items()}
        parsed = parse_design_json(texts)
        assert parsed.ok and parsed.design.to_dict() == values


@fuzz(400)
@given(st.text(max_size=200) | JSON_VALUES.map(lambda v: json.dumps({"design": v}, default=str))
       | st.integers(1, 40_000).map(lambda n: "{" + '"R0": [' * n + "]" * n + "}"))
def test_json_texts_never_raise(text):
    parsed = parse_design_text(text)
    assert parsed.ok or parsed.problems


# --- specs

@fuzz(1_000)
@given(st.sampled_from(["gain", "ugb", "pm", "gm", "bw", "power", "gain_db", "--ugb", "slew"]),
       st.text(max_size=60) | st.from_regex(r"[+-]?[0-9]{0,60}(\.[0-9]*)?([eE][+-]?[0-9]{1,9})?\s?(dB|deg|MHz|uW|°)?",
                                            fullmatch=True))
def test_parse_spec_gives_a_float_or_a_spec_error(name, text):
    try:
        value = parse_spec(name, text)
    except SpecError as err:
        assert "\n" not in str(err)
        return
    assert math.isfinite(value)


@fuzz(600)
@given(st.dictionaries(st.sampled_from(["gain_db", "ugb_hz", "pm_deg", "gm_db", "bw3db_hz", "power_w"]),
                       st.floats() | st.integers(min_value=-(10**400), max_value=10**400), max_size=6))
def test_specs_are_built_or_refused_with_a_spec_error(kwargs):
    try:
        Specs(**kwargs)
    except SpecError as err:
        assert "\n" not in str(err)


# --- time is linear in the input: the ratio of median times between inputs 10x apart

def per_call(fn, arg) -> float:
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn(arg)
        if time.perf_counter() - start > 0.004 or loops > 10_000:
            break
        loops *= 4
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(loops):
            fn(arg)
        samples.append((time.perf_counter() - start) / loops)
    return statistics.median(samples)


ANSWER = render_answer(EXAMPLE_DESIGN)
COMPACT = "R0=3k C0=1p L1=622n W1=15u L2=117n W2=24u L3=410n W3=22u L4=491n W4=64u L5=220n W5=24u VIN=605m VB1=932m"
SHAPES = {  # name: (parser, input of about n bytes)
    "blank lines": (parse_answer, lambda n: (" " * (n // 900) + "\n") * 899 + ANSWER),
    "spaces inside a line": (parse_answer, lambda n: ANSWER.replace("M1 pch", "M1" + " " * n + "pch")),
    "unicode spaces": (parse_answer, lambda n: ANSWER.replace("M1 pch", "M1" + "\u3000" * (n // 3) + "pch")),
    "a long token": (parse_answer, lambda n: ANSWER + "\n" + "x" * n),
    "equals signs": (parse_answer, lambda n: ANSWER + "\n" + "= " * (n // 2)),
    "commas": (parse_answer, lambda n: ANSWER.replace("605.0mV,", "605.0mV" + "," * n)),
    "digits": (parse_answer, lambda n: ANSWER.replace("W1=15.0um", "W1=" + "1" * n, 1)),
    "many tokens": (parse_answer, lambda n: ANSWER.replace("W5=24.0um", "W5=24.0um" + " m=2" * (n // 4))),
    "junk lines": (parse_answer, lambda n: ("M8 " + "x" * (n // 900) + "\n") * 899),
    "compact tokens": (parse_compact, lambda n: COMPACT + " R0=3k" * (n // 6)),
    "json nesting": (parse_design_text, lambda n: "{" + '"R0": [' * (n // 8) + "]" * (n // 8) + "}"),
    "json keys": (parse_design_text, lambda n: "{" + ", ".join(f'"k{i}": 1' for i in range(n // 13)) + "}"),
}


def test_parsing_time_is_linear_in_input_size():
    ratios = {}
    for name, (parse, make) in SHAPES.items():
        small, large = make(6_000), make(60_000)  # both under MAX_ANSWER_BYTES: parsed in full
        assert len(large.encode()) <= MAX_ANSWER_BYTES and len(large.encode()) > 5 * len(small.encode()), name
        ratios[name] = per_call(parse, large) / per_call(parse, small)
    for name, make in (("answer over the limit", lambda n: "\n" * n + ANSWER), ("compact over the limit",
                                                                                  lambda n: COMPACT + " " * n)):
        parse = parse_answer if name.startswith("answer") else parse_compact
        ratios[name] = per_call(parse, make(100_000)) / per_call(parse, make(10_000))
    for name, fn in (("quantity digits", lambda t: _refused(parse_quantity, t, "m")),
                     ("spec digits", lambda t: _refused(parse_spec, "gain", t))):
        ratios[name] = per_call(fn, "9" * 100_000) / per_call(fn, "9" * 10_000)
    _report("time ratios (10x input): " + ", ".join(f"{k} {v:.1f}" for k, v in ratios.items()))
    assert all(r < 20 for r in ratios.values()), ratios


def _refused(fn, *args):
    try:
        fn(*args)
    except (UnitError, SpecError):
        return
    raise AssertionError(args)
