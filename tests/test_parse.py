import math

import pytest

from icgen.core.deck import render_answer, render_circuit
from icgen.core.design import EXAMPLE_DESIGN
from icgen.core.parse import parse_answer, parse_design_json
from icgen.core.sampling import random_designs
from icgen.sim.validate import validate_text

EXAMPLE_ANSWER = """M1 pch net3 VINP net2 VDD L1=622.0nm W1=15.0um
M2 pch net1 VINN net2 VDD L1=622.0nm W1=15.0um
M5 pch net2 VB1 VDD VDD L2=117.0nm W2=24.0um
M3 nch net3 net1 GND GND L3=410.0nm W3=22.0um
M4 nch net1 net1 GND GND L3=410.0nm W3=22.0um
M6 nch VOUT net3 GND GND L4=491.0nm W4=64.0um
M7 pch VOUT VB1 VDD VDD L5=220.0nm W5=24.0um
C0 net3 net4 C0_value=1.0pF
R0 net4 VOUT R0_value=3.0KOhm
VINP=VINN=VIN= 605.0mV, VB1=932.0mV"""


def test_example_renders_exactly_in_the_original_format():
    assert render_answer(EXAMPLE_DESIGN) == EXAMPLE_ANSWER


def test_parse_render_round_trip_is_exact(ptm65):
    for design in random_designs(ptm65, 500):
        parsed = parse_answer(render_answer(design))
        assert parsed.problems == [] and parsed.design == design


def test_llm_style_text_parses_tolerantly():
    one_line = ("To achieve the given performance metrics, the sizes are: " + EXAMPLE_ANSWER.replace("\n", "  ")
                + ". And with biasing voltages of that. \r\n")
    split = EXAMPLE_ANSWER.replace(" L", "\n   L")
    spaced = EXAMPLE_ANSWER.replace(" L", "   L").replace("=", " = ").replace("\n", "\r\n")
    for text in (one_line, split):  # the answer format is line by line: these are not its lines
        assert parse_answer(text).problems
    parsed = parse_answer(spaced)
    assert parsed.problems == [] and parsed.design == EXAMPLE_DESIGN


def messages(text):
    return [str(p) for p in parse_answer(text).problems]


def test_swapped_mirror_terminals_are_reported_with_the_right_ones():
    text = EXAMPLE_ANSWER.replace("M4 nch net1 net1 GND GND", "M4 nch net3 net1 GND GND")
    assert messages(text) == ["line 5, M4: terminals (drain gate source bulk) are net3 net1 GND GND; "
                              "the template has net1 net1 GND GND"]


def test_wrong_device_type_and_unmatched_pair_are_reported():
    text = EXAMPLE_ANSWER.replace("M6 nch", "M6 pch").replace("M2 pch net1 VINN net2 VDD L1=622.0nm",
                                                                "M2 pch net1 VINN net2 VDD L1=700.0nm")
    found = messages(text)
    assert "line 6, M6: M6 is pch, the template has nch" in found
    assert any("line 2, M2" in m and "must be sized alike" in m for m in found)


def test_missing_and_misplaced_elements_are_reported():
    text = EXAMPLE_ANSWER.replace("R0 net4 VOUT R0_value=3.0KOhm\n", "").replace("C0 net3 net4", "C0 net3 VOUT")
    found = messages(text)
    assert "R0: missing: expected 'R0 net4 VOUT R0_value=...'" in found
    assert any("C0 connects net3 VOUT; the template puts it between net3 and net4" in m for m in found)
    assert parse_answer(text).design is None


@pytest.mark.parametrize("injection", [
    ".control\nshell touch /tmp/icgen-pwned\n.endc",
    ".include /etc/passwd",
    "M1 pch net3 VINP net2 VDD L1=622.0nm W1=15.0um\n.lib evil.lib tt",
])
def test_spice_injections_are_rejected(injection):
    parsed = parse_answer(EXAMPLE_ANSWER + "\n" + injection)
    assert any("is not allowed in an answer" in str(p) for p in parsed.problems)


def test_deck_is_rendered_from_numbers_only(ptm65):
    # even a parsed answer carrying an injection yields a deck with nothing but the template's own lines
    parsed = parse_answer(EXAMPLE_ANSWER + "\n.control\nshell rm -rf /\n.endc")
    deck = render_circuit(parsed.design, ptm65)
    assert "shell" not in deck and ".control" not in deck
    assert [line.split()[0] for line in deck.splitlines()[2:]] == [
        "VDD", "M1", "M2", "M5", "M3", "M4", "M6", "M7", "C0", "R0", "CL", "VB1", "VINP", "LFB", "CFB"]


