"""Sign-off across PVT corners: one design simulated at every corner of a set and checked against specs.

    report = signoff_corners(design, tech, tech.corner_set("all"), specs)   # one row per corner
    print(report.table()); report.passed        # `icgen signoff DESIGN --corners all --pm 52`

A corner passes when the design is a working amplifier there (status ok), its operating point is healthy, and every
given spec holds; the report marks the worst corner of each metric.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.corner import BIASES, Bias, Corner
from ..core.deck import TESTBENCHES
from ..core.design import METRIC_KEYS, METRIC_UNITS, Design, Metrics
from ..core.errors import SPEC_OPTIONS, ConfigError
from ..core.score import SPEC_KINDS, SpecCheck, Specs, check_specs, format_spec
from ..core.status import Status
from ..core.tech import Technology
from ..core.units import format_si

if TYPE_CHECKING:
    from ..core.measure import DeviceOp
    from .simulate import SimResult

WORST_MARK = "*"
"""Printed after the value of the worst corner of each metric."""


@dataclass(frozen=True)
class CornerSignoffConfig:
    """How `icgen signoff` runs: which corners, testbench and bias (the corners run in turn on one worker)."""

    corners: str = "all"
    """A corner set of the technology (`all`, `nominal`) or a comma-separated list of sets and corner names."""
    testbench: str = "feedback"
    """feedback (the DC loop closed, the default) or fixed (both inputs at VIN)."""
    bias: str = Bias.TRACK_VDD
    """How VB1 follows a corner's supply: track-vdd (VDD - VB1 kept) or fixed (VB1 held from ground)."""
    timeout_s: float = 30.0
    """A simulation that runs longer is failed (after one retry on a fresh worker)."""

    def __post_init__(self) -> None:
        if self.testbench not in TESTBENCHES:
            raise ConfigError(f"{{testbench}} {self.testbench!r} is unknown; use one of {', '.join(TESTBENCHES)}")
        if self.bias not in BIASES:
            raise ConfigError(f"{{bias}} {self.bias!r} is unknown; use one of {', '.join(BIASES)}")
        if not self.timeout_s > 0:
            raise ConfigError(f"{{timeout_s}} {self.timeout_s} is not a timeout; use e.g. 30")


@dataclass(frozen=True)
class CornerRow:
    """One corner's result: the simulation, each spec against it, and whether everything holds there."""

    corner: Corner
    result: SimResult
    checks: tuple[SpecCheck, ...]
    passed: bool
    why: str | None
    """Why it fails (None when it passes): the simulation's status, the health flags, the specs missed."""


def _why(result: SimResult, checks: tuple[SpecCheck, ...]) -> str | None:
    if result.status != Status.OK:
        return f"{result.status}: {result.reason}"
    missed = [f"{SPEC_OPTIONS[c.key]} {format_spec(c.key, c.achieved)} (spec {format_spec(c.key, c.target)})"
              for c in checks if not c.met]
    flags = list(result.health.flags) if result.health else ["no operating point"]
    return "; ".join(missed + flags) or None


def worst_corners(rows: tuple[CornerRow, ...]) -> dict[str, str]:
    """Metric key -> the name of the corner where it is worst (lowest; highest for power). A working amplifier
    without a -180° crossing has an infinite gain margin; corners without metrics are left out."""
    worst: dict[str, str] = {}
    for key in METRIC_KEYS:
        higher_is_worse = SPEC_KINDS[key].bound == "max"
        values = []
        for row in rows:
            metrics = row.result.metrics
            if metrics is None or row.result.status != Status.OK:
                continue
            value = getattr(metrics, key)
            values.append((math.inf if value is None else value, row.corner.name))
        finite = [v for v in values if math.isfinite(v[0])]
        if finite:
            worst[key] = (max if higher_is_worse else min)(finite, key=lambda v: v[0])[1]
    return worst


