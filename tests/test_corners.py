"""PVT corners: the sets a descriptor names, the deck at a corner, simulations that move with the corner, and
`icgen signoff`'s table and exit codes."""
import json

import pytest
import yaml
from click.testing import CliRunner

from icgen.cli import main
from icgen.core.corner import Corner, CornerError, parse_corner_sets
from icgen.core.deck import render_circuit
from icgen.core.design import EXAMPLE_DESIGN
from icgen.core.tech import TechError, load_technology, spice_dir


def run(*args):
    return CliRunner().invoke(main, list(args))


def deck_value(deck: str, element: str) -> str:
    return next(line.split()[-1] for line in deck.splitlines() if line.startswith(element + " "))


# ---------------------------------------------------------------- sets in the descriptor

def test_ptm65_all_is_nine_corners_of_supply_and_temperature_without_process(ptm65):
    corners = ptm65.corner_set("all")
    assert [c.name for c in corners] == [f"tt_{v}V_{t}C" for v in ("1.08", "1.2", "1.32") for t in (-40, 27, 125)]
    assert {(c.vdd_v, c.temp_c) for c in corners} == {(v, t) for v in (1.08, 1.2, 1.32) for t in (-40.0, 27.0, 125.0)}
    assert all(c.process is None for c in corners) and ptm65.corners == ()
    assert ptm65.corner_set("nominal") == (Corner("tt_1.2V_27C", None, 1.2, 27.0),)


def test_a_list_mixes_sets_and_corner_names_without_repeats(ptm65):
    corners = ptm65.corner_set("nominal, tt_1.1V_85C,all")
    assert [c.name for c in corners[:2]] == ["tt_1.2V_27C", "tt_1.1V_85C"] and len(corners) == 10
    assert corners[1] == Corner("tt_1.1V_85C", None, 1.1, 85.0)


@pytest.mark.parametrize("text, message", [
    ("typical", "neither a set nor a corner"),
    ("ss_1.2V_27C", "no process corners"),
    ("tt_1.2V_200C", "outside -55..175"),
    ("tt_0.1V_27C", "not a supply voltage"),
])
def test_unknown_corners_and_sets_are_refused(ptm65, text, message):
    with pytest.raises(CornerError, match=message):
        ptm65.corner_set(text)


def test_sky130_descriptor_names_45_corners_in_all_and_15_in_pvt15():
    """Read from the shipped YAML through the loader's own parser (the models themselves are an optional install)."""
    raw = yaml.safe_load((spice_dir() / "sky130.yaml").read_text())
    sets = parse_corner_sets(raw["corner_sets"], tuple(raw["corners"]), raw["corner"], raw["vdd_v"])
    assert len(sets["all"]) == 45 and len(sets["pvt15"]) == 15 and sets["nominal"][0].name == "tt_1.8V_27C"
    assert {c.process for c in sets["pvt15"]} == {"tt", "ff", "ss", "sf", "fs"}
    assert {c.vdd_v for c in sets["pvt15"]} == {1.8} and "ss_1.62V_125C" in {c.name for c in sets["all"]}


def test_a_descriptor_corner_set_with_a_process_it_lacks_is_refused(tmp_path, ptm65):
    raw = yaml.safe_load((spice_dir() / "ptm65.yaml").read_text())
    raw["model_file"] = str(ptm65.model_file)
    raw["corner_sets"] = {"slow": {"process": ["ss"], "temp_c": [125]}}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TechError, match="unknown process corner 'ss'"):
        load_technology(path)
    raw["corner_sets"] = {"hot": {"temp_c": [85]}}  # vdd_v defaults to the technology's; nominal is added
    path.write_text(yaml.safe_dump(raw))
    sets = load_technology(path).corner_sets
    assert [c.name for c in sets["hot"]] == ["tt_1.2V_85C"] and [c.name for c in sets["nominal"]] == ["tt_1.2V_27C"]


# ---------------------------------------------------------------- the deck at a corner

def test_the_deck_at_a_corner_has_its_supply_temperature_and_vb1_tracking_vdd(ptm65):
    cold_low = Corner.make(None, 1.08, -40)
    deck = render_circuit(EXAMPLE_DESIGN, ptm65, corner=cold_low)
    assert deck_value(deck, "VDD") == "1.08" and ".temp -40" in deck.splitlines()
    assert deck_value(deck, "VB1") == "812m"  # 932 mV - 120 mV: VDD - VB1 = 268 mV kept
    assert "VINP VINP 0 DC 605m AC 1" in deck  # VIN does not move
    fixed = render_circuit(EXAMPLE_DESIGN, ptm65, corner=Corner.make(None, 1.32, 125), bias="fixed")
    assert deck_value(fixed, "VDD") == "1.32" and ".temp 125" in fixed and deck_value(fixed, "VB1") == "932m"
    tracked = render_circuit(EXAMPLE_DESIGN, ptm65, corner=Corner.make(None, 1.32, 125))
    assert deck_value(tracked, "VB1") == "1.052" and "VINP VINP 0 DC 605m AC 1" in tracked


def test_without_a_corner_the_deck_is_unchanged(ptm65):
    deck = render_circuit(EXAMPLE_DESIGN, ptm65)
    assert ".temp" not in deck and deck_value(deck, "VDD") == "1.2" and deck_value(deck, "VB1") == "932m"


