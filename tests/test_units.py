import math

import numpy as np
import pytest

from icgen.core.units import UnitError, format_answer, format_si, format_spice, parse_quantity


@pytest.mark.parametrize("text, unit, value", [
    ("622.0nm", "m", 622e-9), ("15.0um", "m", 15e-6), ("1.0pF", "F", 1e-12), ("3.0KOhm", "Ohm", 3e3),
    ("605.0mV", "V", 0.605), ("932.0mV", "V", 0.932), ("622n", "m", 622e-9), ("15u", "m", 15e-6),
    ("1p", "F", 1e-12), ("3k", "Ohm", 3e3), ("1Meg", "Ohm", 1e6), ("1MEG", "", 1e6), ("2G", "", 2e9),
    ("1m", "m", 1e-3),      # bare SPICE: m is milli, even for a length
    ("131f", "F", 131e-15), ("131F", "F", 131e-15),  # f is femto, not farad
    ("2V", "V", 2.0), ("5W", "W", 5.0),
    ("1M", "", 1e-3),       # bare SPICE: M is milli too
    ("10MHz", "Hz", 10e6),  # with a unit written, M is mega
    ("50uW", "W", 50e-6), ("1e-12", "F", 1e-12), (".5", "V", 0.5), ("1.2V", "V", 1.2), ("100fF", "F", 100e-15),
    ("3.3kohm", "Ohm", 3300.0), ("1uF", "F", 1e-6), ("500Ohm", "Ohm", 500.0),
])
def test_parse_quantity_reads_spice_and_answer_forms(text, unit, value):
    assert parse_quantity(text, unit) == value


@pytest.mark.parametrize("text", ["abc", "12 parsecs", "1.2.3n", "", "5 xF"])
def test_parse_quantity_rejects_non_quantities(text):
    with pytest.raises(UnitError):
        parse_quantity(text, "F")


@pytest.mark.parametrize("value, unit, text", [
    (622e-9, "m", "622.0nm"), (15e-6, "m", "15.0um"), (1e-12, "F", "1.0pF"), (3e3, "Ohm", "3.0KOhm"),
    (0.605, "V", "605.0mV"), (0.932, "V", "932.0mV"), (117e-9, "m", "117.0nm"), (1.25e-12, "F", "1.25pF"),
    (470.0, "Ohm", "470.0Ohm"), (1.5e6, "Ohm", "1.5MOhm"),
])
def test_format_answer_prints_the_original_forms(value, unit, text):
    assert format_answer(value, unit) == text


def test_format_spice_is_exact_engineering():
    assert format_spice(622e-9) == "622n"
    assert format_spice(3000.0) == "3k"
    assert format_spice(1e9) == "1G"
    assert format_spice(2.5e6) == "2.5Meg"  # never M, which SPICE reads as milli
    assert format_spice(0.0) == "0"


def test_round_trips_are_exact_for_random_floats():
    rng = np.random.default_rng(1)
    for _ in range(2000):
        value = float(10 ** rng.uniform(-14, 8))
        assert parse_quantity(format_spice(value)) == value
        for unit in ("m", "F", "Ohm", "V"):
            assert parse_quantity(format_answer(value, unit), unit) == value
            assert parse_quantity(format_spice(value), unit) == value


def test_nonfinite_values_are_refused():
    with pytest.raises(UnitError):
        parse_quantity(math.nan)
    with pytest.raises(UnitError):
        format_spice(math.inf)


def test_format_si_is_for_people():
    assert format_si(12.3456e6, "Hz") == "12.35 MHz"
    assert format_si(3422.19, "Hz") == "3.422 kHz"
    assert format_si(None, "Hz") == "—"


@pytest.mark.parametrize("text", ["1e1000000", "-1e1000000", "1e309", "1e-1000000", "1e-400", "1e99999999999999999999999",
                                  "9" * 20000, "1" + "0" * 60, " " * 30 + "1" * 45 + "n" * 6])
def test_out_of_range_and_overlong_numbers_are_unit_errors(text):
    with pytest.raises(UnitError) as err:
        parse_quantity(text, "m")
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_float_edges_still_read():
    assert parse_quantity("1e308") == 1e308 and parse_quantity("5e-324") == 5e-324 and parse_quantity("0e999999") == 0.0
    assert parse_quantity("1" * 50) == float("1" * 50)
    with pytest.raises(UnitError):
        parse_quantity(10**400)
    with pytest.raises(UnitError):
        parse_quantity(None)


@pytest.mark.parametrize("text", ["１５u", "٣n", "1_000", "0x10", "1,5", "15 u m", "15um)", "inf", "NaN", "1e", "+-1", "١"])
def test_only_ascii_numbers_and_known_suffixes(text):
    with pytest.raises(UnitError):
        parse_quantity(text, "m")


@pytest.mark.parametrize("text, unit, value", [
    ("15µm", "m", 15e-6), ("15\u03bcm", "m", 15e-6), ("3kΩ", "Ohm", 3e3), ("3k\u2126", "Ohm", 3e3), ("100Ω", "Ohm", 100.0),
    ("2MΩ", "Ohm", 2e6), ("3.0\u00a0KOhm", "Ohm", 3e3), ("\u200a605 mV\u3000", "V", 0.605),
])
def test_micro_and_ohm_signs_and_unicode_spaces(text, unit, value):
    assert parse_quantity(text, unit) == value