@pytest.mark.parametrize("old, new, expect", [
    ("W1=15.0um", "W1=-15.0um", "W1: -15.0um is outside ptm65's range"),
    ("W1=15.0um", "W1=1e30", "W1: 1e+30 is outside ptm65's range"),
    ("W1=15.0um", "W1=1m", "W1: 1000.0um is outside ptm65's range"),  # a 1 mm width
    ("C0_value=1.0pF", "C0_value=NaN", "C0"),
])
def test_absurd_values_are_rejected_with_a_clear_message(ptm65, old, new, expect):
    text = EXAMPLE_ANSWER.replace(old, new).replace("M2 pch net1 VINN net2 VDD L1=622.0nm W1=15.0um",
                                                    "M2 pch net1 VINN net2 VDD L1=622.0nm " + new)
    report = validate_text(text, ptm65, run_simulation=False)
    assert not report.valid
    assert any(expect in str(p) for p in report.problems), [str(p) for p in report.problems]


def test_json_designs_accept_si_numbers_and_reject_nan():
    good = parse_design_json({"design": EXAMPLE_DESIGN.to_dict()})
    assert good.design == EXAMPLE_DESIGN
    bad = parse_design_json({**EXAMPLE_DESIGN.to_dict(), "W1": math.nan, "X9": 1})
    assert bad.design is None
    assert {p.where for p in bad.problems} == {"W1", "X9"}


# --- the answer format is exact: everything the template does not name is a problem with its line number

from icgen.core.parse import (  # noqa: E402
    HEADER,
    MAX_ANSWER_BYTES,
    MAX_ANSWER_LINES,
    parse_compact,
    parse_design_text,
    read_design_file,
)
from icgen.core.tech import load_technology  # noqa: E402
from icgen.llm.pairs import compact_completion, seed_completion  # noqa: E402
from icgen.sim.validate import validate_parsed  # noqa: E402

COMPACT = "R0=3k C0=1p L1=622n W1=15u L2=117n W2=24u L3=410n W3=22u L4=491n W4=64u L5=220n W5=24u VIN=605m VB1=932m"


def with_line(text, number, line):
    lines = text.split("\n")
    lines.insert(number - 1, line)
    return "\n".join(lines)


@pytest.mark.parametrize("extra", [
    "R1 VOUT GND 1k", "E1 VOUT 0 VINP 0 1e6", "B1 VOUT 0 V=V(VINP)*2", "MM1 pch net3 VINP net2 VDD L1=622.0nm W1=15.0um",
    "M8", "M1", "X1 VOUT GND opamp", "V1 VDD 0 1.2", "* a comment", "Here is the answer:", "C1 net3 net4 C1_value=1.0pF",
    "+ L=1u", "M3 nch net3 net1 GND GND L3=410.0nm W3=22.0um",
])
def test_extra_lines_are_problems_with_their_line_number(extra):
    parsed = parse_answer(with_line(EXAMPLE_ANSWER, 8, extra))
    assert not parsed.ok
    assert any(p.where.startswith("line 8") for p in parsed.problems), parsed.problems


@pytest.mark.parametrize("number, suffix", [
    (1, " m=2"), (1, " nf=2"), (1, " W1=15.0um"), (4, " $ comment"), (8, " 1p"), (9, " tc1=0"), (10, " VB1=932.0mV"),
    (10, " x"), (10, " ."), (1, ","), (8, "=2"),
])
def test_trailing_parameters_are_problems(number, suffix):
    lines = EXAMPLE_ANSWER.split("\n")
    lines[number - 1] += suffix
    problems = parse_answer("\n".join(lines)).problems
    assert problems and all(p.where.startswith(f"line {number}") for p in problems), problems


@pytest.mark.parametrize("bias", [
    "VINP=700.0mV, VINN=VIN= 605.0mV, VB1=932.0mV", "VINP=VINN=605.0mV, VIN=605.0mV, VB1=932.0mV",
    "VINP=VINN=VIN= 605.0mV, VINN=700.0mV, VB1=932.0mV", "VIN= 605.0mV, VB1=932.0mV",
    "VINP=VINN=VIN= 605.0mV, VB1=932.0mV, VINP=700mV", "VINP=VINN=VIN=VB1= 605.0mV", "VB1=932.0mV, VINP=VINN=VIN= 605.0mV",
    "VINP=VINN=VIN= 605.0mV VB1=932.0mV", "VINP=VINN=VIN= 605.0mV,, VB1=932.0mV", "VINP=VINN=VIN= 605.0mV",
])
def test_biases_must_be_written_as_the_template_writes_them(bias):
    parsed = parse_answer(EXAMPLE_ANSWER.replace("VINP=VINN=VIN= 605.0mV, VB1=932.0mV", bias))
    assert not parsed.ok and any(p.where.startswith("line 10") for p in parsed.problems), parsed.problems


