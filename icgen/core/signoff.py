"""What a designer signs off beyond the open-loop sweep: the op-amp as a unity-gain buffer (AC and steps), CMRR,
PSRR+ and PSRR-, input-referred offset and noise, output swing, area, and first-order pole/zero estimates.

Each measurement is a bench: a circuit rendered from typed values (like `deck.render_circuit`), the analyses to run,
and a pure function that reads the metric off the vectors. `BENCHES` is the registry; the simulator runs them
(`icgen.sim.simulate`, `SimConfig(signoff=True)`), tests check each against a hand-written `ngspice -b` deck.

Conventions (stated once, here):
- the unity-gain buffer is VINN wired to VOUT, the load CL on VOUT; its -3 dB bandwidth is relative to its own DC
  gain (about 0 dB); peaking is the largest gain above that DC gain;
- settling: a step at VINP of 10 mV (small) from VIN; the time after the step's start until VOUT stays within
  1 % (and 0.1 %) of the step around its final value; overshoot in % of the step;
- slew: a step of 40 % of VDD (90 % of the output swing if that is less), centred on VIN and moved inside the
  swing; on each edge, 80 % of the step over the time VOUT takes from its 10 %
  to its 90 % point;
- CMRR = |A_dm / A_cm| with the DC loop closed as in the feedback bench and AC 1 V on both inputs; PSRR+ and PSRR-
  = |A_dm / A_supply| with AC 1 V on VDD or on the ground rail; VB1 is generated from VDD (VDD - VB1 is kept), as a
  real bias would be, so it moves with VDD;
- offset: the systematic input-referred offset VIN - VOUT in the closed DC loop (VINN = VOUT at DC);
- noise: input-referred (ngspice `noise` at VINP), spot values at 1 kHz and 1 MHz, and integrated from 1 Hz to UGB;
- swing: the VOUT range of an inverting gain of -1 (two 10 MOhm resistors around VINN, VINP at VIN) over which every
  device keeps Vds - Vdsat at or above the technology's saturation margin;
- area: the sum of W*L of the seven devices plus C0 and R0 at the technology's stated densities.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .deck import FEEDBACK_C_F, FEEDBACK_L_H, TEMPLATE, device_parameter, render_circuit
from .design import Design
from .tech import Technology
from .units import format_spice

SMALL_STEP_V = 0.01
LARGE_STEP_FRACTION = 0.4
SWING_RESISTOR_OHM = 10e6
CAP_DENSITY_F_PER_M2 = 2e-3
"""Default MIM capacitor density (2 fF/um^2) when a technology states none."""
SHEET_RESISTANCE_OHM_SQ = 1000.0
"""Default high-resistance poly sheet resistance when a technology states none."""
RESISTOR_WIDTH_M = 1e-6


@dataclass(frozen=True)
class Analysis:
    """One ngspice command and the vectors read right after it."""

    command: str
    vectors: tuple[str, ...]


@dataclass(frozen=True)
class Bench:
    """A sign-off bench: its circuit (from typed values), its analyses, and what it measures from the vectors."""

    name: str
    circuit: Callable[[Design, Technology, dict], str]
    analyses: Callable[[Design, Technology, dict], tuple[Analysis, ...]]
    measure: Callable[[dict[str, np.ndarray], Design, Technology, dict], dict[str, float | None]]


@dataclass(frozen=True)
class Signoff:
    """The sign-off figures of one design (None where a figure could not be measured), and the benches' reasons."""

    buffer_bw_hz: float | None = None
    buffer_peaking_db: float | None = None
    settling_1pct_s: float | None = None
    settling_01pct_s: float | None = None
    overshoot_pct: float | None = None
    slew_rise_v_per_s: float | None = None
    slew_fall_v_per_s: float | None = None
    cmrr_db: float | None = None
    cmrr_corner_hz: float | None = None
    psrr_plus_db: float | None = None
    psrr_minus_db: float | None = None
    offset_v: float | None = None
    noise_1khz_v_rthz: float | None = None
    noise_1mhz_v_rthz: float | None = None
    noise_integrated_v: float | None = None
    swing_low_v: float | None = None
    swing_high_v: float | None = None
    area_m2: float | None = None
    itail_a: float | None = None
    gbw_a0_f3db_hz: float | None = None
    gbw_gm1_c0_hz: float | None = None
    p2_hz: float | None = None
    zero_hz: float | None = None
    zero_half_plane: str | None = None
    ugb_shelf: bool = False
    problems: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["problems"] = list(self.problems)
        return out

    @property
    def swing_v(self) -> float | None:
        if self.swing_low_v is None or self.swing_high_v is None:
            return None
        return self.swing_high_v - self.swing_low_v