@dataclass(frozen=True)
class CornerReport:
    """A design signed off across corners: one row per corner, the worst corner per metric, pass or fail."""

    design: Design
    tech: str
    testbench: str
    bias: str
    specs: Specs | None
    rows: tuple[CornerRow, ...]
    worst: dict[str, str]

    @property
    def passed(self) -> bool:
        """Every corner passes (a working, healthy amplifier meeting every given spec)."""
        return all(row.passed for row in self.rows)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(row.corner.name for row in self.rows if not row.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the design, the specs, one entry per corner (with its checks), the worst corners, passed."""
        corners = []
        for row in self.rows:
            entry = row.result.to_dict()
            entry.pop("design", None)
            entry["checks"] = [{"key": c.key, "target": c.target, "achieved": c.achieved, "margin": c.margin,
                                "met": c.met} for c in row.checks]
            entry.update(passed=row.passed, why=row.why)
            corners.append(entry)
        return {"design": self.design.to_dict(), "tech": self.tech, "testbench": self.testbench, "bias": self.bias,
                "specs": self.specs.given() if self.specs else None, "corners": corners, "worst": self.worst,
                "passed": self.passed}

    def table(self) -> str:
        """One row per corner: the six metrics (worst marked), then pass or why it fails."""
        labels = {"gain_db": "gain", "ugb_hz": "UGB", "pm_deg": "PM", "gm_db": "GM", "bw3db_hz": "BW3dB",
                  "power_w": "power"}
        keys = ("gain_db", "ugb_hz", "pm_deg", "gm_db", "bw3db_hz", "power_w")
        width = max([len("corner")] + [len(r.corner.name) for r in self.rows])
        lines = [f"{'corner':<{width}} " + " ".join(f"{labels[k]:>12}" for k in keys) + "  result"]
        for row in self.rows:
            cells = []
            for key in keys:
                metrics = row.result.metrics if row.result.status == Status.OK else None
                value = getattr(metrics, key) if metrics else None
                text = format_si(value, METRIC_UNITS[key], 4) if metrics and not (key == "gm_db" and value is None) \
                    else ("inf" if metrics else "—")
                cells.append(f"{text + (WORST_MARK if self.worst.get(key) == row.corner.name else ' '):>12}")
            lines.append(f"{row.corner.name:<{width}} " + " ".join(cells) + "  " +
                         ("pass" if row.passed else f"FAIL: {row.why}"))
        lines.append(f"({WORST_MARK} the worst corner of each metric; bias {self.bias}, {self.testbench} testbench)")
        given = ", ".join(f"{SPEC_OPTIONS[k]} {format_spec(k, v)}" for k, v in self.specs.given().items()) \
            if self.specs else "none (a corner passes as a working amplifier with a healthy operating point)"
        lines.append(f"specs: {given}")
        n = len(self.rows)
        lines.append(f"passed at all {n} corners" if self.passed else
                     f"FAILED at {len(self.failed)} of {n} corners: {', '.join(self.failed)}")
        return "\n".join(lines)


def signoff_corners(design: Design, tech: Technology, corners: tuple[Corner, ...], specs: Specs | None = None,
                    config: CornerSignoffConfig = CornerSignoffConfig(), pool=None) -> CornerReport:
    """Simulate `design` at every corner (on `pool`, or a local pool of its own) and check it against `specs`."""
    from .simulate import SimConfig, SimulatorPool  # here: importing this module (the CLI does) loads no numpy

    if not corners:
        raise ConfigError("{corners}: no corners given; use a set such as all or nominal")
    benches = specs.benches() if specs else ()
    estimates = specs.needs_estimates() if specs else False

    def run(simulator) -> list[SimResult]:
        # one map per corner: a SimConfig holds one corner (a few ms each without benches)
        out = []
        for corner in corners:
            sim = SimConfig(tech=tech, testbench=config.testbench, corner=corner, bias=config.bias, benches=benches,
                            estimates=estimates)
            out.append(next(iter(simulator.map([design], sim)))[1])
        return out

    if pool is None:
        with SimulatorPool(workers=1, timeout_s=config.timeout_s) as own:
            results = run(own)
    else:
        results = run(pool)
    return corner_report(design, tech, tuple(zip(corners, results)), specs, config)


def corner_report(design: Design, tech: Technology, simulated: tuple[tuple[Corner, SimResult], ...],
                  specs: Specs | None = None, config: CornerSignoffConfig = CornerSignoffConfig()) -> CornerReport:
    """The report of results already simulated, one (corner, result) pair per row: each checked against `specs`."""
    rows = []
    for corner, result in simulated:
        checks = tuple(check_specs(result if result.metrics else None, specs)) if specs else ()
        healthy = bool(result.health and result.health.healthy)
        passed = result.status == Status.OK and healthy and all(c.met for c in checks)
        rows.append(CornerRow(corner, result, checks, passed, None if passed else _why(result, checks)))
    rows_t = tuple(rows)
    return CornerReport(design=design, tech=tech.name, testbench=config.testbench, bias=str(config.bias),
                        specs=specs, rows=rows_t, worst=worst_corners(rows_t))


LOWER_IS_WORSE = ("gain_db", "bw3db_hz", "ugb_hz", "pm_deg", "gm_db",
                  "buffer_bw_hz", "slew_rise_v_per_s", "slew_fall_v_per_s", "cmrr_db", "psrr_plus_db",
                  "psrr_minus_db", "swing_high_v", "gbw_a0_f3db_hz", "gbw_gm1_c0_hz")
"""Figures whose worst corner is the one with the lowest value (a missing gain margin is infinite)."""
HIGHER_IS_WORSE = ("power_w", "settling_1pct_s", "settling_01pct_s", "overshoot_pct", "buffer_peaking_db",
                   "noise_1khz_v_rthz", "noise_1mhz_v_rthz", "noise_integrated_v", "swing_low_v", "area_m2")
"""Figures whose worst corner is the one with the highest value; the offset's is the largest |offset|."""
_STATUS_ORDER = {Status.FAILED: 0, Status.NOT_AMPLIFIER: 1, Status.OK: 2}


def _worst(values: list, lower_is_worse: bool, missing_is_infinite: bool = False):
    present = [v for v in values if v is not None]
    if missing_is_infinite:
        return min(present) if present else None
    if len(present) < len(values) or not present:
        return None  # unmeasured at some corner: the spec cannot be shown to hold there
    return min(present) if lower_is_worse else max(present)


def _worst_device(ops: list[DeviceOp], itail_a: float | None) -> DeviceOp:
    """One device's worst corner: out of saturation first, then the least saturation margin; M5 with a tail-current
    spec, the current farthest from it."""
    if itail_a is not None and ops[0].name == "M5":
        return max(ops, key=lambda d: abs(math.log10(max(d.id_a, 1e-30) / itail_a)))
    return min(ops, key=lambda d: (d.region == "saturation", d.saturation_margin_v))


def worst_result(simulated: list[tuple[Corner, SimResult]], specs: Specs | None = None) -> SimResult:
    """One result standing for a design at all its simulated corners: the worst status; each figure at its worst
    corner (`LOWER_IS_WORSE`, `HIGHER_IS_WORSE`, the largest |offset|); healthy only when healthy everywhere, the
    flags named by corner. A spec met by it is met at every one of those corners (figures that combine two, such
    as the swing, are at least as bad as at any corner). The sweep and `corner` are the first corner's."""
    from ..core.measure import Health  # numpy: not at CLI start
    from ..core.signoff import Signoff

    corners = [c for c, _ in simulated]
    results = [r for _, r in simulated]
    first = results[0]
    worst_status = min(results, key=lambda r: _STATUS_ORDER[r.status])
    reason = None if worst_status.status == Status.OK else \
        f"{corners[results.index(worst_status)].name}: {worst_status.reason}"
    metrics = None
    if all(r.metrics is not None for r in results):
        values = {}
        for key in ("gain_db", "bw3db_hz", "ugb_hz", "pm_deg", "gm_db", "power_w"):
            values[key] = _worst([getattr(r.metrics, key) for r in results], key != "power_w", key == "gm_db")
        metrics = Metrics(**values)
    health = None
    if all(r.health is not None for r in results):
        itail = specs.itail_a if specs is not None else None
        names = [d.name for d in first.health.devices]
        by_name = [{d.name: d for d in r.health.devices} for r in results]
        devices = tuple(_worst_device([ops[n] for ops in by_name if n in ops], itail) for n in names)
        flags = tuple(f"{c.name}: {flag}" for c, r in simulated for flag in r.health.flags)
        health = Health(vout_v=first.health.vout_v, vdd_v=first.health.vdd_v, devices=devices, flags=flags)
    signoff = None
    if all(r.signoff is not None for r in results):
        figures: dict = {}
        for f in dataclasses.fields(Signoff):
            values = [getattr(r.signoff, f.name) for r in results]
            if f.name in LOWER_IS_WORSE or f.name in HIGHER_IS_WORSE:
                figures[f.name] = _worst(values, f.name in LOWER_IS_WORSE)
            elif f.name == "offset_v":
                present = [v for v in values if v is not None]
                figures[f.name] = max(present, key=abs) if len(present) == len(values) else None
            elif f.name == "ugb_shelf":
                figures[f.name] = any(values)
            elif f.name == "problems":
                figures[f.name] = tuple(f"{c.name}: {p}" for c, r in simulated for p in r.signoff.problems)
            else:  # estimates no spec reads (pole and zero positions): the first corner's
                figures[f.name] = values[0]
        signoff = Signoff(**figures)
    return dataclasses.replace(first, status=worst_status.status, reason=reason, metrics=metrics, health=health,
                               signoff=signoff, seconds=sum(r.seconds for r in results))


def at_corners(designs: list[Design], tech: Technology, corners: tuple[Corner, ...], pool,
               bias: str = Bias.TRACK_VDD) -> list[list[tuple[Corner, SimResult]]]:
    """Each design simulated at every corner with the loop's UGB bench, in one batch on `pool`: per design, its
    (corner, result) pairs in the corners' order."""
    from ..core.score import UGB_BENCHES
    from .simulate import SimConfig

    configs = [SimConfig(tech=tech, benches=UGB_BENCHES, corner=c, bias=bias) for c in corners]
    results: list = [None] * (len(designs) * len(corners))
    for index, result in pool.map([d for d in designs for _ in corners], configs * len(designs)):
        results[index] = result
    n = len(corners)
    return [list(zip(corners, results[i * n:(i + 1) * n])) for i in range(len(designs))]


def worst_at_corners(designs: list[Design], tech: Technology, corners: tuple[Corner, ...], pool,
                     bias: str = Bias.TRACK_VDD) -> list[SimResult]:
    """Each design simulated at every corner with the loop's UGB bench, in one batch on `pool`: one `worst_result`
    per design, in the designs' order."""
    return [worst_result(simulated) for simulated in at_corners(designs, tech, corners, pool, bias)]


def works_everywhere(simulated: list[tuple[Corner, SimResult]]) -> bool:
    """Whether a design is a healthy working amplifier at each of its simulated corners."""
    from ..core.score import healthy_result

    return all(r.status == Status.OK and healthy_result(r) for _, r in simulated)


class ScreenedCorners:
    """Designs simulated at every corner batch by batch, where a design that fails somewhere need not run everywhere:
    the first batch runs at every corner and orders the corners by how many of its designs failed there; after it,
    each design runs first at the `screen` most-failed corners and at the rest only when it works at those. Its
    (corner, result) pairs then cover every corner exactly when it works at the screened ones, so
    `worst_result` of them is the full worst-corner result for every design that works at every corner; one that
    fails holds only the corners it ran at. `simulations` counts what ran."""

    def __init__(self, tech: Technology, corners: tuple[Corner, ...], pool, bias: str = Bias.TRACK_VDD,
                 screen: int = 3) -> None:
        self.tech, self.corners, self.pool, self.bias, self.screen = tech, tuple(corners), pool, bias, screen
        self.order: list[Corner] | None = None
        self.simulations = 0

    def run(self, designs: list[Design]) -> list[list[tuple[Corner, SimResult]]]:
        if self.order is None:
            simulated = at_corners(designs, self.tech, self.corners, self.pool, self.bias)
            failures = {c.name: sum(not works_everywhere([(c, dict(s)[c])]) for s in simulated) for c in self.corners}
            self.order = sorted(self.corners, key=lambda c: -failures[c.name])  # stable: ties keep the set's order
        else:
            lead, rest = tuple(self.order[:self.screen]), tuple(self.order[self.screen:])
            simulated = at_corners(designs, self.tech, lead, self.pool, self.bias)
            alive = [i for i, pairs in enumerate(simulated) if works_everywhere(pairs)]
            if alive and rest:
                for i, more in zip(alive, at_corners([designs[i] for i in alive], self.tech, rest, self.pool,
                                                     self.bias)):
                    rank = {c.name: k for k, c in enumerate(self.corners)}  # back in the set's order, as unscreened
                    simulated[i] = sorted(simulated[i] + more, key=lambda pair: rank[pair[0].name])
        self.simulations += sum(len(pairs) for pairs in simulated)
        return simulated
