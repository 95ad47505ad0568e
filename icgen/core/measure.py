"""Read the six metrics off an open-loop AC sweep and the operating point, as a designer would.

`measure(frequency_hz, response, power_w)` -> (Metrics, reason); `assess_health(op, vdd, rule)` -> Health, under a
`HealthRule` (V1_HEALTH, the shipped dataset's; V2_HEALTH, stricter: a saturation margin and gm/Id inversion).
Pure functions on arrays: the tests run them on a saved sweep without the simulator.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from .deck import OP_PARAMETERS, TEMPLATE
from .design import Metrics

# An output within this fraction of VDD from a rail is "railed": the amplifier is not biased where it works.
RAIL_FRACTION = 0.1


def _crossing(x_log: np.ndarray, y: np.ndarray, level: float, start: int = 0) -> tuple[float, int] | None:
    """First index i >= start where y goes from >= level to < level, and x_log interpolated there."""
    below = np.nonzero(y[start:] < level)[0]
    if below.size == 0:
        return None
    i = start + int(below[0])
    if i == 0:
        return None
    y0, y1 = y[i - 1], y[i]
    t = 0.0 if y0 == y1 else (y0 - level) / (y0 - y1)
    return float(x_log[i - 1] + t * (x_log[i] - x_log[i - 1])), i


def _interp_at(x_log: np.ndarray, y: np.ndarray, x: float) -> float:
    return float(np.interp(x, x_log, y))


def bode(response: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gain in dB and unwrapped phase in degrees, the phase shifted by whole turns to start within ±180°."""
    gain_db = 20 * np.log10(np.maximum(np.abs(response), 1e-300))
    phase_deg = np.degrees(np.unwrap(np.angle(response)))
    phase_deg -= 360.0 * np.round(phase_deg[0] / 360.0)
    return gain_db, phase_deg


def measure(frequency_hz: np.ndarray, response: np.ndarray, power_w: float | None) -> tuple[Metrics, str | None]:
    """Metrics of an open-loop response VOUT/VIN(diff), and the reason it is not an amplifier (None if it is).

    Gain is at the lowest frequency; BW3dB and UGB are the first crossings of gain-3 dB and 0 dB, interpolated
    linearly in dB against log frequency; PM = 180° + phase at the UGB; GM = -gain at the first -180° crossing.
    """
    f = np.asarray(frequency_hz, dtype=float)
    gain_db, phase_deg = bode(np.asarray(response, dtype=complex))
    x = np.log10(f)
    dc_gain = float(gain_db[0])
    bw = _crossing(x, gain_db, dc_gain - 3.0)
    ugb = _crossing(x, gain_db, 0.0) if dc_gain > 0 else None
    ugb_hz = 10 ** ugb[0] if ugb else None
    pm_deg = 180.0 + _interp_at(x, phase_deg, ugb[0]) if ugb else None
    # GM: where the phase first falls through -180 degrees, how far the gain is below 0 dB there
    gm_db = None
    phase_cross = _crossing(x, phase_deg, -180.0)
    if phase_cross is not None:
        gm_db = -_interp_at(x, gain_db, phase_cross[0])
    metrics = Metrics(gain_db=dc_gain, bw3db_hz=10 ** bw[0] if bw else None, ugb_hz=ugb_hz, pm_deg=pm_deg,
                      gm_db=gm_db, power_w=power_w)
    reason = None
    if abs(phase_deg[0]) > 90:
        reason = f"inverting from VINP at DC (phase {phase_deg[0]:.0f}°): the feedback would be positive"
    elif dc_gain <= 0:
        reason = f"DC gain {dc_gain:.1f} dB is not above 0 dB"
    elif ugb is None:
        reason = f"gain never falls to 0 dB below {f[-1]:.3g} Hz"
    elif pm_deg is not None and pm_deg <= 0:
        reason = f"phase margin {pm_deg:.1f}° is not positive: unstable in unity-gain feedback"
    return metrics, reason


@dataclass(frozen=True)
class DeviceOp:
    """A MOSFET's operating point; voltages as magnitudes (PMOS folded to positive, as BSIM4 reports them)."""

    name: str
    region: str  # saturation | triode | subthreshold | off
    vgs_v: float
    vds_v: float
    vth_v: float
    vdsat_v: float
    saturation_margin_v: float  # vds - vdsat; negative means triode
    id_a: float
    gm_s: float
    gds_s: float


@dataclass(frozen=True)
class Health:
    """Operating-point health: per-device regions and margins, output level, and flags read at a glance."""

    vout_v: float
    vdd_v: float
    devices: tuple[DeviceOp, ...]
    flags: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        """No railed output and every device saturated (weak inversion in saturation counts)."""
        return not self.flags

    def to_dict(self) -> dict:
        return {"healthy": self.healthy, "flags": list(self.flags), "vout_v": self.vout_v, "vdd_v": self.vdd_v,
                "devices": {d.name: {k: v for k, v in asdict(d).items() if k != "name"} for d in self.devices}}

    @classmethod
    def from_dict(cls, data: dict) -> "Health":
        devices = tuple(DeviceOp(name=n, **v) for n, v in data["devices"].items())
        return cls(vout_v=data["vout_v"], vdd_v=data["vdd_v"], devices=devices, flags=tuple(data["flags"]))