# ---- circuits ----------------------------------------------------------------------------------------------------

def _lines_without_inputs(design: Design, tech: Technology) -> list[str]:
    """The feedback deck without its input sources and feedback network (everything else as rendered there)."""
    lines = render_circuit(design, tech, "fixed").splitlines()
    return [line for line in lines if not line.startswith(("VINP ", "VINN "))]


def buffer_circuit(design: Design, tech: Technology, stimulus: str) -> str:
    """VINN wired to VOUT; VINP driven by `stimulus` (an ngspice source spec such as `DC 0.6 AC 1`)."""
    return "\n".join(_lines_without_inputs(design, tech) + [f"VINP VINP 0 {stimulus}", "VFB VINN VOUT DC 0"]) + "\n"


def _feedback_with(design: Design, tech: Technology, acm: bool = False) -> list[str]:
    ac = " AC 1" if acm else ""
    lines = _lines_without_inputs(design, tech)
    lines += [f"VINP VINP 0 DC {format_spice(design.VIN)}{ac}", f"LFB VOUT VINN {format_spice(FEEDBACK_L_H)}"]
    if acm:  # common mode: the AC-ground of VINN carries the same 1 V as VINP
        lines += [f"CFB VINN ACM {format_spice(FEEDBACK_C_F)}", "VACM ACM 0 DC 0 AC 1"]
    else:
        lines += [f"CFB VINN 0 {format_spice(FEEDBACK_C_F)}"]
    return lines


def cmrr_circuit(design: Design, tech: Technology, _: dict) -> str:
    return "\n".join(_feedback_with(design, tech, acm=True)) + "\n"


def _bias_from_vdd(lines: list[str], design: Design, tech: Technology) -> list[str]:
    """VB1 generated from VDD: VDD - VB1 is kept, so the bias follows the supply."""
    drop = format_spice(round(tech.vdd_v - design.VB1, 12))
    return [f"VB1 VDD VB1 DC {drop}" if line.startswith("VB1 ") else line for line in lines]


def psrr_plus_circuit(design: Design, tech: Technology, _: dict) -> str:
    lines = _bias_from_vdd(_feedback_with(design, tech), design, tech)
    lines = [f"{line} AC 1" if line.startswith("VDD ") else line for line in lines]
    return "\n".join(lines) + "\n"


def psrr_minus_circuit(design: Design, tech: Technology, _: dict) -> str:
    """The op-amp's ground rail is node VSS, driven by AC 1 V; the load and the sources stay on ground."""
    lines = _bias_from_vdd(_feedback_with(design, tech), design, tech)
    device_names = {("X" + d.name if tech.subcircuit else d.name) for d in TEMPLATE}
    out = []
    for line in lines:
        words = line.split()
        if words and words[0].upper() in device_names:
            words = ["VSS" if w.upper() == "GND" else w for w in words]
            line = " ".join(words)
        out.append(line)
    return "\n".join(out + ["VSS VSS 0 DC 0 AC 1"]) + "\n"


def _time_constant(context: dict) -> float:
    """1/(2 pi f) of the buffer's bandwidth (from the AC bench), or of the UGB when that is missing."""
    f = context.get("buffer_bw_hz") or context.get("ugb_hz") or 1e6
    return 1.0 / (2 * math.pi * f)