@pytest.mark.parametrize("old, new", [
    ("605.0mV", "1/2 V"), ("932.0mV", "0.9V3"), ("932.0mV", "0.9 V"), ("3.0KOhm", "100\u00a0KOhm"), ("3.0KOhm", "3.0KOhm)"),
    ("1.0pF", "1.0pF'"), ("1.0pF", "1.0p F"), ("3.0KOhm", "3.0KOhm%"), ("932.0mV", "932.0mV.."), ("1.0pF", "1.0pF\u200b"),
    ("3.0KOhm", "3,0KOhm"), ("1.0pF", "1.0e"), ("1.0pF", "１.0pF"), ("1.0pF", "0x1p"), ("3.0KOhm", "3_000"),
])
def test_trailing_garbage_never_truncates_a_value(old, new):
    parsed = parse_answer(EXAMPLE_ANSWER.replace(old, new))
    assert not parsed.ok, new
    assert parsed.values.get("R0") != 100.0


@pytest.mark.parametrize("value", ["1e1000000", "-1e1000000", "1e-1000000", "1" + "0" * 60, "9" * 20000])
@pytest.mark.parametrize("old", ["3.0KOhm", "1.0pF", "117.0nm", "932.0mV"])
def test_huge_numbers_are_problems_not_crashes(old, value):
    parsed = parse_answer(EXAMPLE_ANSWER.replace(old, value))
    assert not parsed.ok and all("\n" not in str(p) and len(str(p)) < 300 for p in parsed.problems)


def variants():
    answer = EXAMPLE_ANSWER
    lines = answer.split("\n")
    yield "seed completion", seed_completion(EXAMPLE_DESIGN)
    yield "lower case", answer.lower()
    yield "mixed case names", answer.replace("M1 pch net3 VINP", "m1 PCH Net3 vinp").replace("C0_value", "c0_VALUE")
    yield "blank lines", "\n\n  \n" + answer.replace("\n", "\n\n") + "\n\n"
    yield "CRLF", answer.replace("\n", "\r\n") + "\r\n"
    yield "CR", answer.replace("\n", "\r")
    yield "tabs and spaces", "\t" + answer.replace(" ", " \t  ").replace("=", " = ").replace(",", " , ")
    yield "unicode spaces", answer.replace(" ", "\u00a0").replace("M2 ", "M2\u2009\u3000")
    yield "byte-order mark", "\ufeff" + answer
    yield "elements reordered", "\n".join(lines[8::-1] + lines[9:])
    yield "header and prose", f"{HEADER.upper()}\n{answer}".replace("VINP=", "And with biasing voltages of VINP=") + "."
    yield "no space after VIN=", answer.replace("VIN= ", "VIN=")
    for old, new in [("15.0um", "15u"), ("15.0um", "15um"), ("15.0um", "15µm"), ("15.0um", "0.015mm"), ("622.0nm", "622nm"),
                     ("622.0nm", "622n"), ("622.0nm", "0.622um"), ("622.0nm", "622e-9"), ("622.0nm", "6.22e-7"),
                     ("1.0pF", "1p"), ("1.0pF", "1000fF"), ("1.0pF", "1e-12"), ("3.0KOhm", "3k"), ("3.0KOhm", "3000"),
                     ("3.0KOhm", "3kΩ"), ("3.0KOhm", "3000Ohm"), ("3.0KOhm", "3kohm"), ("605.0mV", "605m"),
                     ("605.0mV", "0.605V"), ("605.0mV", "+0.605"), ("932.0mV", "932mV")]:
        yield f"{old} as {new}", answer.replace(old, new)


@pytest.mark.parametrize("name, text", list(variants()))
def test_legal_variants_read_exactly(ptm65, name, text):
    parsed = parse_answer(text)
    assert parsed.problems == [] and parsed.design == EXAMPLE_DESIGN, (name, parsed.problems)
    report = validate_parsed(parsed, ptm65, run_simulation=False)
    assert report.problems == []


@pytest.mark.parametrize("text, where", [
    (with_line(EXAMPLE_ANSWER, 3, HEADER), "line 3"),
    (EXAMPLE_ANSWER.replace("R0 net4", "VINP=VINN=VIN= 605.0mV, VB1=932.0mV\nR0 net4"), "line 10, R0"),
    (EXAMPLE_ANSWER + "\n" + EXAMPLE_ANSWER.split("\n")[-1], "line 11"),
    (HEADER + "\n" + HEADER + "\n" + EXAMPLE_ANSWER, "line 2"),
    (EXAMPLE_ANSWER.replace("VINP=", "With biasing voltages of VINP="), "line 10"),
])
def test_line_order_and_repeats(text, where):
    parsed = parse_answer(text)
    assert any(p.where == where for p in parsed.problems), parsed.problems


