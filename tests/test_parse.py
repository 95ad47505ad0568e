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
    spaced = EXAMPLE_ANSWER.replace(" L", "\n   L").replace("=", " = ").replace("\n", "\r\n")
    for text in (one_line, spaced):
        parsed = parse_answer(text)
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