def small_step_circuit(design: Design, tech: Technology, context: dict) -> str:
    tau = _time_constant(context)
    low, high = design.VIN, design.VIN + SMALL_STEP_V
    pulse = (f"PULSE({format_spice(low)} {format_spice(round(high, 12))} {format_spice(5 * tau)} "
             f"{format_spice(tau / 100)} {format_spice(tau / 100)} 1 2)")
    return buffer_circuit(design, tech, f"DC {format_spice(low)} {pulse}")


def large_step_levels(design: Design, tech: Technology, context: dict) -> tuple[float, float]:
    """The large step: 40 % of VDD (or 90 % of the output swing when that is smaller), centred on VIN but moved
    inside the output swing when VIN sits near its edge."""
    lowest = context.get("swing_low_v") if context.get("swing_low_v") is not None else 0.1 * tech.vdd_v
    highest = context.get("swing_high_v") if context.get("swing_high_v") is not None else 0.9 * tech.vdd_v
    span = min(LARGE_STEP_FRACTION * tech.vdd_v, 0.9 * (highest - lowest))
    centre = min(max(design.VIN, lowest + span / 2), highest - span / 2)
    return round(centre - span / 2, 6), round(centre + span / 2, 6)


def large_step_circuit(design: Design, tech: Technology, context: dict) -> str:
    tau = _time_constant(context)
    low, high = large_step_levels(design, tech, context)
    width = _large_step_width(context, high - low)
    pulse = (f"PULSE({format_spice(round(low, 12))} {format_spice(round(high, 12))} {format_spice(5 * tau)} "
             f"{format_spice(tau / 100)} {format_spice(tau / 100)} {format_spice(width)} 1)")
    return buffer_circuit(design, tech, f"DC {format_spice(round(low, 12))} {pulse}")


def _large_step_width(context: dict, span: float) -> float:
    """How long the large step stays high: time to slew at the tail current's rate, three times, plus settling."""
    tau = _time_constant(context)
    slew_guess = max(context.get("tail_current_a", 1e-6) / max(context.get("c0_f", 1e-12), 1e-15), 1e3)
    return 3 * span / slew_guess + 40 * tau


def swing_circuit(design: Design, tech: Technology, _: dict) -> str:
    r = format_spice(SWING_RESISTOR_OHM)
    lines = _lines_without_inputs(design, tech)
    lines += [f"VINP VINP 0 DC {format_spice(design.VIN)}", f"VS VS 0 DC {format_spice(design.VIN)}",
              f"RIN VS VINN {r}", f"RF VINN VOUT {r}"]
    return "\n".join(lines) + "\n"


def noise_circuit(design: Design, tech: Technology, _: dict) -> str:
    """The feedback bench as it is (`noise` needs the input source's AC spec)."""
    return render_circuit(design, tech, "feedback")


# ---- analyses ----------------------------------------------------------------------------------------------------

AC = "ac dec 20 1 10G"
"""The open-loop sweep's grid (CMRR and PSRR divide by the open-loop response point by point)."""
BUFFER_AC = "ac dec 20 1 10G"
PEAK_ZOOM = 0.05
"""The fine sweep around the buffer's peak spans this many decades either side, at 2000 points a decade: a barely
stable buffer's resonance is so narrow that 20, 100 and 200 points a decade read 28.8, 28.8 and 29.4 dB where
1000 read 29.5 (the README example)."""


def _tran(span_s: float) -> Analysis:
    step = span_s / 4000
    return Analysis(f"tran {format_spice(step)} {format_spice(span_s)} 0 {format_spice(step)}", ("time", "v(vout)"))


def _device_vectors(tech: Technology) -> tuple[str, ...]:
    return tuple(device_parameter(d, tech, p) for d in TEMPLATE for p in ("vds", "vdsat"))


def _swing_analyses(design: Design, tech: Technology, _: dict) -> tuple[Analysis, ...]:
    vectors = _device_vectors(tech)
    return (Analysis("save v(vout) " + " ".join(vectors), ()),
            Analysis(f"dc vs 0 {format_spice(tech.vdd_v)} {format_spice(tech.vdd_v / 240)}", ("v(vout)", *vectors)))


# ---- measurements (pure: vectors in, figures out) ---------------------------------------------------------------