# ---------------------------------------------------------------- simulating at corners

@pytest.fixture(scope="module")
def at_corners(ptm65):
    from icgen.sim.simulate import SimConfig, SimulatorPool

    corners = {c.name: c for c in ptm65.corner_set("all")}
    out = {}
    with SimulatorPool(workers=1) as pool:
        out["none"] = next(pool.map([EXAMPLE_DESIGN], SimConfig(tech=ptm65)))[1]
        for name in ("tt_1.2V_27C", "tt_1.2V_-40C", "tt_1.2V_125C", "tt_1.08V_27C", "tt_1.32V_27C"):
            out[name] = next(pool.map([EXAMPLE_DESIGN], SimConfig(tech=ptm65, corner=corners[name])))[1]
        out["fixed_1.08"] = next(pool.map([EXAMPLE_DESIGN], SimConfig(tech=ptm65, corner=corners["tt_1.08V_27C"],
                                                                       bias="fixed")))[1]
    return out


@pytest.mark.ngspice
def test_the_nominal_corner_reproduces_the_plain_simulation_and_records_itself(at_corners):
    plain, nominal = at_corners["none"], at_corners["tt_1.2V_27C"]
    assert nominal.metrics == plain.metrics and nominal.corner.name == "tt_1.2V_27C" and plain.corner is None
    assert nominal.design == EXAMPLE_DESIGN and nominal.to_dict()["corner"]["temp_c"] == 27.0


@pytest.mark.ngspice
def test_hot_draws_more_current_and_less_gain_than_cold(at_corners):
    """The tail and M7 run near threshold (Vsg = VDD - VB1 = 268 mV): there |Vth| falling with temperature (about
    1 mV/K) outweighs the mobility loss, so the bias current, hence the power at a fixed VDD, rises with temperature,
    while the output conductance grows with the current and the DC gain falls."""
    cold, hot = at_corners["tt_1.2V_-40C"], at_corners["tt_1.2V_125C"]
    assert cold.status == hot.status == "ok"
    assert hot.metrics.power_w > 1.5 * cold.metrics.power_w
    assert hot.metrics.gain_db < cold.metrics.gain_db - 0.5
    assert hot.health.vdd_v == cold.health.vdd_v == 1.2


@pytest.mark.ngspice
def test_a_higher_supply_draws_more_power_and_a_fixed_vb1_starves_the_tail(at_corners):
    low, high, fixed = at_corners["tt_1.08V_27C"], at_corners["tt_1.32V_27C"], at_corners["fixed_1.08"]
    assert high.metrics.power_w > low.metrics.power_w and low.health.vdd_v == 1.08
    # VB1 held at 932 mV under a 1.08 V supply leaves 148 mV of Vsg: the tail all but turns off
    assert fixed.metrics.power_w < 0.1 * low.metrics.power_w


# ---------------------------------------------------------------- icgen signoff

@pytest.mark.ngspice
def test_signoff_json_has_one_row_per_corner_and_marks_the_worst():
    result = run("signoff", "--corners", "all", "--json")
    data = json.loads(result.stdout)
    assert [c["corner"]["name"] for c in data["corners"]] == [c.name for c in load_technology("ptm65").corner_set("all")]
    powers = {c["corner"]["name"]: c["metrics"]["power_w"] for c in data["corners"]}
    assert data["worst"]["power_w"] == max(powers, key=powers.get) == "tt_1.32V_125C"
    gains = {c["corner"]["name"]: c["metrics"]["gain_db"] for c in data["corners"]}
    assert data["worst"]["gain_db"] == min(gains, key=gains.get)
    assert result.exit_code == (0 if all(c["passed"] for c in data["corners"]) else 1)


@pytest.mark.ngspice
def test_signoff_exits_1_when_a_spec_fails_at_one_corner_and_0_when_all_pass(tmp_path):
    plot = tmp_path / "corners.png"
    failing = run("signoff", "--corners", "nominal,tt_1.32V_125C", "--power", "8uW", "--plot", str(plot))
    assert failing.exit_code == 1, failing.output
    rows = {line.split()[0]: line for line in failing.output.splitlines() if line.startswith("tt_")}
    assert rows["tt_1.2V_27C"].endswith("pass") and "FAIL: power" in rows["tt_1.32V_125C"]
    assert "10.28 µW*" in rows["tt_1.32V_125C"] and "FAILED at 1 of 2 corners: tt_1.32V_125C" in failing.output
    assert plot.stat().st_size > 10_000
    passing = run("signoff", "--corners", "nominal,tt_1.32V_125C", "--power", "20uW")
    assert passing.exit_code == 0, passing.output
    assert "passed at all 2 corners" in passing.output


@pytest.mark.parametrize("args, message", [
    (["--corners", "worst"], "'worst' is neither a set nor a corner; ptm65's corner sets: nominal, all"),
    (["--corners", "tt_1.2V_-60C"], "outside -55..175"),
    (["--corners", "ss_1.2V_27C"], "this technology has no process corners"),
    (["--corners", "nominal", "--mc", "0"], "--mc 0 is not a number of samples"),
    (["--pm", "fast"], "--pm"),
])
def test_signoff_bad_input_is_one_line_with_exit_code_2(args, message):
    result = run("signoff", *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