def test_m1_and_m2_must_be_sized_alike_in_any_order():
    lines = EXAMPLE_ANSWER.split("\n")
    lines[0] = lines[0].replace("W1=15.0um", "W1=16.0um")
    found = messages("\n".join([lines[1], lines[0]] + lines[2:]))
    assert found == ["line 2, M1: W1=16.0um differs from M2's W1; M2 and M1 must be sized alike"]


def test_input_size_is_capped():
    big = parse_answer("\n" * MAX_ANSWER_BYTES + EXAMPLE_ANSWER)
    assert [p.where for p in big.problems] == ["answer"] and "64 KiB" in big.problems[0].message
    wide = parse_answer(EXAMPLE_ANSWER + "\n" + "é" * (MAX_ANSWER_BYTES // 2))  # under the limit in characters only
    assert [p.where for p in wide.problems] == ["answer"]
    tall = parse_answer("\n" * (MAX_ANSWER_LINES - 9) + EXAMPLE_ANSWER)
    assert [p.where for p in tall.problems] == ["answer"] and "1000" in tall.problems[0].message
    assert parse_answer("\n" * (MAX_ANSWER_LINES - 10) + EXAMPLE_ANSWER).ok
    assert parse_answer(None).problems and parse_compact(b"R0=3k").problems


def test_compact_is_exact():
    assert parse_compact(COMPACT).design == EXAMPLE_DESIGN
    assert compact_completion(EXAMPLE_DESIGN) == COMPACT
    tokens = COMPACT.split()
    for legal in (" ".join(reversed(tokens)), COMPACT.lower(), COMPACT.replace("=", " = ").replace(" ", "\u00a0"),
                  "\n" + COMPACT.replace(" ", "\n") + "\n", COMPACT.replace("3k", "3.0KOhm").replace("1p", "1.0pF")):
        parsed = parse_compact(legal)
        assert parsed.problems == [] and parsed.design == EXAMPLE_DESIGN, (legal, parsed.problems)
    for wrong in (COMPACT + " junk", COMPACT + " X1=2", COMPACT.replace("605m", "605mx"), COMPACT.replace("605m", "605m3"),
                  COMPACT + " R0=3k", COMPACT + " R0=4k", COMPACT.replace(" ", ","), COMPACT.replace(" ", "; "),
                  COMPACT.replace("VIN=605m", "VIN=1e1000000"), COMPACT.replace("VIN=605m", "VIN=605m."),
                  COMPACT.replace(" VB1=932m", ""), COMPACT.replace("L1", "L١"), "To achieve: " + COMPACT):
        assert parse_compact(wrong).problems, wrong


def test_json_designs_never_raise(tmp_path):
    design = EXAMPLE_DESIGN.to_dict()
    for raw in (10**400, -(10**400), 10**5000, [[[]]], None, {}, "1e1000000", "1" * 5000, True):
        parsed = parse_design_json({**design, "W1": raw})
        assert parsed.design is None and [p.where for p in parsed.problems] == ["W1"], raw
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert parse_design_json({**design, "W1": deep}).problems
    assert parse_design_json({10**5000: 1, **design}).problems
    cases = {
        "int": '{"R0": 3000, "W1": ' + "1" * 5000 + "}",
        "big": '{"W1": 1' + "0" * 400 + "}",
        "nested": "{" + '"a": [' * 20_000 + "]" * 20_000 + "}",
        "deeper": "[" * 100_000 + "]" * 100_000,
        "twice": json_text({**design, "W1": 1e-6}).replace('"R0"', '"W1": 2e-6, "R0"'),
        "nan": json_text({**design, "W1": math.nan}),
    }
    for name, text in cases.items():
        assert parse_design_text(text).problems, name
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        assert read_design_file(path).problems, name
    good = tmp_path / "good.json"
    good.write_text("\ufeff" + json_text({"design": design}))
    assert read_design_file(good).design == EXAMPLE_DESIGN and read_design_file(good).ok
    huge = tmp_path / "huge.txt"
    huge.write_text(EXAMPLE_ANSWER + "\n" * MAX_ANSWER_BYTES)
    assert [p.where for p in read_design_file(huge).problems] == ["answer"]


def json_text(obj):
    import json

    return json.dumps(obj)


def test_every_problem_is_one_line_and_short():
    ptm65 = load_technology("ptm65")
    text = EXAMPLE_ANSWER.replace("net3 VINP", "n" * 5000 + " VINP").replace("3.0KOhm", "3" * 5000) + "\n" + "x" * 5000
    report = validate_parsed(parse_answer(text), ptm65, run_simulation=False)
    assert report.problems and all("\n" not in str(p) and len(str(p)) < 400 for p in report.problems)