def _db(x: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.maximum(np.abs(x), 1e-300))


def _first_below(f: np.ndarray, y_db: np.ndarray, level: float) -> float | None:
    """The first frequency where y falls below `level`, interpolated in dB against log frequency."""
    below = np.nonzero(y_db < level)[0]
    if below.size == 0 or below[0] == 0:
        return None
    i = int(below[0])
    x0, x1 = math.log10(f[i - 1]), math.log10(f[i])
    t = (y_db[i - 1] - level) / (y_db[i - 1] - y_db[i])
    return 10 ** (x0 + t * (x1 - x0))


def measure_buffer_ac(frequency_hz: np.ndarray, response: np.ndarray) -> dict[str, float | None]:
    """The buffer's -3 dB bandwidth (relative to its DC gain) and peaking above that DC gain; `_peak_hz` and
    `_dc_db` (for the zoom that follows, not reported) say where the coarse sweep saw the peak."""
    gain = _db(response)
    f = np.real(frequency_hz)
    return {"buffer_bw_hz": _first_below(f, gain, gain[0] - 3.0),
            "buffer_peaking_db": float(max(gain.max() - gain[0], 0.0)),
            "_peak_hz": float(f[int(np.argmax(gain))]), "_dc_db": float(gain[0])}


def measure_peak_zoom(response: np.ndarray, dc_db: float, coarse_db: float) -> dict[str, float]:
    """Peaking from a fine sweep around the coarse peak (a barely stable buffer resonates sharply)."""
    return {"buffer_peaking_db": float(max(_db(response).max() - dc_db, coarse_db, 0.0))}


def measure_step(time_s: np.ndarray, vout: np.ndarray, start_s: float, step_v: float) -> dict[str, float | None]:
    """Settling to 1 % and 0.1 % of the step (after its start) and overshoot, around the final value."""
    t, v = np.real(time_s), np.real(vout)
    final = float(np.mean(v[t >= t[-1] - 0.02 * (t[-1] - start_s)]))
    out: dict[str, float | None] = {}
    for key, tol in (("settling_1pct_s", 0.01), ("settling_01pct_s", 0.001)):
        outside = np.nonzero((t >= start_s) & (np.abs(v - final) > tol * abs(step_v)))[0]
        if outside.size and outside[-1] >= len(t) - 2:
            out[key] = None  # never settled within the window
        else:
            out[key] = float(t[outside[-1] + 1] - start_s) if outside.size else 0.0
    after = v[t >= start_s]
    peak = after.max() if step_v > 0 else after.min()
    out["overshoot_pct"] = float(max((peak - final) / step_v, 0.0) * 100)
    return out


def _crossing_time(t: np.ndarray, v: np.ndarray, level: float, rising: bool, after: float) -> float | None:
    """The first time after `after` that v crosses `level` upwards (or downwards), interpolated."""
    above = v >= level if rising else v <= level
    hits = np.nonzero(above[1:] & ~above[:-1] & (t[1:] > after))[0]
    if hits.size == 0:
        return None
    i = int(hits[0])
    frac = (level - v[i]) / (v[i + 1] - v[i]) if v[i + 1] != v[i] else 0.0
    return float(t[i] + frac * (t[i + 1] - t[i]))


def measure_slew(time_s: np.ndarray, vout: np.ndarray, low: float, high: float, rise_at: float,
                 fall_at: float) -> dict[str, float | None]:
    """Slew rate on each edge of a large step: 80 % of the step over the time from its 10 % to its 90 % point
    (V/s); None for an edge whose output never gets that far."""
    t, v = np.real(time_s), np.real(vout)
    span = high - low
    out: dict[str, float | None] = {}
    for key, rising, at, first, last in (("slew_rise_v_per_s", True, rise_at, low + 0.1 * span, low + 0.9 * span),
                                         ("slew_fall_v_per_s", False, fall_at, high - 0.1 * span, high - 0.9 * span)):
        t1 = _crossing_time(t, v, first, rising, at)
        t2 = _crossing_time(t, v, last, rising, t1) if t1 is not None else None
        out[key] = 0.8 * span / (t2 - t1) if t1 is not None and t2 is not None and t2 > t1 else None
    return out