@dataclass(frozen=True)
class HealthRule:
    """What counts as a healthy operating point beyond "no railed output, no device in triode or off"."""

    min_saturation_margin_v: float = 0.0
    """A saturated device with Vds - Vdsat below this is flagged (v2: 50 mV)."""
    weak_inversion_gm_id: float | None = None
    """Weak inversion when gm/Id is at least this (1/V; v2: 20, between moderate inversion and the weak-inversion
    ceiling of about 1/(n Ut) = 25-30); None: weak inversion when Vgs < Vth, as in v1."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_saturation_margin_v < 1:
            raise ValueError("min_saturation_margin_v must be in [0, 1) volt")


V1_HEALTH = HealthRule()
"""The rule the shipped dataset v1 was made with."""
V2_HEALTH = HealthRule(min_saturation_margin_v=0.05, weak_inversion_gm_id=20.0)
"""The stricter rule of dataset v2: a 50 mV saturation margin, inversion level by gm/Id."""


def _region(p: dict[str, float], rule: HealthRule) -> str:
    if abs(p["id"]) < 1e-12:
        return "off"
    if p["vds"] < p["vdsat"]:
        return "triode"
    if rule.weak_inversion_gm_id is not None:
        return "subthreshold" if p["gm"] / abs(p["id"]) >= rule.weak_inversion_gm_id else "saturation"
    return "subthreshold" if p["vgs"] < p["vth"] else "saturation"


def assess_health(op: dict[str, float], vdd_v: float, rule: HealthRule = V1_HEALTH) -> Health:
    """Health from the op vectors keyed `M1.vdsat`, ..., `vout`: regions, margins and designer's flags."""
    devices = []
    flags = []
    for d in TEMPLATE:
        p = {name: abs(op[f"{d.name}.{name}"]) for name in OP_PARAMETERS}
        region = _region(p, rule)
        devices.append(DeviceOp(name=d.name, region=region, vgs_v=p["vgs"], vds_v=p["vds"], vth_v=p["vth"],
                                vdsat_v=p["vdsat"], saturation_margin_v=p["vds"] - p["vdsat"], id_a=p["id"],
                                gm_s=p["gm"], gds_s=p["gds"]))
    vout = op["vout"]
    if vout < RAIL_FRACTION * vdd_v:
        flags.append(f"output railed low (VOUT = {vout * 1e3:.0f} mV)")
    elif vout > (1 - RAIL_FRACTION) * vdd_v:
        flags.append(f"output railed high (VOUT = {vout * 1e3:.0f} mV of {vdd_v:g} V)")
    for dev in devices:
        if dev.region in ("triode", "off"):
            flags.append(f"{dev.name} in {dev.region}" + (f" (Vds - Vdsat = {dev.saturation_margin_v * 1e3:.0f} mV)"
                                                          if dev.region == "triode" else ""))
        elif dev.saturation_margin_v < rule.min_saturation_margin_v:
            flags.append(f"{dev.name} saturation margin {dev.saturation_margin_v * 1e3:.0f} mV < "
                         f"{rule.min_saturation_margin_v * 1e3:.0f} mV")
    return Health(vout_v=vout, vdd_v=vdd_v, devices=tuple(devices), flags=tuple(flags))


def regrade(health: Health, rule: HealthRule) -> Health:
    """The same operating point judged by another rule (e.g. V1_HEALTH): regions and flags recomputed from the
    devices' recorded Vgs, Vth, Vds, Vdsat, Id and gm; a flag that is not about the operating point (the UGB shelf)
    is dropped."""
    devices, flags = [], []
    vout, vdd = health.vout_v, health.vdd_v
    if vout < RAIL_FRACTION * vdd:
        flags.append(f"output railed low (VOUT = {vout * 1e3:.0f} mV)")
    elif vout > (1 - RAIL_FRACTION) * vdd:
        flags.append(f"output railed high (VOUT = {vout * 1e3:.0f} mV of {vdd:g} V)")
    for d in health.devices:
        p = {"id": d.id_a, "vds": d.vds_v, "vdsat": d.vdsat_v, "gm": d.gm_s, "vgs": d.vgs_v, "vth": d.vth_v}
        dev = replace(d, region=_region(p, rule))
        devices.append(dev)
        if dev.region in ("triode", "off"):
            flags.append(f"{dev.name} in {dev.region}")
        elif dev.saturation_margin_v < rule.min_saturation_margin_v:
            flags.append(f"{dev.name} saturation margin {dev.saturation_margin_v * 1e3:.0f} mV < "
                         f"{rule.min_saturation_margin_v * 1e3:.0f} mV")
    return Health(vout_v=vout, vdd_v=vdd, devices=tuple(devices), flags=tuple(flags))


def hand_estimate(op: dict[str, float], c0_f: float, cl_f: float, r0_ohm: float) -> dict[str, float]:
    """First-order textbook figures from the op small-signal parameters (for checking the simulator).

    gain = gm1/(gds1+gds3) * gm6/(gds6+gds7); UGB = gm1/(2*pi*C0); p2 = gm6/(2*pi*CL) (C0 >> parasitics);
    the zero sits at 1/(2*pi*C0*(1/gm6 - R0)); PM = 90 - atan(UGB/p2) - atan(UGB/z) for a right-half-plane z.
    """
    gm1, gds1, gds3 = op["M1.gm"], op["M1.gds"], op["M3.gds"]
    gm6, gds6, gds7 = op["M6.gm"], op["M6.gds"], op["M7.gds"]
    gain = gm1 / (gds1 + gds3) * gm6 / (gds6 + gds7)
    ugb = gm1 / (2 * math.pi * c0_f)
    p2 = gm6 / (2 * math.pi * cl_f)
    z_resistance = 1 / gm6 - r0_ohm  # positive: right-half-plane zero, adds phase lag
    pm = 90 - math.degrees(math.atan(ugb / p2))
    if z_resistance != 0:
        z = 1 / (2 * math.pi * c0_f * abs(z_resistance))
        pm += -math.degrees(math.atan(ugb / z)) if z_resistance > 0 else math.degrees(math.atan(ugb / z))
    return {"gain_db": 20 * math.log10(gain), "ugb_hz": ugb, "pm_deg": pm, "p2_hz": p2}
