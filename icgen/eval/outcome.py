"""What an eval run is made of: a target (specs to meet) and an outcome (one method on one target)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..core.design import Metrics
from ..core.score import LOG_METRICS, SPEC_KEYS, Specs

ERROR_KEYS = SPEC_KEYS


@dataclass(frozen=True)
class Target:
    """Specs to meet; for held-out targets, the simulated metrics of the design they came from."""

    name: str
    kind: str  # heldout | hand | file
    specs: Specs
    reference: Metrics | None = None


@dataclass
class Outcome:
    """One method on one target: whether it met the specs, what it cost, and how close its best design came."""

    method: str
    target: str
    kind: str
    met: bool
    shortfall: float | None
    simulations: int
    seconds: float
    proposals: int
    """Designs the method proposed (model answers included even when they could not be simulated)."""
    valid: int
    """Proposals that parsed and validated into an in-range netlist."""
    working: int
    """Simulated proposals that are healthy working amplifiers."""
    source: str = ""
    objective_value: float | None = None
    """The eval's objective (decades, lower is better) of the best design when it met the target; None otherwise or
    with max-margin."""
    met_v1: bool | None = None
    """Whether any of its simulated designs meets the specs under v1's definitions (the v1 health rule; the open-loop
    UGB without the buffer check): the same run judged the old way. None in runs made before it was recorded."""
    metrics: dict | None = None
    design: dict | None = None
    errors: dict = field(default_factory=dict)
    specs: dict = field(default_factory=dict)
    """The target's bounds (Specs.given(): key -> SI value); empty in runs made before it was recorded."""
    corners: list[str] = field(default_factory=list)
    """The corners it was judged at (met = simulated and met at every one, figures at the worst); empty for the
    nominal simulation only, and in runs made before corners."""


def metric_errors(metrics: Metrics | None, reference: Metrics | None) -> dict[str, float]:
    """|achieved - reference| per metric: dB or degrees, decades for UGB, BW and power."""
    if metrics is None or reference is None:
        return {}
    errors = {}
    for key in ERROR_KEYS:
        a, r = getattr(metrics, key), getattr(reference, key)
        if a is None or r is None or (key in LOG_METRICS and (a <= 0 or r <= 0)):
            continue
        errors[key] = abs(math.log10(a / r)) if key in LOG_METRICS else abs(a - r)
    return errors