def measure_rejection(frequency_hz: np.ndarray, wanted: np.ndarray, unwanted: np.ndarray) -> tuple[float, float | None]:
    """|wanted / unwanted| at the lowest frequency in dB, and the frequency where it has fallen by 3 dB."""
    ratio = _db(wanted) - _db(unwanted)
    return float(ratio[0]), _first_below(np.real(frequency_hz), ratio, ratio[0] - 3.0)


def measure_noise(frequency_hz: np.ndarray, inoise: np.ndarray, ugb_hz: float | None) -> dict[str, float | None]:
    """Input-referred noise density at 1 kHz and 1 MHz (V/sqrt(Hz)) and its integral from 1 Hz to the UGB (V rms)."""
    f, n = np.real(frequency_hz), np.abs(np.real(inoise))
    spot = {key: float(10 ** np.interp(math.log10(at), np.log10(f), np.log10(n)))
            for key, at in (("noise_1khz_v_rthz", 1e3), ("noise_1mhz_v_rthz", 1e6))}
    total = None
    if ugb_hz:
        upto = f <= ugb_hz
        total = float(math.sqrt(np.trapezoid(n[upto] ** 2, f[upto]))) if upto.sum() > 1 else None
    return {**spot, "noise_integrated_v": total}


def measure_swing(vout: np.ndarray, margins: np.ndarray, minimum_v: float) -> dict[str, float | None]:
    """The VOUT range over which every device's Vds - Vdsat (rows: sweep points) is at least `minimum_v`."""
    v = np.real(vout)
    ok = (np.real(margins) >= minimum_v).all(axis=1)
    if not ok.any():
        return {"swing_low_v": None, "swing_high_v": None}
    return {"swing_low_v": float(v[ok].min()), "swing_high_v": float(v[ok].max())}


def area_m2(design: Design, tech: Technology) -> float:
    """Sum of W*L of the seven devices, plus C0 and R0 at the technology's densities."""
    values = design.to_dict()
    devices = sum(values[d.width_key] * values[d.length_key] for d in TEMPLATE)
    density = float(tech.extra.get("cap_density_f_per_m2", CAP_DENSITY_F_PER_M2))
    sheet = float(tech.extra.get("sheet_resistance_ohm_sq", SHEET_RESISTANCE_OHM_SQ))
    width = float(tech.extra.get("resistor_width_m", RESISTOR_WIDTH_M))
    return devices + design.C0 / density + design.R0 / sheet * width * width


def estimates(design: Design, tech: Technology, op: dict[str, float], gain_db: float | None,
              bw3db_hz: float | None) -> dict[str, float | str | None]:
    """First-order figures from the operating point: GBW two ways, the second pole and the Miller zero."""
    gm1, gm6 = abs(op["M1.gm"]), abs(op["M6.gm"])
    zero_r = 1 / gm6 - design.R0 if gm6 > 0 else None
    zero = 1 / (2 * math.pi * design.C0 * abs(zero_r)) if zero_r else None
    return {"gbw_a0_f3db_hz": 10 ** (gain_db / 20) * bw3db_hz if gain_db is not None and bw3db_hz else None,
            "gbw_gm1_c0_hz": gm1 / (2 * math.pi * design.C0),
            "p2_hz": gm6 / (2 * math.pi * tech.cl_f),
            "zero_hz": zero, "zero_half_plane": None if zero_r is None else ("right" if zero_r > 0 else "left")}


SHELF_RATIO = 0.8
"""A UGB is honest when the buffer's -3 dB bandwidth is at least this share of it (a designer's check at PM >= 45)."""


def has_shelf(ugb_hz: float | None, buffer_bw_hz: float | None) -> bool:
    """The open-loop UGB is inflated by a zero shelf: the buffer does not reach SHELF_RATIO of it."""
    return bool(ugb_hz and (buffer_bw_hz is None or buffer_bw_hz < SHELF_RATIO * ugb_hz))


# ---- the registry -------------------------------------------------------------------------------------------------

