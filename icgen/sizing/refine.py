"""Designer's moves for refining a near miss: a Newton step in a small subspace of meaningful directions.

A designer who misses power by 2x does not perturb 14 variables at random: they scale every device width (and C0
with them, R0 inversely) to trade current for phase margin, lengthen devices for gain, move VB1 to set the bias
current, and so on. Here each such move is a direction in log-design space (volts for VIN and VB1). One batch of
simulations, one step along each direction, measures how the metrics respond (a Jacobian in normalised units:
6 dB, 10 degrees, a decade); a bounded least-squares step then asks every violated spec to close with a small
margin. Steps that improve move the centre and update the Jacobian (Broyden); steps that do not shrink the trust
region.

    step = solve_step(margins_now, jacobian, usable, trust=4.0)
    design = move(centre, step, tech)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.design import DESIGN_KEYS, VARIABLE_BY_KEY, Design
from ..core.sampling import quantize
from ..core.score import SPEC_KINDS, Specs, check_specs
from ..core.tech import Technology

WIDTHS = ("W1", "W2", "W3", "W4", "W5")
LENGTHS = ("L1", "L2", "L3", "L4", "L5")
LOG_STEP = 0.3
"""One unit of a sizing direction: a factor e^0.3 = 1.35."""


@dataclass(frozen=True)
class Direction:
    """A designer's move: log-scale coefficients for sizes (per unit step) and volts for VIN/VB1."""

    name: str
    log: tuple[tuple[str, float], ...] = ()
    volts: tuple[tuple[str, float], ...] = ()


DIRECTIONS: tuple[Direction, ...] = (
    # every current and capacitance up together: same gain and UGB, more power, a faster second pole
    Direction("scale", log=tuple((w, LOG_STEP) for w in WIDTHS) + (("C0", LOG_STEP), ("R0", -LOG_STEP))),
    Direction("compensation", log=(("C0", LOG_STEP),)),  # UGB down, phase margin up
    Direction("zero", log=(("R0", LOG_STEP),)),  # the nulling resistor moves the left-half-plane zero
    Direction("length", log=tuple((x, LOG_STEP) for x in WIDTHS + LENGTHS)),  # same W/L, more output resistance
    Direction("bias", volts=(("VB1", 0.02),)),  # PMOS gates up: less tail and second-stage current
    Direction("stage2", log=(("W4", LOG_STEP), ("W5", LOG_STEP))),  # second stage wider: its current and gm up
    Direction("input", log=(("W1", LOG_STEP),)),  # input pair wider: gm1 up
    Direction("common-mode", volts=(("VIN", 0.03),)),  # input common mode: tail headroom
)
EXTRA_DIRECTIONS: tuple[Direction, ...] = (
    Direction("channel", log=tuple((x, LOG_STEP) for x in LENGTHS)),  # longer at the same W: less current, more gain
    Direction("mirror", log=(("W3", LOG_STEP),)),  # load mirror width: first-stage output level and M6's bias
    Direction("stage2-length", log=(("L4", LOG_STEP),)),  # M6 length: second-stage gain against speed
)


def move(design: Design, step: np.ndarray, tech: Technology, directions=DIRECTIONS) -> Design:
    """The design moved by `step` units along each direction, rounded to 3 significant figures, inside bounds."""
    log_shift = dict.fromkeys(DESIGN_KEYS, 0.0)
    volt_shift = dict.fromkeys(DESIGN_KEYS, 0.0)
    for t, direction in zip(step, directions):
        for key, coef in direction.log:
            log_shift[key] += t * coef
        for key, volts in direction.volts:
            volt_shift[key] += t * volts
    values = {}
    for key, value in design.to_dict().items():
        raw = value * math.exp(log_shift[key]) if VARIABLE_BY_KEY[key].log_scale else value + volt_shift[key]
        low, high = tech.bounds[key]
        values[key] = min(max(quantize(key, raw), low), high)
    return Design(**values)


def margin_vector(source, specs: Specs) -> np.ndarray:
    """Per given spec, the margin in shortfall units (>= 0 met): dB/6, degrees/10, 100 mV, decades. NaN when
    unmeasured; a missing GM on an amplifier with a UGB counts as a large margin (phase never reaches -180 degrees).
    `source`: a simulated result (every spec), or its Metrics (the open-loop six)."""
    out = []
    for check in check_specs(source, specs):
        if check.margin is None:
            out.append(math.nan)
        else:
            out.append(min(check.margin / SPEC_KINDS[check.key].scale, 3.0) if math.isinf(check.margin)
                       else check.margin / SPEC_KINDS[check.key].scale)
    return np.array(out, dtype=float)


def jacobian(base: np.ndarray, probes: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Finite differences of the margins along each direction (one unit step each); a direction whose probe did not
    give a healthy working amplifier is marked unusable and its column zeroed."""
    columns, usable = [], []
    for probe in probes:
        ok = probe is not None and not np.isnan(probe).all()
        column = np.where(np.isnan(probe) | np.isnan(base), 0.0, probe - base) if ok else np.zeros_like(base)
        columns.append(column)
        usable.append(ok)
    return np.column_stack(columns) if columns else np.zeros((len(base), 0)), np.array(usable, dtype=bool)


def solve_step(margins: np.ndarray, jac: np.ndarray, usable: np.ndarray, trust: float, target: float = 0.15,
               ridge: float = 1e-3) -> np.ndarray:
    """The smallest step (bounded by `trust` units per direction) that the linear model says lifts every margin to
    `target`: minimise sum(max(0, target - m - J t)^2) + ridge * |t|^2."""
    from scipy.optimize import minimize

    m = np.where(np.isnan(margins), 0.0, margins)

    def cost(t):
        gap = np.maximum(0.0, target - m - jac @ t)
        return float(gap @ gap + ridge * t @ t), -2 * jac.T @ gap + 2 * ridge * t

    bounds = [(-trust, trust) if u else (0.0, 0.0) for u in usable]
    result = minimize(cost, np.zeros(jac.shape[1]), jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x


def broyden(jac: np.ndarray, step: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Rank-one update so the Jacobian reproduces the observed change for the step taken."""
    norm = float(step @ step)
    if norm < 1e-12 or np.isnan(change).any():
        return jac
    return jac + np.outer(change - jac @ step, step) / norm

