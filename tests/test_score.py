import math

import pytest

from icgen.core.design import Metrics
from icgen.core.score import SpecError, Specs, check_specs, parse_spec, rank_key, shortfall

METRICS = Metrics(gain_db=40.0, bw3db_hz=1e4, ugb_hz=1e6, pm_deg=60.0, gm_db=12.0, power_w=20e-6)


@pytest.mark.parametrize("option, text, value", [
    ("gain", "38dB", 38.0), ("gain", "38", 38.0), ("pm", "52deg", 52.0), ("pm", "52", 52.0), ("pm", "52°", 52.0),
    ("ugb", "10MHz", 10e6), ("ugb", "10e6", 10e6), ("ugb", "10Meg", 10e6), ("bw", "100kHz", 100e3),
    ("power", "50uW", 50e-6), ("power", "0.05mW", 50e-6), ("gm", "10dB", 10.0),
])
def test_specs_parse_with_optional_units(option, text, value):
    assert parse_spec(option, text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("option, text, message", [
    ("gain", "38 dBm", "is not a gain in dB; use 38dB or 38"), ("pm", "52rad", "is not a phase"),
    ("ugb", "fast", "is not a frequency"), ("power", "50uA", "is not a power"),
])
def test_malformed_specs_say_what_would_be_right(option, text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(option, text)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "at least one spec"), ({"pm_deg": 200}, "not a phase margin"), ({"power_w": -1}, "not a power budget"),
    ({"ugb_hz": 1e6, "bw3db_hz": 1e7}, "not below --ugb"),
    ({"gain_db": 100, "bw3db_hz": 1e6, "ugb_hz": 2e6}, "contradict"),
])
def test_impossible_or_contradictory_specs_are_refused(kwargs, message):
    with pytest.raises(SpecError, match=message):
        Specs(**kwargs)


def test_met_specs_have_zero_shortfall_and_positive_margins():
    specs = Specs(gain_db=38, pm_deg=52, ugb_hz=1e5, power_w=50e-6)
    assert shortfall(METRICS, specs) == 0
    margins = {c.key: c.margin for c in check_specs(METRICS, specs)}
    assert margins["gain_db"] == 2 and margins["pm_deg"] == 8
    assert margins["ugb_hz"] == pytest.approx(1.0) and margins["power_w"] == pytest.approx(math.log10(2.5))


def test_shortfall_is_normalised_per_spec():
    specs = Specs(gain_db=46, pm_deg=70, ugb_hz=1e7)  # 6 dB, 10 degrees and one decade short: 1 each
    assert shortfall(METRICS, specs) == pytest.approx(3.0)


def test_an_unhealthy_design_never_meets_specs():
    specs = Specs(gain_db=38)
    assert shortfall(METRICS, specs, healthy=False) > 0
    assert shortfall(METRICS, specs, status="not_amplifier") > shortfall(METRICS, specs, healthy=False)


def test_missing_gain_margin_means_infinite():
    no_crossing = Metrics(gain_db=40.0, bw3db_hz=1e4, ugb_hz=1e6, pm_deg=80.0, gm_db=None, power_w=1e-5)
    assert shortfall(no_crossing, Specs(gm_db=10)) == 0


def test_ranking_prefers_meeting_then_margin_then_power():
    specs = Specs(gain_db=38)
    better = Metrics(gain_db=45.0, bw3db_hz=1e4, ugb_hz=1e6, pm_deg=60.0, gm_db=12.0, power_w=20e-6)
    cheaper = Metrics(gain_db=40.0, bw3db_hz=1e4, ugb_hz=1e6, pm_deg=60.0, gm_db=12.0, power_w=5e-6)
    failing = Metrics(gain_db=30.0, bw3db_hz=1e4, ugb_hz=1e6, pm_deg=60.0, gm_db=12.0, power_w=1e-6)
    ranked = sorted([failing, cheaper, better], key=lambda m: rank_key(m, specs, "ok", True))
    assert ranked == [better, cheaper, failing]


@pytest.mark.parametrize("specs", [
    Specs(gain_db=38, pm_deg=52), Specs(gain_db=60, ugb_hz=5e6, pm_deg=45, power_w=20e-6),
    Specs(gm_db=15, bw3db_hz=1e4, pm_deg=60), Specs(power_w=1e-6),
])
def test_vectorised_ranking_agrees_with_rank_key_on_dataset_rows(specs):
    from pathlib import Path

    import numpy as np

    from icgen.core.score import table_rank
    from icgen.data.dataset import load_dataset

    table = load_dataset(Path(__file__).resolve().parent.parent / "data" / "ptm65")
    rows = table[table["working"]].sample(n=400, random_state=1)
    short, worst, power = table_rank(rows, specs)
    for i, (_, row) in enumerate(rows.iterrows()):
        m = Metrics(**{k: (None if np.isnan(row[k]) else float(row[k])) for k in Metrics.__dataclass_fields__})
        expected = rank_key(m, specs, "ok", True)
        assert short[i] == pytest.approx(expected[0], abs=1e-12)
        assert worst[i] == pytest.approx(expected[1], abs=1e-12) or (math.isinf(worst[i]) and math.isinf(expected[1])
                                                                      and worst[i] == expected[1])
        assert power[i] == pytest.approx(expected[2])


@pytest.mark.parametrize("option", ["gain", "gm", "pm", "ugb", "bw", "power"])
@pytest.mark.parametrize("text", ["1e1000000", "-1e1000000", "1e-1000000", "9" * 10000, "٣٨", "1_0"])
def test_absurd_spec_text_is_a_one_line_spec_error(option, text):
    with pytest.raises(SpecError) as err:
        parse_spec(option, text)
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


@pytest.mark.parametrize("key, inside, outside, says", [
    ("gain_db", (-19.9, 0, 199.9), (-20, -5e3, 200), "more than -20 and less than 200 dB"),
    ("pm_deg", (0.1, 179.9), (0, -1, 180), "more than 0 and less than 180"),
    ("gm_db", (0, 199.9), (-0.1, 200), "0 or more and less than 200 dB"),
    ("ugb_hz", (1e-3, 9.9e11), (0, -1, 1e12), "more than 0 and less than 1e12 Hz"),
    ("bw3db_hz", (1e-3, 9.9e11), (0, 1e12), "more than 0 and less than 1e12 Hz"),
    ("power_w", (1e-12, 9.9), (0, -1, 10), "more than 0 and less than 10 W"),
])
def test_range_checks_enforce_exactly_what_they_say(key, inside, outside, says):
    for value in inside:
        assert getattr(Specs(**{key: value}), key) == value
    for value in (*outside, math.nan, math.inf):
        with pytest.raises(SpecError, match=says):
            Specs(**{key: value})


def test_specs_refuse_non_numbers_and_unknown_names():
    for value in ("38", 10**400, True, [38]):
        with pytest.raises(SpecError):
            Specs(gain_db=value)
    with pytest.raises(SpecError, match="unknown spec"):
        parse_spec("jitter", "1")