def _buffer_ac_measure(vectors, design, tech, context):
    return measure_buffer_ac(vectors["frequency"], vectors["v(vout)"])


def _span(design, tech, context) -> float:
    low, high = large_step_levels(design, tech, context)
    return high - low


def _peak_analyses(design, tech, context) -> tuple[Analysis, ...]:
    f = context.get("_peak_hz") or 1e6
    lo, hi = f / 10 ** PEAK_ZOOM, f * 10 ** PEAK_ZOOM
    return (Analysis(f"ac dec 2000 {format_spice(float(f'{lo:.6g}'))} {format_spice(float(f'{hi:.6g}'))}",
                     ("v(vout)",)),)


def _peak_measure(vectors, design, tech, context):
    return measure_peak_zoom(vectors["v(vout)"], context["_dc_db"], context.get("buffer_peaking_db") or 0.0)


def _small_step_measure(vectors, design, tech, context):
    return measure_step(vectors["time"], vectors["v(vout)"], 5 * _time_constant(context), SMALL_STEP_V)


def _large_step_measure(vectors, design, tech, context):
    start = 5 * _time_constant(context)
    low, high = large_step_levels(design, tech, context)
    return measure_slew(vectors["time"], vectors["v(vout)"], low, high, start,
                        start + _large_step_width(context, high - low))


def _rejection_measure(key: str, corner_key: str | None):
    def measure(vectors, design, tech, context):
        ratio, corner = measure_rejection(vectors["frequency"], context["open_loop"], vectors["v(vout)"])
        return {key: ratio, **({corner_key: corner} if corner_key else {})}
    return measure


def _noise_measure(vectors, design, tech, context):
    return measure_noise(vectors["noise1.frequency"], vectors["noise1.inoise_spectrum"], context.get("ugb_hz"))


def _swing_measure(vectors, design, tech, context):
    names = _device_vectors(tech)
    margins = np.column_stack([np.abs(vectors[names[2 * i]]) - np.abs(vectors[names[2 * i + 1]])
                               for i in range(len(TEMPLATE))])
    return measure_swing(vectors["v(vout)"], margins, float(tech.extra.get("min_saturation_margin_v", 0.0)))


BENCHES: dict[str, Bench] = {b.name: b for b in (
    Bench("buffer_ac", lambda d, t, c: buffer_circuit(d, t, f"DC {format_spice(d.VIN)} AC 1"),
          lambda d, t, c: (Analysis(BUFFER_AC, ("frequency", "v(vout)")),), _buffer_ac_measure),
    Bench("buffer_peak", lambda d, t, c: buffer_circuit(d, t, f"DC {format_spice(d.VIN)} AC 1"), _peak_analyses,
          _peak_measure),
    Bench("swing", swing_circuit, _swing_analyses, _swing_measure),
    Bench("small_step", small_step_circuit, lambda d, t, c: (_tran(80 * _time_constant(c)),), _small_step_measure),
    Bench("large_step", large_step_circuit,
          lambda d, t, c: (_tran(5 * _time_constant(c) + 2 * _large_step_width(c, _span(d, t, c))),),
          _large_step_measure),
    Bench("cmrr", cmrr_circuit, lambda d, t, c: (Analysis(AC, ("frequency", "v(vout)")),),
          _rejection_measure("cmrr_db", "cmrr_corner_hz")),
    Bench("psrr_plus", psrr_plus_circuit, lambda d, t, c: (Analysis(AC, ("frequency", "v(vout)")),),
          _rejection_measure("psrr_plus_db", None)),
    Bench("psrr_minus", psrr_minus_circuit, lambda d, t, c: (Analysis(AC, ("frequency", "v(vout)")),),
          _rejection_measure("psrr_minus_db", None)),
    Bench("noise", noise_circuit,
          lambda d, t, c: (Analysis("noise v(vout) vinp dec 20 1 10G", ("noise1.frequency", "noise1.inoise_spectrum")),),
          _noise_measure),
)}
"""Bench name -> Bench, run in this order (buffer_ac first: the steps' time scale comes from its bandwidth)."""
