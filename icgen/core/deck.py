"""Render a design: in the original answer format, and as a SPICE deck on a technology and testbench.

Decks are built only from typed values (a `Design`, a `Technology`, a `Corner`), never from user or model text,
so nothing but numbers and the template's own names reaches ngspice. At a corner (`render_circuit(..., corner=)` or
`at_corner`) VDD is the corner's, `.temp` its temperature, and VB1 tracks VDD unless the bias is `fixed`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .corner import Bias, Corner, moved_vb1
from .design import Design
from .tech import Technology
from .units import format_answer, format_spice


@dataclass(frozen=True)
class Device:
    """One MOSFET of the template: name, type as the original netlists write it, terminals, and its variables."""

    name: str
    model: str  # "pch" or "nch"
    drain: str
    gate: str
    source: str
    bulk: str
    length_key: str
    width_key: str


# The two-stage Miller op-amp, lines, order and node names as in the original netlists (GND is ngspice's
# ground). M4 is the diode side of the mirror; M1 and M3 drive net3, the high-impedance first-stage output
# (gate of M6), so VINP is the non-inverting input.
TEMPLATE: tuple[Device, ...] = (
    Device("M1", "pch", "net3", "VINP", "net2", "VDD", "L1", "W1"),
    Device("M2", "pch", "net1", "VINN", "net2", "VDD", "L1", "W1"),
    Device("M5", "pch", "net2", "VB1", "VDD", "VDD", "L2", "W2"),
    Device("M3", "nch", "net3", "net1", "GND", "GND", "L3", "W3"),
    Device("M4", "nch", "net1", "net1", "GND", "GND", "L3", "W3"),
    Device("M6", "nch", "VOUT", "net3", "GND", "GND", "L4", "W4"),
    Device("M7", "pch", "VOUT", "VB1", "VDD", "VDD", "L5", "W5"),
)
DEVICE_BY_NAME = {d.name: d for d in TEMPLATE}
# C0 from net3 to net4, R0 from net4 to VOUT: the Miller capacitor with its series zero-nulling resistor.
PASSIVES = {"C0": ("net3", "net4"), "R0": ("net4", "VOUT")}
TESTBENCHES = ("feedback", "fixed")
# The feedback testbench closes the DC loop VOUT -> VINN through LFB and grounds VINN for AC through CFB.
# At 1 Hz the divider passes |ZC/ZL| = 1/((2*pi)^2 * L*C) = 2.5e-11 of VOUT back: far below any gain here.
FEEDBACK_L_H = 1e9
FEEDBACK_C_F = 1.0
NGSPICE_SEED_MAX = 2**31 - 1
"""The largest `.options seed=N` ngspice 39 takes; it skips 0, negative and larger seeds with a warning (and then
draws from an unseeded generator), so a deck never holds one."""


def render_answer(design: Design) -> str:
    """The design in the original answer format (netlist lines with L1=...nm W1=...um, then the biases)."""
    values = design.to_dict()
    lines = []
    for d in TEMPLATE:
        lines.append(f"{d.name} {d.model} {d.drain} {d.gate} {d.source} {d.bulk} "
                     f"{d.length_key}={format_answer(values[d.length_key], 'm')} "
                     f"{d.width_key}={format_answer(values[d.width_key], 'm')}")
    lines.append(f"C0 net3 net4 C0_value={format_answer(design.C0, 'F')}")
    lines.append(f"R0 net4 VOUT R0_value={format_answer(design.R0, 'Ohm')}")
    netlist = "\n".join(lines)
    return (f"{netlist}\n"
            f"VINP=VINN=VIN= {format_answer(design.VIN, 'V')}, VB1={format_answer(design.VB1, 'V')}")


def instance_name(device: Device, tech: Technology) -> str:
    """The element name in the deck: M1 for a model, XM1 for a subcircuit device."""
    return ("X" + device.name if tech.subcircuit else device.name).lower()


def device_parameter(device: Device, tech: Technology, parameter: str) -> str:
    """ngspice's vector name of an operating-point parameter, e.g. @m1[vdsat]."""
    model = tech.pmos if device.model == "pch" else tech.nmos
    return tech.device_parameter.format(instance=instance_name(device, tech), parameter=parameter, model=model)


def at_corner(design: Design, tech: Technology, corner: Corner,
              bias: Bias | str = Bias.TRACK_VDD) -> tuple[Design, Technology]:
    """The design and technology as simulated at a corner: the technology at the corner's process, VDD and
    temperature; VB1 moved with VDD (VDD - VB1 kept) unless `bias` is fixed; VIN unchanged."""
    moved = design.replace(VB1=moved_vb1(design.VB1, tech.vdd_v, corner.vdd_v, bias))
    return moved, tech.at_corner(corner)


