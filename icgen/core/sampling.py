"""Where designs come from: quantised as a designer writes them, space-filling samples, random draws, local sweeps.

    sample_designs(tech, seed=0, start=0, count=64)      # scrambled Sobol over the bounds, log scale for sizes
    local_sweep(centre, tech, n=32, seed=0, radius=Radius(0.25, 0.05))
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from .design import DESIGN_KEYS, VARIABLE_BY_KEY, Design
from .errors import ConfigError
from .tech import Technology


def quantize(key: str, value: float) -> float:
    """Round a variable as a designer writes it: 3 significant figures, voltages to 1 mV."""
    if not VARIABLE_BY_KEY[key].log_scale:
        return round(value, 3)
    return float(f"{value:.3g}")


def sample_designs(tech: Technology, seed: int, start: int, count: int) -> list[Design]:
    """Designs start..start+count-1 of the seeded scrambled Sobol sequence over the technology's bounds."""
    from scipy.stats import qmc  # imported on use: it costs half a second, and the CLI imports this module

    sobol = qmc.Sobol(d=len(DESIGN_KEYS), scramble=True, seed=seed)
    if start:
        sobol.fast_forward(start)
    with warnings.catch_warnings():  # balance properties need powers of two; the stream order is what we use
        warnings.simplefilter("ignore")
        unit = sobol.random(count)
    designs = []
    for row in unit:
        values = {}
        for j, key in enumerate(DESIGN_KEYS):
            low, high = tech.bounds[key]
            if VARIABLE_BY_KEY[key].log_scale:
                raw = math.exp(math.log(low) + row[j] * (math.log(high) - math.log(low)))
            else:
                raw = low + row[j] * (high - low)
            values[key] = min(max(quantize(key, raw), low), high)
        designs.append(Design(**values))
    return designs


def random_designs(tech: Technology, n: int, seed: int = 0) -> list[Design]:
    """n independent log-uniform (uniform for voltages) random designs, unrounded: for tests and benchmarks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    designs = []
    for _ in range(n):
        values = {}
        for key in DESIGN_KEYS:
            low, high = tech.bounds[key]
            log = VARIABLE_BY_KEY[key].log_scale
            values[key] = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if log else float(rng.uniform(low, high))
        designs.append(Design(**values))
    return designs


@dataclass(frozen=True)
class Radius:
    """How far a local sweep reaches: R0, C0, L, W within ×/÷ (1 + relative); voltages within ± volts."""

    relative: float = 0.25
    """Multiplicative half-width for R0, C0, L and W (0.25: from centre/1.25 to centre*1.25)."""
    volts: float = 0.05
    """Additive half-width for VIN and VB1."""

    def __post_init__(self) -> None:
        if not (0 < self.relative <= 10):
            raise ConfigError("{relative} must be in (0, 10]")
        if not (0 < self.volts <= 1):
            raise ConfigError("{volts} must be in (0, 1] volt")


def local_sweep(center: Design, tech: Technology, n: int, seed: int, radius: Radius) -> list[Design]:
    """n designs spread (scrambled Sobol) over the box of `radius` around `center`, rounded and inside bounds."""
    from scipy.stats import qmc

    sobol = qmc.Sobol(d=len(DESIGN_KEYS), scramble=True, seed=seed)
    unit = sobol.random(n) * 2 - 1
    values = center.to_dict()
    designs = []
    for row in unit:
        out = {}
        for j, key in enumerate(DESIGN_KEYS):
            if VARIABLE_BY_KEY[key].log_scale:
                raw = values[key] * math.exp(row[j] * math.log1p(radius.relative))
            else:
                raw = values[key] + row[j] * radius.volts
            low, high = tech.bounds[key]
            out[key] = min(max(quantize(key, raw), low), high)
        designs.append(Design(**out))
    return designs