def render_circuit(design: Design, tech: Technology, testbench: str = "feedback", corner: Corner | None = None,
                   bias: Bias | str = Bias.TRACK_VDD, delvto: Mapping[str, float] | None = None,
                   seed: int | None = None) -> str:
    """The circuit part of the deck (models, op-amp, load, supplies, testbench), without analyses or .end; at
    `corner` when given (see `at_corner`), else at the technology's own VDD (and temperature, when it has one).
    `delvto` maps device names (M1 ... M7) to threshold offsets in volts, written as BSIM4's instance `delvto`;
    `seed` (1 ... NGSPICE_SEED_MAX) is written as `.options seed=N`, the seed of the models' own agauss() draws."""
    if testbench not in TESTBENCHES:
        raise ValueError(f"unknown testbench {testbench!r}; use one of {', '.join(TESTBENCHES)}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= NGSPICE_SEED_MAX):
        raise ValueError(f"seed {seed!r} is not an ngspice seed; use an integer from 1 to {NGSPICE_SEED_MAX}")
    delvto = dict(delvto or {})
    if delvto and (tech.subcircuit or set(delvto) - set(DEVICE_BY_NAME)):
        raise ValueError("delvto needs MOSFET instances (not subcircuits) and names among M1 ... M7")
    if corner is not None:
        design, tech = at_corner(design, tech, corner, bias)
    values = design.to_dict()
    lines = [f"* icgen two-stage Miller op-amp on {tech.name}, testbench {testbench}"]
    if seed is not None:
        lines.append(f".options seed={seed}")
    lines += tech.model_lines()
    if tech.temp_c is not None:
        lines.append(f".temp {format_spice(tech.temp_c)}")
    lines.append(f"VDD VDD 0 DC {format_spice(tech.vdd_v)}")
    for d in TEMPLATE:
        model = tech.pmos if d.model == "pch" else tech.nmos
        length = format_spice(values[d.length_key] / tech.length_unit_m)
        width = format_spice(values[d.width_key] / tech.length_unit_m)
        offset = f" delvto={format_spice(float(delvto[d.name]))}" if d.name in delvto else ""
        lines.append(f"{instance_name(d, tech).upper()} {d.drain} {d.gate} {d.source} {d.bulk} {model} "
                     f"L={length} W={width}{offset}")
    lines += [f"C0 net3 net4 {format_spice(design.C0)}", f"R0 net4 VOUT {format_spice(design.R0)}",
              f"CL VOUT 0 {format_spice(tech.cl_f)}", f"VB1 VB1 0 DC {format_spice(design.VB1)}"]
    if testbench == "feedback":
        lines += [f"VINP VINP 0 DC {format_spice(design.VIN)} AC 1",
                  f"LFB VOUT VINN {format_spice(FEEDBACK_L_H)}", f"CFB VINN 0 {format_spice(FEEDBACK_C_F)}"]
    else:  # the original set-up: both inputs held at VIN, +-0.5 V differential AC
        lines += [f"VINP VINP 0 DC {format_spice(design.VIN)} AC 0.5",
                  f"VINN VINN 0 DC {format_spice(design.VIN)} AC 0.5 180"]
    return "\n".join(lines) + "\n"


# Operating-point parameters read for every device (ngspice BSIM4 names; PMOS values come out positive).
OP_PARAMETERS = ("vgs", "vds", "vth", "vdsat", "id", "gm", "gds")


@dataclass(frozen=True)
class Sweep:
    """The AC sweep: `ac dec points_per_decade start_hz stop_hz`."""

    points_per_decade: int = 20
    start_hz: float = 1.0
    stop_hz: float = 10e9

    def __post_init__(self) -> None:
        if not (1 <= self.points_per_decade <= 1000):
            raise ValueError("points_per_decade must be between 1 and 1000")
        if not (0 < self.start_hz < self.stop_hz):
            raise ValueError("the sweep needs 0 < start_hz < stop_hz")

    def command(self) -> str:
        return f"ac dec {self.points_per_decade} {format_spice(self.start_hz)} {format_spice(self.stop_hz)}"


SUBCKT_PORTS = ("VINP", "VINN", "VOUT", "VDD", "VSS")
"""The .subckt's pins in order: inputs, output, supplies (the template's GND is VSS inside it)."""


def render_subckt(design: Design, tech: Technology, name: str = "icgen_opamp") -> str:
    """The op-amp as a `.subckt NAME VINP VINN VOUT VDD VSS` for a designer's own flow: the devices on the
    technology's model names, C0, R0, and VB1 as a DC source from VSS; no models, load or testbench (bring your own;
    the design's input common mode VIN is given in a comment)."""
    if not name.isidentifier():
        raise ValueError(f"subcircuit name {name!r} is not an identifier")
    values = design.to_dict()

    def node(net: str) -> str:
        return "VSS" if net == "GND" else net

    lines = [f"* icgen two-stage Miller op-amp sized on {tech.name}: nmos {tech.nmos}, pmos {tech.pmos} "
             f"(include their models yourself)",
             f"* bias the inputs at VIN = {format_spice(design.VIN)} V common mode; VDD = {format_spice(tech.vdd_v)} V, "
             f"load {format_spice(tech.cl_f)}F as sized",
             f".subckt {name} {' '.join(SUBCKT_PORTS)}"]
    for d in TEMPLATE:
        model = tech.pmos if d.model == "pch" else tech.nmos
        length = format_spice(values[d.length_key] / tech.length_unit_m)
        width = format_spice(values[d.width_key] / tech.length_unit_m)
        lines.append(f"{instance_name(d, tech).upper()} {node(d.drain)} {node(d.gate)} {node(d.source)} "
                     f"{node(d.bulk)} {model} L={length} W={width}")
    lines += [f"C0 net3 net4 {format_spice(design.C0)}", f"R0 net4 VOUT {format_spice(design.R0)}",
              f"VB1 VB1 VSS DC {format_spice(design.VB1)}", f".ends {name}"]
    return "\n".join(lines) + "\n"
